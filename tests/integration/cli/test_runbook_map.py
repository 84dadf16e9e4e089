"""docs/troubleshooting.md "From the original runbooks": every command and query in its
**Today** column, run for real.

The world: the operator (JSON logs) reconciling a LarkApp `orders` against the emulator,
probing real PostgreSQL and Redis; real RabbitMQ for the CLI; a real Prometheus scraping
the operator. The platform answers a 500 and a 99991663 on the way, as in the runbooks'
incidents, so that the error queries have something to find.
- Commands run through bash with the real kubectl / kubectl-lark / lark-operator / curl
  (`NS`, `NAME`, `localhost:9091` filled in); each must exit 0 and print something.
- Log queries run as written, `kubectl logs -n lark-system deploy/lark-operator` replaced by
  the operator's own output (the process runs here, not in a pod); each must exit 0 (so
  every line is JSON jq can read) and find lines.
- PromQL runs in Prometheus; each must return series.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.env import Env
from tests.helpers.wait import eventually
from tests.integration.cli.conftest import Cli, assert_nothing_leaked, stdout
from tests.integration.observability.conftest import prometheus_factory  # noqa: F401
from tests.integration.observability.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOC = Path(__file__).resolve().parents[3] / "docs" / "troubleshooting.md"
APP, SECRET = "cli_runbook01", "runbook-app-secret-1"
NAME = "orders"
LOGS = "kubectl logs -n lark-system deploy/lark-operator"


def tables() -> dict[str, list[tuple[str, list[str]]]]:
    """Heading -> [(the runbooks' cell, the Today column's code spans)] of the section."""
    text = DOC.read_text()
    start = text.index("\n## From the original runbooks\n")
    section = text[start : text.index("\n## ", start + 1)]
    out: dict[str, list[tuple[str, list[str]]]] = {}
    heading = ""
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line.startswith("| ") and heading:
            cells = [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if cells[0] == "The runbooks":
                continue
            out.setdefault(heading, []).append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return out


def test_every_runbook_mapping_runs(
    env_factory: Any,
    cli: Cli,
    prometheus_factory: Any,  # noqa: F811
    postgres_server: Any,
    redis_server: Any,
    rabbitmq_server: Any,
    tmp_path: Path,
) -> None:
    found = tables()
    assert set(found) == {"Runbook commands", "Runbook log queries", "Runbook metric queries"}
    assert all(len(rows) >= 8 for rows in found.values()), found
    assert all(today for rows in found.values() for _, today in rows), "a row maps to nothing"

    # --- the world -------------------------------------------------------------------------
    env: Env = env_factory({APP: SECRET})
    cli.allow(env.emu.url)
    env.app_secret("orders-app", SECRET)
    env.kube.put_secret(env.ns, "orders-db", {"dsn": postgres_server.dsn})
    env.kube.put_secret(env.ns, "orders-redis", {"url": redis_server.url})
    probes = {
        "interval": "5s",
        "timeout": "3s",
        "postgres": {"dsnSecretRef": {"name": "orders-db", "key": "dsn"}},
        "redis": {"urlSecretRef": {"name": "orders-redis", "key": "url"}},
    }
    env.larkapp(NAME, APP, secret_name="orders-app", probes=probes)
    prom: Prometheus = prometheus_factory([f"127.0.0.1:{env.op.health_port}"], [])
    eventually(lambda: env.ready(NAME), 40, what="orders Ready")
    eventually(lambda: prom.query('up{job="lark-operator"} == 1'), 20, what="first scrape")

    # The runbooks' incidents: a 500 (retried), then 99991663 answered to a refresh.
    def forced_refresh() -> None:
        proc = cli.kubectl("lark", "refresh", NAME, "-n", env.ns, "--wait", "--timeout", "30")
        assert proc.returncode in (0, 1), stdout(proc)

    env.emu.fault(app_id=APP, http_status=500, count=1)
    forced_refresh()
    env.emu.fault(app_id=APP, code=99991663, count=3)
    forced_refresh()
    env.emu.clear_faults()
    eventually(lambda: env.ready(NAME), 60, what="orders Ready again")
    forced_refresh()  # one more reconcile, observed between two scrapes

    log_file = tmp_path / "operator.log"
    request_ids = [
        json.loads(line).get("request_id")
        for line in env.op.logs().splitlines()
        if line.startswith("{") and '"request_id"' in line
    ]
    assert request_ids, "no log line carries a request_id"
    shell_env = cli.env(
        LARK_APP_ID=APP,
        LARK_APP_SECRET=SECRET,
        DATABASE_URL=postgres_server.dsn,
        REDIS_URL=redis_server.url,
        RABBITMQ_URL=rabbitmq_server.url,
        RABBITMQ_MANAGEMENT_URL=rabbitmq_server.management_url,
    )
    placeholders = {
        r"\bNS\b": env.ns,
        r"\bNAME\b": NAME,
        r"\bcli_xxx\b": APP,
        r"\bREQUEST_ID\b": str(request_ids[-1]),
        r"localhost:9091": f"127.0.0.1:{env.op.health_port}",
        re.escape(LOGS): f"cat {log_file}",
    }

    def filled(command: str) -> str:
        for pattern, value in placeholders.items():
            command = re.sub(pattern, value, command)
        return command

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return cli.run(["bash", "-o", "pipefail", "-c", filled(command)], shell_env)

    # --- commands ---------------------------------------------------------------------------
    failures = []
    for runbook, today in found["Runbook commands"]:
        for command in today:
            proc = run(command)
            if proc.returncode != 0 or not proc.stdout.strip():
                failures.append(f"{runbook} -> {command}: exit {proc.returncode}\n{stdout(proc)}")
    # --- log queries, over the operator's own JSON lines ----------------------------------
    log_file.write_text(env.op.logs())
    for runbook, today in found["Runbook log queries"]:
        for query in today:
            assert query.startswith(LOGS + " | "), query
            proc = run(query)
            if proc.returncode != 0 or not proc.stdout.strip():
                failures.append(f"{runbook} -> {query}: exit {proc.returncode}\n{stdout(proc)}")
    assert not failures, "\n\n".join(failures)

    # The runbooks' own query finds the 99991663 lines (a string, as they compare it).
    coded = run(f"{LOGS} | jq -c 'select(.error_code == \"99991663\")'").stdout.splitlines()
    assert coded and all(json.loads(line)["app_id"] == APP for line in coded), coded

    # --- PromQL -------------------------------------------------------------------------------
    queries = [q for _, today in found["Runbook metric queries"] for q in today]

    def empty() -> list[str]:
        return [q for q in queries if not prom.query(q)]

    try:
        eventually(lambda: not empty() or None, 30, what="every mapped PromQL query")
    except AssertionError:
        raise AssertionError(f"no series for: {empty()}") from None
    assert_nothing_leaked(cli, {SECRET, postgres_server.password, redis_server.password})
