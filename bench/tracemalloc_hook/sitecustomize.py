"""Loaded at interpreter start when bench/memory.py puts this directory on PYTHONPATH:
traces allocations (LARK_BENCH_TRACEMALLOC frames each) and dumps a snapshot to
LARK_BENCH_SNAPSHOT on SIGUSR1. Nothing of the operator is changed."""

import os
import signal
import tracemalloc

if os.environ.get("LARK_BENCH_TRACEMALLOC"):
    tracemalloc.start(int(os.environ["LARK_BENCH_TRACEMALLOC"]))

    def _dump(*_: object) -> None:
        path = os.environ["LARK_BENCH_SNAPSHOT"]
        tracemalloc.take_snapshot().dump(path + ".tmp")
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, _dump)
