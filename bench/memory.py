"""Where the operator's memory goes at N LarkApps: `bench/memory.py --n 10000`.

Starts the local control plane and the emulator as bench/run.py does, starts the operator
with tracemalloc (bench/tracemalloc_hook), creates N LarkApps, waits until every one is
Ready and one refresh cycle has passed (so every token Secret was written twice and every
series exported), has the operator dump a snapshot, and prints the biggest consumers:
grouped by the operator's own innermost frame (or, outside it, by library line), and by
file. tracemalloc slows the operator down and adds its own overhead to RSS: read the
shares, not the absolute RSS.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    NS,
    REPO,
    ControlPlane,
    Emulator,
    ReadyWatcher,
    client,
    config,
    larkapp_body,
    log,
    proc_stats,
    reissue_window,
    start_operator,
)

HOOK = Path(__file__).resolve().parent / "tracemalloc_hook"


def where(frames: tracemalloc.Traceback) -> str:
    """The innermost frame of the operator's own code, else of a library, else the line."""
    inner = list(frames)[::-1]  # innermost first
    for f in inner:
        if "/lark_operator/" in f.filename:
            return "lark_operator/" + f.filename.split("/lark_operator/", 1)[1] + f":{f.lineno}"
    for f in inner:
        if "site-packages/" in f.filename:
            return f.filename.split("site-packages/", 1)[1] + f":{f.lineno}"
    return f"{Path(inner[0].filename).name}:{inner[0].lineno}"


def report(snapshot_path: Path, n: int, rss: float, top: int) -> str:
    snap = tracemalloc.Snapshot.load(str(snapshot_path))
    snap = snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    traced = sum(s.size for s in snap.statistics("filename"))
    lines = [
        f"RSS {rss:.0f} MiB (with tracemalloc's own overhead); traced {traced / 2**20:.0f} MiB "
        f"= {traced / n / 1024:.1f} KiB per LarkApp",
        "",
        f"{'KiB/LarkApp':>12} {'MiB':>7}  where (innermost operator frame, else library line)",
    ]
    groups: dict[str, int] = {}
    for stat in snap.statistics("traceback"):
        key = where(stat.traceback)
        groups[key] = groups.get(key, 0) + stat.size
    for key, size in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{size / n / 1024:12.2f} {size / 2**20:7.1f}  {key}")
    lines += ["", f"{'KiB/LarkApp':>12} {'MiB':>7}  file"]
    for stat in snap.statistics("filename")[:top]:
        name = stat.traceback[0].filename
        name = name.split("site-packages/", 1)[-1].split("/operator/", 1)[-1]
        lines.append(f"{stat.size / n / 1024:12.2f} {stat.size / 2**20:7.1f}  {name}")
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--share", type=int, default=10, help="LarkApps per distinct app id")
    p.add_argument("--ttl", type=int, default=600, help="token lifetime in the emulator (s)")
    p.add_argument("--frames", type=int, default=12, help="frames kept per allocation")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the operator")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lark-memory-"))
    apps = max(1, args.n // args.share)
    cp = ControlPlane(work / "cp", crds_dir=REPO / "crds")
    cp.up(timeout=120)
    emu = op = None
    try:
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        api.configuration.connection_pool_maxsize = 16
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        secrets = {f"cli_bench{i:05d}": f"bench-secret-{i}" for i in range(apps)}
        ttl = args.ttl
        emu = Emulator(
            work / "emulator.log", secrets, token_ttl=ttl, reissue_window=reissue_window(ttl)
        )
        emu.start()
        for i, secret in enumerate(secrets.values()):
            core.create_namespaced_secret(
                NS,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=f"app-{i:05d}"),
                    string_data={"appSecret": secret},
                ),
            )
        snapshot = work / "operator.tracemalloc"
        extra = {
            "PYTHONPATH": f"{HOOK}{os.pathsep}{REPO}",
            "LARK_BENCH_TRACEMALLOC": str(args.frames),
            "LARK_BENCH_SNAPSHOT": str(snapshot),
            **dict(e.split("=", 1) for e in args.env),
        }
        op, _port = start_operator(
            "ours", work, str(cp.kubeconfig), emu.url, 10 * 7200 / ttl, "memory", extra
        )
        watcher = ReadyWatcher(api)
        watcher.start()

        def create(i: int) -> None:
            body = larkapp_body(i, apps, emu.url)
            custom.create_namespaced_custom_object(
                "larkservice.io", "v1alpha1", NS, "larkapps", body
            )

        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.n)))
        log(f"{args.n} LarkApps created in {time.time() - t0:.0f}s")
        while len(watcher.ready) < args.n and op.alive() and time.time() - t0 < 3600:
            time.sleep(5)
        log(f"{len(watcher.ready)} Ready after {time.time() - t0:.0f}s; one refresh cycle")
        time.sleep(ttl - 60 * 1.05 + 30)
        rss, _ = proc_stats(op.proc.pid)  # type: ignore[union-attr]
        os.kill(op.proc.pid, signal.SIGUSR1)  # type: ignore[union-attr]
        deadline = time.time() + 600
        while not snapshot.exists() and time.time() < deadline:
            time.sleep(2)
        watcher.stop_flag.set()
        text = report(snapshot, args.n, rss, args.top)
        print(text, flush=True)
        (work / "report.txt").write_text(text)
        log(f"snapshot {snapshot}; report {work / 'report.txt'}")
    finally:
        if op:
            op.stop()
        if emu:
            emu.stop()
        cp.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
