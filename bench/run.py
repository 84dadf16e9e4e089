"""`make bench`: N LarkApps on one operator, against the local control plane and the
emulator, with the naive design (bench/naive_operator.py) measured the same way in the same
run. Prints a table and writes the figures to bench/results/.

Per N and design: create->Ready latency (p50/p99 per object) of a burst of --burst (1,000)
creations landing on an operator that already manages the other N - 1,000, operator RSS
and CPU seconds, upstream calls per refresh cycle, apiserver writes per LarkApp per refresh
cycle (from the apiserver's own /metrics), the worst token lateness (time any token Secret
held a token past its expiry, sampled), the event-loop lag, and the upstream calls in the
first minute after an operator restart against those due in that minute.

Time is scaled: tokens live --ttl seconds (default 150) instead of 7200, renewBefore 1m, so
one refresh cycle is ~85 s. The client-side API rate limit is scaled by the same factor.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.procs import SCRIPT, Emulator, Proc, http_json  # noqa: E402

from lark_devenv.controlplane import ControlPlane, free_port  # noqa: E402

NS = "bench"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
_REQ = re.compile(r"^apiserver_request_total\{([^}]*)\}\s+([0-9.e+]+)$", re.M)


SHORTFALL = "lark_service_refresh_shortfall"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def apiserver_writes(cp: ControlPlane) -> dict[str, float]:
    _, text = cp.request("GET", "/metrics")
    out: dict[str, float] = {}
    for labels, value in _REQ.findall(str(text)):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if lab.get("verb") in WRITE_VERBS:
            key = lab.get("resource", "") + (
                f"/{lab['subresource']}" if lab.get("subresource") else ""
            )
            out[key] = out.get(key, 0.0) + float(value)
    return out


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


def machine_busy() -> tuple[float, float]:
    """(CPU seconds busy, CPU seconds in all) of the whole machine since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz  # idle, iowait


def cpu_split(cp: ControlPlane) -> dict[str, float]:
    """CPU seconds so far of what shares the machine with the operator: the apiserver,
    etcd, the bench itself, and the machine as a whole (busy and in all)."""
    st = cp.state()
    busy, total = machine_busy()
    out = {"bench": proc_stats(os.getpid())[1], "machine_busy": busy, "machine_total": total}
    if st is not None:
        out["apiserver"] = proc_stats(st.apiserver_pid)[1]
        out["etcd"] = proc_stats(st.etcd_pid)[1]
    return out


def metrics_text(port: int) -> str | None:
    """The operator's /metrics, or None when it does not answer."""
    try:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return str(r.read().decode())
    except OSError:
        return None


def scrape_many(port: int, *names: str) -> dict[str, float]:
    """The first sample of each of `names` on /metrics, from one scrape (absent: left out)."""
    text = metrics_text(port) or ""
    found = {}
    for n in names:
        m = re.search(rf"^{n}(?:{{[^}}]*}})?\s+([0-9.e+-]+)$", text, re.M)
        if m:
            found[n] = float(m.group(1))
    return found


def scrape(port: int, name: str) -> float | None:
    return scrape_many(port, name).get(name)


def histograms(port: int) -> dict[str, dict[str, float]]:
    """Reconcile time and Kubernetes API latency per verb so far (ours only): count and
    mean of each, e.g. {"reconcile": {"count": 1002, "mean": 0.18}}."""
    text = metrics_text(port)
    if text is None:
        return {}
    line = re.compile(
        r"^lark_service_(reconcile|kube_request)_duration_seconds_(sum|count)"
        r'(?:\{verb="(\w+)"\})?\s+([0-9.e+-]+)$',
        re.M,
    )
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for family, kind, verb, value in line.findall(text):
        totals.setdefault((family, verb), {})[kind] = float(value)
    return {
        f"{family}{' ' + verb if verb else ''}": {
            "count": t["count"],
            "mean": round(t["sum"] / t["count"], 3),
        }
        for (family, verb), t in sorted(totals.items())
        if t.get("count")
    }


