"""The operator's own probes, as the chart's Deployment uses them: /livez (restart when it
fails) and /readyz (out of the Service when it fails), distinct from /health (the report)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kube import sa_kubeconfig
from tests.helpers.procs import http_json
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration


def _get(op: Any, path: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body); (0, {}) while nothing listens yet."""
    url = f"http://127.0.0.1:{op.health_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        return e.code, dict(json.loads(e.read()))
    except urllib.error.URLError:
        return 0, {}


def test_an_acting_replica_is_live_and_ready_once_its_watch_is_listed(env_factory: Any) -> None:
    env = env_factory({"cli_probes01": "probe-endpoint-secret-1"})
    _, ready = eventually(lambda: (s := _get(env.op, "/readyz"))[0] == 200 and s, 20)
    # Every watch listed: the Secrets, and the namespaces' labels (ClusterLarkApp selectors).
    assert ready["ready"] is True and ready["watches"]["secrets"] == "watching"
    assert set(ready["watches"]) >= {"secrets", "namespaces"}
    assert set(ready["watches"].values()) == {"watching"}
    assert _get(env.op, "/livez") == (200, {"live": True, "role": "standalone", "scheduler": "ok"})


def test_a_standby_is_ready(env_factory: Any) -> None:
    env = env_factory({"cli_probes02": "probe-endpoint-secret-2"}, start=False)
    elect = ["--leader-elect", "--leader-elect-namespace", env.ns]
    first = env.start_operator(extra=elect)
    eventually(lambda: http_json(first.health_url).get("role") == "leader", 30, what="leader")
    second = env.start_operator(extra=elect)
    eventually(lambda: http_json(second.health_url).get("role") == "standby", 30)
    assert _get(second, "/readyz") == (200, {"ready": True, "role": "standby"})
    assert _get(second, "/livez")[0] == 200


def test_a_watch_the_apiserver_refuses_makes_it_unready_not_dead(
    env_factory: Any, tmp_path: Path
) -> None:
    env = env_factory({"cli_probes03": "probe-endpoint-secret-3"}, start=False)
    kube = env.kube
    # A ServiceAccount that may watch LarkApps but not list Secrets (missing RBAC).
    kube.kubectl("create", "serviceaccount", "narrow", "-n", env.ns)
    kube.kubectl(
        "create", "clusterrole", f"narrow-{env.ns}",
        "--verb=get,list,watch,patch", "--resource=larkapps.larkservice.io",
    )  # fmt: skip
    kube.kubectl(
        "create", "clusterrolebinding", f"narrow-{env.ns}",
        f"--clusterrole=narrow-{env.ns}", f"--serviceaccount={env.ns}:narrow",
    )  # fmt: skip
    config = sa_kubeconfig(kube, env.ns, "narrow", tmp_path / "narrow.kubeconfig")
    op = env.start_operator(wait=False, env={"KUBECONFIG": config})
    status, body = eventually(
        lambda: (
            (s := _get(op, "/readyz"))[1].get("watches", {}).get("secrets", "").startswith("error")
            and s
        ),
        30,
        what="the Secret watch refused",
    )
    assert status == 503 and body["ready"] is False
    assert _get(op, "/livez")[0] == 200, "a missing RBAC rule is not cured by a restart"
    assert op.alive()
