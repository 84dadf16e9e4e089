"""The fan-out scenarios of `make bench` (bench/run.py --fanout): ClusterLarkApps used by
LarkApps in many namespaces, against a fresh local control plane and the emulator.

Per scenario (LARKAPPS/CLUSTERLARKAPPS, e.g. 1000/1 and 5000/50): the ClusterLarkApps'
App Secrets in one cluster resource namespace; LarkApps spread over up to 1,000
namespaces (allowed by a label selector), each naming one app (round robin); every
ROLLOUT_EVERY-th one also rolls a Deployment of its namespace after each new token. All
LarkApps are created at once (8 client threads) and timed to Ready; then --cycles refresh
cycles are measured: upstream calls per cycle per app (target 1), apiserver writes per
LarkApp per cycle (target <= 2, plus the rollout patch where configured; the apiserver's
own Lease renewals left out), operator RSS, and token lateness (now - expires_at of every
token Secret, sampled; > 0 means a lapsed token, target 0).

Time is scaled as in the scale scenarios (tokens live --ttl seconds, renewBefore 1m).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config, watch
from run import (  # bench/run.py, beside this
    PeakRss,
    apiserver_writes,
    log,
    pct,
    proc_stats,
    token_calls,
)
from tests.helpers.procs import SCRIPT, Emulator, Proc, http_json

from lark_devenv.controlplane import ControlPlane, free_port

REPO = Path(__file__).resolve().parent.parent
GROUP, VERSION = "larkservice.io", "v1alpha1"
CRNS = "lark-system"  # the cluster resource namespace
LABEL = {"lark-bench": "fanout"}
MAX_NAMESPACES = 1000
ROLLOUT_EVERY = 10  # every 10th LarkApp also rolls a Deployment after each new token


def scenarios(spec: str) -> list[tuple[int, int]]:
    """'1000/1,5000/50' -> [(1000, 1), (5000, 50)] ('' -> none)."""
    out = []
    for item in (x.strip() for x in spec.split(",")):
        if item:
            larkapps, apps = item.split("/")
            out.append((int(larkapps), int(apps)))
    return out


class ReadyTimes(threading.Thread):
    """The first moment each LarkApp, in any namespace, reports Ready=True (a watch)."""

    def __init__(self, api: client.ApiClient):
        super().__init__(daemon=True)
        self.custom = client.CustomObjectsApi(api)
        self.ready: dict[tuple[str, str], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    "larkapps",
                    timeout_seconds=30,
                    _request_timeout=60,  # a watch hung after a 504 must not go unseen
                )
                for ev in stream:
                    obj, now = ev["object"], time.time()
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    conds = (obj.get("status") or {}).get("conditions") or []
                    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                    if ready and key not in self.ready:
                        self.ready[key] = now
                    if self.stop.is_set():
                        break
            except Exception as e:
                log(f"fan-out watch restarted: {type(e).__name__}")
                time.sleep(1)


def lateness(core: client.CoreV1Api) -> float:
    """Worst now - expires_at over every token Secret (> 0: a lapsed token)."""
    now, worst = time.time(), float("-inf")
    secrets = core.list_secret_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by=lark-operator"
    ).items
    for s in secrets:
        raw = (s.data or {}).get("expires_at")
        if raw:
            text = base64.b64decode(raw).decode().replace("Z", "+00:00")
            worst = max(worst, now - dt.datetime.fromisoformat(text).timestamp())
    return worst if secrets else 0.0


def start_operator(work: Path, kubeconfig: str, emu_url: str, rate: float, tag: str) -> Any:
    port = free_port()
    argv = [
        SCRIPT, "run", "--all-namespaces", "--health-port", str(port),
        "--allowed-base-url", emu_url, "--cluster-resource-namespace", CRNS,
        "--log-format", "json", "--log-level", "WARNING",
    ]  # fmt: skip
    env = {
        "KUBECONFIG": kubeconfig,
        "LARK_OPERATOR_API_RATE": str(rate),
        "LARK_OPERATOR_API_BURST": str(int(rate)),
    }
    op = Proc(argv, work / f"operator-fanout-{tag}.log", env=env).start()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if http_json(f"http://127.0.0.1:{port}/health").get("status") == "healthy":
                break
        except OSError:
            pass
        time.sleep(0.5)
    return op


def run_scenario(larkapps: int, apps: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log(f"=== fan-out: {larkapps} LarkApps over {apps} ClusterLarkApps ===")
    tag = f"{larkapps}-{apps}"
    namespaces = [f"fan-{i:04d}" for i in range(min(larkapps, MAX_NAMESPACES))]
    result: dict[str, Any] = {"larkapps": larkapps, "apps": apps, "namespaces": len(namespaces)}
    cp = ControlPlane(work / f"cp-fanout-{tag}", crds_dir=REPO / "crds")
    cp.up(timeout=120)
    emu = op = None
    try:
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        api.configuration.connection_pool_maxsize = 16
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        apps_api = client.AppsV1Api(api)
        secrets = {f"cli_fan{i:04d}": f"fanout-secret-{i}" for i in range(apps)}
        emu = Emulator(
            work / f"emulator-fanout-{tag}.log",
            secrets,
            token_ttl=args.ttl,
            reissue_window=args.ttl - 20,
        ).start()

        def namespace(name: str) -> None:
            meta = client.V1ObjectMeta(name=name, labels=LABEL if name != CRNS else None)
            core.create_namespace(client.V1Namespace(metadata=meta))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(namespace, [CRNS, *namespaces]))
        for i, (app_id, secret) in enumerate(secrets.items()):
            core.create_namespaced_secret(
                CRNS,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=f"app-{i:04d}"),
                    string_data={"appSecret": secret},
                ),
            )
            custom.create_cluster_custom_object(
                GROUP,
                VERSION,
                "clusterlarkapps",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ClusterLarkApp",
                    "metadata": {"name": f"app-{i:04d}"},
                    "spec": {
                        "appId": app_id,
                        "appSecretRef": {"name": f"app-{i:04d}"},
                        "domain": emu.url,
                        "refresh": {"renewBefore": "1m", "jitter": 0.1},
                        "allowedNamespaces": {"selector": {"matchLabels": LABEL}},
                    },
                },
            )
        op = start_operator(work, str(cp.kubeconfig), emu.url, 10 * 7200 / args.ttl, tag)
        watcher = ReadyTimes(api)
        watcher.start()
        rss = PeakRss(op.proc.pid)
        rss.start()

        def name_of(i: int) -> tuple[str, str]:
            return namespaces[i % len(namespaces)], f"la-{i:05d}"

        rolled = [i for i in range(larkapps) if i % ROLLOUT_EVERY == 0]
        with ThreadPoolExecutor(8) as pool:  # the Deployments they roll, first
            list(pool.map(lambda i: _deployment(apps_api, *name_of(i)), rolled))
        created: dict[tuple[str, str], float] = {}

        def create(i: int) -> None:
            ns, name = name_of(i)
            target = {"rolloutRestart": [{"kind": "Deployment", "name": name}]}
            spec: dict[str, Any] = {"appRef": {"name": f"app-{i % apps:04d}"}}
            if i % ROLLOUT_EVERY == 0:
                spec["target"] = target
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "LarkApp",
                "metadata": {"name": name},
                "spec": spec,
            }
            t = time.time()
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "larkapps", body)
            created[(ns, name)] = t

        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(larkapps)))
        result["create_seconds"] = round(time.time() - t0, 1)
        deadline = time.time() + args.ready_timeout
        while len(watcher.ready) < larkapps and time.time() < deadline and op.alive():
            time.sleep(0.5)
        lat = [watcher.ready[k] - t for k, t in created.items() if k in watcher.ready]
        result.update(
            ready=len(lat),
            all_ready_seconds=round(max(watcher.ready.values(), default=t0) - t0, 1),
            ready_p50=round(pct(lat, 0.5), 2),
            ready_p99=round(pct(lat, 0.99), 2),
        )
        log(f"fan-out: {len(lat)}/{larkapps} Ready, p99 {result['ready_p99']}s")

        # Steady state: --cycles refresh cycles, once the first tokens' rollouts (spread
        # over the first half of renewBefore) are done.
        time.sleep(60 / 2 + 5)
        window = args.cycles * (args.ttl - 60 * 1.05)
        w0, c0, tc0 = apiserver_writes(cp), emu.calls()["total"], token_calls(emu)
        _, cpu0 = proc_stats(op.proc.pid)
        worst, end = float("-inf"), time.time() + window
        while time.time() < end and op.alive():
            worst = max(worst, lateness(core))
            time.sleep(10)
        w1, c1 = apiserver_writes(cp), emu.calls()["total"]
        _, cpu1 = proc_stats(op.proc.pid)
        writes = {k: w1.get(k, 0) - w0.get(k, 0) for k in w1 if w1.get(k, 0) - w0.get(k, 0)}
        per = larkapps * args.cycles
        result.update(
            cycles=args.cycles,
            upstream_calls_per_cycle=round((c1 - c0) / args.cycles, 1),
            upstream_calls_per_app_per_cycle=round((c1 - c0) / args.cycles / apps, 2),
            # token calls only (AppAvailable adds one bot/v3/info per app per cycle)
            token_calls_per_app_per_cycle=round((token_calls(emu) - tc0) / args.cycles / apps, 2),
            writes_per_larkapp_per_cycle=round(
                sum(v for k, v in writes.items() if k not in ("leases", "deployments")) / per, 2
            ),
            rollout_patches_per_rolled_larkapp_per_cycle=round(
                writes.get("deployments", 0) / max(1, len(rolled)) / args.cycles, 2
            ),
            writes_by_resource={k: round(v / per, 3) for k, v in writes.items()},
            rss_mib_peak=round(rss.stop(), 1),
            cpu_seconds_window=round(cpu1 - cpu0, 1),
            worst_token_lateness_seconds=round(max(0.0, worst), 1),
        )
        watcher.stop.set()
        log(json.dumps(result))
    finally:
        if op is not None:
            op.stop()
        if emu is not None:
            emu.stop()
        cp.down()
    return result


def _deployment(apps_api: client.AppsV1Api, ns: str, name: str) -> None:
    """A Deployment for a LarkApp to roll (nothing runs it: no controllers here)."""
    labels = {"app": name}
    pod = {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    template = {"metadata": {"labels": labels}, "spec": pod}
    spec = {"selector": {"matchLabels": labels}, "template": template}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
    apps_api.create_namespaced_deployment(ns, cast(Any, body))  # a dict is sent as is


ROWS = [
    ("namespaces", "namespaces"),
    ("LarkApps created in (s)", "create_seconds"),
    ("create->Ready p50 (s)", "ready_p50"),
    ("create->Ready p99 (s)", "ready_p99"),
    ("all Ready after (s)", "all_ready_seconds"),
    ("upstream calls / cycle", "upstream_calls_per_cycle"),
    ("upstream calls / app / cycle", "upstream_calls_per_app_per_cycle"),
    ("token calls / app / cycle [1]", "token_calls_per_app_per_cycle"),
    ("apiserver writes / LarkApp / cycle [<=2]", "writes_per_larkapp_per_cycle"),
    ("rollout patches / rolled LarkApp / cycle", "rollout_patches_per_rolled_larkapp_per_cycle"),
    ("operator RSS peak (MiB)", "rss_mib_peak"),
    ("operator CPU in window (s)", "cpu_seconds_window"),
    ("worst token lateness (s) [0]", "worst_token_lateness_seconds"),
]


def table(results: list[dict[str, Any]]) -> str:
    heads = [f"{r['larkapps']}/{r['apps']}" for r in results]
    lines = [
        "\nFan-out (LarkApps / ClusterLarkApps)",
        f"{'metric':44}" + "".join(f"{h:>14}" for h in heads),
    ]
    for label, key in ROWS:
        cells = "".join(f"{r.get(key, '-')!s:>14}" for r in results)
        lines.append(f"{label:44}{cells}")
    return "\n".join(lines)


def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    results = []
    for larkapps, apps in scenarios(args.fanout):
        results.append(run_scenario(larkapps, apps, args, work))
        print(table(results), flush=True)
    return results