class PeakRss(threading.Thread):
    """Peak RSS of a process, sampled every 0.2 s (a burst's peak is brief)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                self.peak = max(self.peak, proc_stats(self.pid)[0])
            except OSError:
                return

    def stop(self) -> float:
        self.done.set()
        return self.peak


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class ReadyWatcher(threading.Thread):
    """Records the first moment each LarkApp reports Ready=True. Each new watch resumes
    from the last resourceVersion seen: a watch started afresh replays every LarkApp
    first, and at 10,000 that replay outlasted the watch's timeout, so the newest
    LarkApps (a burst: the last names) were never reached."""

    def __init__(self, api: client.ApiClient):
        super().__init__(daemon=True)
        self.custom = client.CustomObjectsApi(api)
        self.ready: dict[str, float] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        rv: str | None = None
        while not self.stop_flag.is_set():
            try:
                w = watch.Watch()
                for ev in w.stream(
                    self.custom.list_namespaced_custom_object,
                    "larkservice.io",
                    "v1alpha1",
                    NS,
                    "larkapps",
                    timeout_seconds=30,
                    # A client-side limit too: under load a watch answered 504 once hung for
                    # good, and every Ready after it went unseen.
                    _request_timeout=60,
                    **({"resource_version": rv} if rv else {}),
                ):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = None  # 410 Gone: too old to resume from, start afresh
                        break
                    rv = obj["metadata"].get("resourceVersion") or rv
                    name = obj["metadata"]["name"]
                    if name in self.ready:
                        continue
                    for c in (obj.get("status") or {}).get("conditions") or []:
                        if c.get("type") == "Ready" and c.get("status") == "True":
                            self.ready[name] = time.time()
                    if self.stop_flag.is_set():
                        break
            except Exception as e:
                if getattr(e, "status", None) == 410:
                    rv = None
                log(f"watch restarted: {type(e).__name__} {getattr(e, 'status', '')}")
                time.sleep(1)


def token_secrets(core: client.CoreV1Api) -> list[float]:
    """expires_at of every token Secret (both designs name them <larkapp>-lark-token)."""
    return [exp for _, exp in token_expiries(core)]


def token_expiries(core: client.CoreV1Api) -> list[tuple[str, float]]:
    """(token Secret name, expires_at) from one list as raw JSON, served from the
    apiserver's watch cache (resourceVersion 0: no etcd read). The client's V1Secret models
    and quorum reads cost seconds of CPU per list at 10,000 Secrets, which the bench would
    take from the operator and the apiserver it measures."""
    resp: Any = core.list_namespaced_secret(NS, resource_version="0", _preload_content=False)
    out = []
    for s in json.loads(resp.data)["items"]:
        name = s["metadata"]["name"]
        raw = (s.get("data") or {}).get("expires_at")
        if raw and name.endswith("-lark-token"):
            text = base64.b64decode(raw).decode().replace("Z", "+00:00")
            out.append((name, dt.datetime.fromisoformat(text).timestamp()))
    return out


def due_in_minute(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, design: str, t: float
) -> tuple[int, int]:
    """(LarkApps, distinct app ids) whose renewal falls before t + 60: ours by the
    nextRefreshAt its status records, the naive one by its rule (expiry - renewBefore)."""
    items: Any = custom.list_namespaced_custom_object("larkservice.io", "v1alpha1", NS, "larkapps")
    apps_of = {i["metadata"]["name"]: i["spec"]["appId"] for i in items["items"]}
    due: set[str] = set()
    if design == "ours":
        for i in items["items"]:
            nxt = ((i.get("status") or {}).get("token") or {}).get("nextRefreshAt")
            if nxt and dt.datetime.fromisoformat(nxt.replace("Z", "+00:00")).timestamp() <= t + 60:
                due.add(i["metadata"]["name"])
    else:
        for name, expires in token_expiries(core):
            if expires - 60 <= t + 60:
                due.add(name.removesuffix("-lark-token"))
    return len(due), len({apps_of.get(n) for n in due})


def token_lateness(core: client.CoreV1Api) -> float:
    """Worst (now - expires_at) over every token Secret: > 0 means a lapsed token."""
    now = time.time()
    return max((now - exp for exp in token_secrets(core)), default=0.0)


def settings_for(n: int, args: argparse.Namespace) -> dict[str, str]:
    """The operator's settings for a row: what docs/scaling.md recommends at that size
    (per-LarkApp series of healthy LarkApps off from 10,000: a scrape of ~200,000 series
    costs seconds of CPU), and any --operator-env."""
    env = {"LARK_OPERATOR_LARKAPP_METRICS": "unhealthy"} if n >= 10_000 else {}
    return {**env, **dict(e.split("=", 1) for e in args.operator_env)}


def reissue_window(ttl: int) -> int:
    """The emulator re-issues a token this long before its expiry. The real platform does
    so in the last 30 minutes of 2 hours, which a scaled lifetime cannot mirror (renewBefore
    is at least 1m): the window covers every lead the operator may take, up to 90% of the
    lifetime (tokens/policy.py earliest_lead), as the real one covers 29 minutes."""
    return ttl - 10


def token_calls(emu: Emulator) -> int:
    """Token endpoint calls the emulator has answered, all apps (not bot/v3/info)."""
    apps = emu.calls().get("apps", {})
    return sum(n for per in apps.values() for path, n in per.items() if "access_token" in path)


def larkapp_body(i: int, apps: int, domain: str) -> dict[str, Any]:
    """LarkApp number i of the bench: app i mod `apps`, renewing a minute before expiry."""
    return {
        "apiVersion": "larkservice.io/v1alpha1",
        "kind": "LarkApp",
        "metadata": {"name": f"la-{i:05d}"},
        "spec": {
            "appId": f"cli_bench{i % apps:05d}",
            "appSecretRef": {"name": f"app-{i % apps:05d}"},
            "domain": domain,
            "refresh": {"renewBefore": "1m", "jitter": 0.1},
        },
    }


def start_operator(
    design: str,
    work: Path,
    kubeconfig: str,
    emu_url: str,
    rate: float,
    tag: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[Proc, int]:
    port = free_port()
    env = {
        "KUBECONFIG": kubeconfig,
        "LARK_OPERATOR_API_RATE": str(rate),
        "LARK_OPERATOR_API_BURST": str(int(rate)),
        "PYTHONPATH": str(REPO),
        **(extra_env or {}),
    }
    if design == "ours":
        argv = [
            SCRIPT,
            "run",
            "--namespace",
            NS,
            "--health-port",
            str(port),
            "--allowed-base-url",
            emu_url,
            "--log-format",
            "json",
            "--log-level",
            "WARNING",
        ]
    else:
        argv = [
            sys.executable,
            str(REPO / "bench" / "naive_operator.py"),
            "--namespace",
            NS,
            "--metrics-port",
            str(port),
        ]
        env["NAIVE_INTERVAL"] = "15"
    op = Proc(argv, work / f"operator-{design}-{tag}.log", env=env).start()
    deadline = time.time() + 60
    while time.time() < deadline:
        if scrape(port, "lark_service_event_loop_lag_seconds") is not None or (
            design == "ours" and _healthy(port)
        ):
            break
        time.sleep(0.5)
    return op, port


def _health(port: int) -> dict[str, Any]:
    try:
        return dict(http_json(f"http://127.0.0.1:{port}/health"))
    except OSError:
        return {}


def _healthy(port: int) -> bool:
    return _health(port).get("status") == "healthy"


def run_one(n: int, design: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log(f"=== N={n} design={design} ===")
    apps = max(1, n // args.share)
    cp = ControlPlane(work / f"cp-{design}-{n}", crds_dir=REPO / "crds")
    cp.up(timeout=120)
    result: dict[str, Any] = {"n": n, "design": design, "apps": apps, "ttl": args.ttl}
    emu = None
    op = None
    try:
        kubeconfig = str(cp.kubeconfig)
        api = config.new_client_from_config(config_file=kubeconfig)
        api.configuration.connection_pool_maxsize = 16
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        secrets = {f"cli_bench{i:05d}": f"bench-secret-{i}" for i in range(apps)}
        emu = Emulator(
            work / f"emulator-{design}-{n}.log",
            secrets,
            token_ttl=args.ttl,
            reissue_window=reissue_window(args.ttl),
        ).start()
        for i, (_app_id, secret) in enumerate(secrets.items()):
            core.create_namespaced_secret(
                NS,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=f"app-{i:05d}"),
                    string_data={"appSecret": secret},
                ),
            )
        rate = 10 * 7200 / args.ttl  # the default 10/s, scaled like time
        env = settings_for(n, args) if design == "ours" else None
        op, port = start_operator(design, work, kubeconfig, emu.url, rate, f"{n}", env)
        watcher = ReadyWatcher(api)
        watcher.start()

        # Warm-up: one LarkApp Ready means the operator watches and the CRD's storage is up
        # (a just-installed CRD answers 429 for a few seconds, which kopf backs off from).
        custom.create_namespaced_custom_object(
            "larkservice.io",
            "v1alpha1",
            NS,
            "larkapps",
            {
                "apiVersion": "larkservice.io/v1alpha1",
                "kind": "LarkApp",
                "metadata": {"name": "warmup"},
                "spec": {
                    "appId": "cli_bench00000",
                    "appSecretRef": {"name": "app-00000"},
                    "domain": emu.url,
                    "refresh": {"renewBefore": "1m", "jitter": 0.1},  # like the others
                },
            },
        )
        deadline = time.time() + 120
        while "warmup" not in watcher.ready and time.time() < deadline:
            time.sleep(0.2)
        created: dict[str, float] = {}
        rss_watch = PeakRss(op.proc.pid)  # type: ignore[union-attr]
        rss_watch.start()

        def create(i: int) -> None:
            body = larkapp_body(i, apps, emu.url)
            t = time.time()
            custom.create_namespaced_custom_object(
                "larkservice.io", "v1alpha1", NS, "larkapps", body
            )
            created[f"la-{i:05d}"] = t

        def create_and_wait(indices: range) -> tuple[float, float]:
            """Create these LarkApps 8 at a time; (seconds to create, seconds to all Ready)."""
            names = [f"la-{i:05d}" for i in indices]
            t0 = time.time()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, indices))
            created_in = time.time() - t0
            deadline = time.time() + args.ready_timeout
            while (
                sum(1 for k in names if k in watcher.ready) < len(names)
                and time.time() < deadline
                and op is not None
                and op.alive()
            ):
                time.sleep(0.5)
            last = max((watcher.ready.get(k, 0.0) for k in names), default=t0)
            return created_in, max(0.0, last - t0)

        # The latency target is for a burst of --burst creations; above that size the rest
        # are created first (and waited for), so the burst lands on an operator that
        # already manages N - burst LarkApps.
        fill = result["fill"] = max(0, n - args.burst)
        if fill:
            created_in, ready_in = create_and_wait(range(fill))
            result["fill_create_seconds"] = round(created_in, 1)
            result["fill_all_ready_seconds"] = round(ready_in, 1)
            log(f"fill: {fill} LarkApps created in {created_in:.1f}s, all Ready {ready_in:.1f}s")
        burst = range(fill, n)
        created_in, ready_in = create_and_wait(burst)
        result.update(
            burst=len(burst),
            create_seconds=round(created_in, 1),
            all_ready_seconds=round(ready_in, 1),
        )
        log(f"burst: {len(burst)} LarkApps created in {result['create_seconds']}s")
        names = [f"la-{i:05d}" for i in burst]
        lat = [watcher.ready[k] - created[k] for k in names if k in watcher.ready]
        # Its watch decodes every status write: the apiserver and this process would spend
        # for it in the window what the operator measured there competes for.
        watcher.stop_flag.set()
        (work / f"latency-{design}-{n}.json").write_text(
            json.dumps({k: [created[k], watcher.ready.get(k)] for k in created})
        )
        result.update(
            ready=sum(1 for k in created if k in watcher.ready),
            ready_p50=round(pct(lat, 0.5), 2),
            ready_p99=round(pct(lat, 0.99), 2),
        )
        log(
            f"burst ready {len(lat)}/{len(burst)}: p50 {result['ready_p50']}s "
            f"p99 {result['ready_p99']}s"
        )
        if design == "ours":
            result["burst_requests"] = histograms(port)
            log(f"burst (count, mean s): {result['burst_requests']}")

        # Steady state: several refresh cycles.
        cycle = args.ttl - 60 * 1.05
        window = args.cycles * cycle
        w0, c0, t0_calls = apiserver_writes(cp), emu.calls()["total"], token_calls(emu)
        rss0, cpu0 = proc_stats(op.proc.pid)  # type: ignore[union-attr]
        split0 = cpu_split(cp)
        worst_late, rss_peak, lag_peak, samples = 0.0, rss0, 0.0, 0
        end, scraped_at, window_start = time.time() + window, 0.0, time.time()
        shortfall_peak, first_shortfall, first_late = 0.0, None, None
        while time.time() < end and op.alive():
            late = token_lateness(core)
            worst_late = max(worst_late, late)
            if late > 0 and first_late is None:
                first_late = round(time.time() - window_start, 1)
            rss, _ = proc_stats(op.proc.pid)  # type: ignore[union-attr]
            rss_peak = max(rss_peak, rss)
            # The lag every 3 s; /metrics like a Prometheus scrape, every 15 s. (Ours has
            # ~14 series per LarkApp, so a 3 s scrape at 5,000 would be the bench's load,
            # not the operator's; its /health carries the lag too.)
            lag = None
            if time.time() - scraped_at >= 15:
                scraped_at = time.time()
                scraped = scrape_many(port, "lark_service_event_loop_lag_seconds", SHORTFALL)
                lag = scraped.get("lark_service_event_loop_lag_seconds")
                # The shortfall the operator projected (ours): it should be > 0 before
                # any lateness shows, or the alert on it comes too late.
                if (short := scraped.get(SHORTFALL)) is not None:
                    shortfall_peak = max(shortfall_peak, short)
                    if short > 0 and first_shortfall is None:
                        first_shortfall = round(time.time() - window_start, 1)
            if design == "ours" and lag is None:
                lag = _health(port).get("eventLoopLagSeconds")
            elif lag is None:
                lag = scrape(port, "lark_service_event_loop_lag_seconds")
            lag_peak = max(lag_peak, lag or 0.0)
            samples += 1
            time.sleep(3)
        w1, c1 = apiserver_writes(cp), emu.calls()["total"]
        _, cpu1 = proc_stats(op.proc.pid)  # type: ignore[union-attr]
        split = {k: v - split0.get(k, 0.0) for k, v in cpu_split(cp).items()}
        writes = {k: w1.get(k, 0) - w0.get(k, 0) for k in w1 if w1.get(k, 0) - w0.get(k, 0)}
        result.update(
            window_seconds=round(window),
            cycles=args.cycles,
            upstream_calls_per_cycle=round((c1 - c0) / args.cycles, 1),
            # token calls only (ours also asks bot/v3/info once per app per cycle: AppAvailable)
            token_calls_per_app_per_cycle=round(
                (token_calls(emu) - t0_calls) / args.cycles / apps, 2
            ),
            # the apiserver's own Lease renewals are not the operator's doing
            apiserver_writes_per_app_per_cycle=round(
                sum(v for k, v in writes.items() if k != "leases") / n / args.cycles, 2
            ),
            writes_by_resource={k: round(v / n / args.cycles, 2) for k, v in writes.items()},
            rss_mib_peak=round(max(rss_peak, rss_watch.stop()), 1),
            cpu_seconds_window=round(cpu1 - cpu0, 1),
            cpu_percent_window=round(100 * (cpu1 - cpu0) / window, 1),
            # Who else used the machine's CPU in the window (the last: share of all cores).
            apiserver_cpu_seconds_window=round(split.get("apiserver", 0.0), 1),
            etcd_cpu_seconds_window=round(split.get("etcd", 0.0), 1),
            bench_cpu_seconds_window=round(split["bench"], 1),
            machine_busy_percent_window=round(
                100 * split["machine_busy"] / split["machine_total"], 1
            ),
            worst_token_lateness_seconds=round(max(0.0, worst_late), 1),
            lateness_samples=samples,
            event_loop_lag_max_seconds=round(lag_peak, 3),
            shortfall_peak=shortfall_peak if design == "ours" else None,
            first_shortfall_seconds=first_shortfall,
            first_lateness_seconds=first_late,
        )
        log(json.dumps({k: v for k, v in result.items() if k != "writes_by_resource"}))

        # Restart: upstream calls in the first minute vs the apps due in it.
        op.stop()
        restart_at = time.time()
        c_before, t_before = emu.calls()["total"], token_calls(emu)
        due, due_apps = due_in_minute(custom, core, design, restart_at)
        op, port = start_operator(design, work, kubeconfig, emu.url, rate, f"{n}-restart", env)
        started_in = time.time() - restart_at
        # Token lateness through the restart too (the tokens due in that minute have 60-66 s
        # left when their renewal is due: a slow resume would show here), sampled for 90 s.
        late_after, calls, tokens = 0.0, None, None
        while time.time() - restart_at < 90:
            late_after = max(late_after, token_lateness(core))
            if calls is None and time.time() - restart_at >= 60:
                calls = emu.calls()["total"] - c_before
                tokens = token_calls(emu) - t_before
            time.sleep(3)
        result.update(
            restart_calls_first_minute=calls,
            restart_token_calls_first_minute=tokens,
            restart_larkapps_due_in_minute=due,
            restart_apps_due_in_minute=due_apps,
            restart_healthy_after_seconds=round(started_in, 1),
            restart_worst_token_lateness_seconds=round(max(0.0, late_after), 1),
        )
        log(
            f"restart: {result['restart_calls_first_minute']} upstream calls in the first "
            f"minute ({tokens} for tokens); {due} LarkApps of {due_apps} apps due ({apps} "
            f"apps); healthy after {started_in:.1f}s; worst lateness {late_after:.1f}s"
        )
    finally:
        if op:
            op.stop()
        if emu:
            emu.stop()
        cp.down()
    return result


ROWS = [
    ("LarkApps there before the burst", "fill"),
    ("burst: LarkApps created at once", "burst"),
    ("burst: created in (s)", "create_seconds"),
    ("burst: create->Ready p50 (s)", "ready_p50"),
    ("burst: create->Ready p99 (s)", "ready_p99"),
    ("burst: all Ready after (s)", "all_ready_seconds"),
    ("operator RSS peak (MiB)", "rss_mib_peak"),
    ("operator CPU in window (s)", "cpu_seconds_window"),
    ("  apiserver CPU in window (s)", "apiserver_cpu_seconds_window"),
    ("  etcd CPU in window (s)", "etcd_cpu_seconds_window"),
    ("  bench CPU in window (s)", "bench_cpu_seconds_window"),
    ("  machine CPU busy in window (%)", "machine_busy_percent_window"),
    ("upstream calls / cycle", "upstream_calls_per_cycle"),
    ("token calls / app / cycle [1]", "token_calls_per_app_per_cycle"),
    ("apiserver writes / app / cycle", "apiserver_writes_per_app_per_cycle"),
    ("worst token lateness (s)", "worst_token_lateness_seconds"),
    ("  first lateness at (s into window)", "first_lateness_seconds"),
    ("projected shortfall, peak", "shortfall_peak"),
    ("  first said at (s into window)", "first_shortfall_seconds"),
    ("event-loop lag max (s)", "event_loop_lag_max_seconds"),
    ("calls in 1st min after restart", "restart_calls_first_minute"),
    ("  of them for tokens", "restart_token_calls_first_minute"),
    ("worst token lateness, restart (s)", "restart_worst_token_lateness_seconds"),
]


# What one LarkApp costs at the real token lifetime: a refresh every 2 h minus the default
# renewBefore (10m) and half its jitter.
REAL_TTL, REAL_LEAD = 7200.0, 600 * 1.05


def real_time_load(n: int, ttl: float) -> str:
    """The refresh rate of a row, and how many LarkApps on real 2-hour tokens make it."""
    rate = n / (ttl - 60 * 1.05)  # every LarkApp has renewBefore 1m, jitter 0.1
    real = rate * (REAL_TTL - REAL_LEAD)
    return (
        f"load: {rate:.0f} refreshes/s sustained (a {ttl:.0f} s token per LarkApp) = the "
        f"rate of ~{real:,.0f} LarkApps on real 2-hour tokens (renewBefore 10m)"
    )


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    for n in sorted({r["n"] for r in results}):
        ours = next((r for r in results if r["n"] == n and r["design"] == "ours"), {})
        naive = next((r for r in results if r["n"] == n and r["design"] == "naive"), {})
        apps = (ours or naive).get("apps")
        lines.append(f"\nN = {n} LarkApps ({apps} distinct apps)")
        lines.append(real_time_load(n, (ours or naive).get("ttl", 150)))
        lines.append(f"{'metric':34} {'ours':>10} {'naive':>10} {'ours/naive':>11}")
        for label, key in ROWS:
            a, b = ours.get(key), naive.get(key)
            ratio = (
                f"{a / b:.2f}"
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
                else "-"
            )
            lines.append(
                f"{label:34} {a if a is not None else '-':>10} "
                f"{b if b is not None else '-':>10} {ratio:>11}"
            )
        due = [
            f"{r.get('restart_larkapps_due_in_minute', '-')} "
            f"({r.get('restart_apps_due_in_minute', '-')})"
            for r in (ours, naive)
        ]
        lines.append(f"{'  LarkApps (apps) due in it':34} {due[0]:>10} {due[1]:>10}")
    return "\n".join(lines)


def main() -> int:
    # SIGTERM/Ctrl-C unwind through the `finally` blocks, which stop every process started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100,1000,5000,10000")
    p.add_argument("--designs", default="ours,naive")
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--ttl", type=int, default=150, help="token lifetime in the emulator (s)")
    p.add_argument("--share", type=int, default=10, help="LarkApps per distinct app id")
    p.add_argument(
        "--burst",
        type=int,
        default=1000,
        help="LarkApps created at once and timed (the rest first)",
    )
    p.add_argument("--ready-timeout", type=float, default=600)
    p.add_argument(
        "--fanout",
        default="1000/1,5000/50",
        help="fan-out scenarios, LARKAPPS/CLUSTERLARKAPPS comma-separated ('' to skip; "
        "bench/fanout.py); --sizes '' skips the scale scenarios",
    )
    p.add_argument(
        "--operator-env",
        action="append",
        default=[],
        help="NAME=VALUE for our operator (repeatable), e.g. LARK_OPERATOR_API_BURST=50",
    )
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lark-bench-"))
    results = []
    for n in [int(x) for x in args.sizes.split(",") if x]:
        for design in args.designs.split(","):
            results.append(run_one(n, design, args, work))
            print(table(results), flush=True)
    import fanout  # bench/fanout.py: ClusterLarkApps used by many namespaces

    fan = fanout.run_all(args, work)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {"args": vars(args), "results": results, "fanout": fan}
    path.write_text(json.dumps(doc, indent=2))
    if results:
        print("\n" + table(results))
    if fan:
        print(fanout.table(fan))
    print(f"\nfigures written to {path}; logs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
