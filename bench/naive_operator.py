"""The naive design, for the benchmark's baseline: one kopf timer per LarkApp, polling.

Each tick reads the app Secret and the token Secret, fetches a token straight from the
Open Platform when the held one is within renewBefore of expiry (no cache, no
single-flight, no rate limit), writes the token Secret, and patches status every tick.
This is what a first operator usually looks like; `bench/run.py` measures ours against it.
Run: NAIVE_INTERVAL=S python bench/naive_operator.py --namespace NS --metrics-port P
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import time
from typing import Any

import aiohttp
import kopf
from prometheus_client import start_http_server

from lark_operator import metrics
from lark_operator.app.watch import measure_loop_lag as _measure_loop_lag
from lark_operator.kube import KubeClient
from lark_operator.models import LarkAppSpec

INTERVAL = float(os.environ.get("NAIVE_INTERVAL", "15"))
STATE: dict[str, Any] = {}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "naive.larkservice.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="naive.larkservice.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="naive.larkservice.io", key="last"
    )
    settings.posting.enabled = False
    STATE["kube"] = KubeClient()
    STATE["http"] = aiohttp.ClientSession()
    asyncio.get_running_loop().create_task(_measure_loop_lag(metrics.EVENT_LOOP_LAG.set))


@kopf.timer("larkservice.io", "v1alpha1", "larkapps", interval=INTERVAL, initial_delay=0)
async def poll(spec: Any, name: str, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
    kube: KubeClient = STATE["kube"]
    assert namespace is not None  # LarkApps are namespaced
    s = LarkAppSpec.parse(spec)
    assert s.app_secret_ref is not None  # the bench names its apps (no appRef)
    app_secret = await kube.get_secret(namespace, s.app_secret_ref.name)
    secret = base64.b64decode(
        (app_secret or {}).get("data", {}).get(s.app_secret_ref.key, "")
    ).decode()
    token_name = s.token_secret_name(name)
    current = await kube.get_secret(namespace, token_name)
    now = time.time()
    expires = 0.0
    if current:
        expires = float(base64.b64decode(current["data"].get("expires_epoch", "MA==")).decode())
    if expires - now < s.refresh.renew_before_seconds:
        url = s.base_url() + "/open-apis/auth/v3/tenant_access_token/internal"
        async with STATE["http"].post(url, json={"app_id": s.app_id, "app_secret": secret}) as r:
            body = await r.json(content_type=None)
        if body.get("code") != 0:
            raise kopf.TemporaryError(f"code {body.get('code')}", delay=INTERVAL)
        expires = now + float(body["expire"])
        data = {
            "tenant_access_token": body["tenant_access_token"],
            "expires_at": _iso(expires),
            "expires_epoch": str(expires),
            "app_id": s.app_id,
        }
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": token_name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        if current:
            await kube.replace_secret(namespace, token_name, manifest)
        else:
            await kube.create_secret(namespace, manifest)
    patch.status["phase"] = "Ready"
    patch.status["token"] = {
        "secretName": token_name,
        "expiresAt": _iso(expires),
        "refreshedAt": _iso(now),
    }
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": f"checked {_iso(now)}",
            "lastTransitionTime": _iso(now),
        }
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--namespace", required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    args = p.parse_args()
    start_http_server(args.metrics_port, registry=metrics.REGISTRY)
    asyncio.run(kopf.operator(namespaces=[args.namespace], standalone=True))


if __name__ == "__main__":
    main()
