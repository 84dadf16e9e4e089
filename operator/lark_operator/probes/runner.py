"""The frame every probe runs in: one hard timeout, no exception escapes, secrets scrubbed,
metrics observed once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from lark_operator import metrics
from lark_operator.probes import dsn
from lark_operator.probes.result import (
    INVALID_URL,
    PROBE_ERROR,
    TIMEOUT,
    Finding,
    ProbeResult,
    failure,
)

log = logging.getLogger("lark_operator.probes")


class Progress:
    """What the probe is waiting for, so a timeout can say where it stuck."""

    def __init__(self) -> None:
        self.stage = "connecting"
        self.details: dict[str, Any] = {}  # whatever was learned before a failure

    def __str__(self) -> str:
        return self.stage


class ProbeFailed(Exception):
    """Raised inside a probe body to end it with a chosen reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message


Body = Callable[[Progress], Awaitable[ProbeResult]]
Classifier = Callable[[BaseException], Finding | None]


async def run_probe(
    dependency: str,
    timeout: float,
    urls: tuple[str | None, ...],
    body: Body,
    classify: Classifier,
) -> ProbeResult:
    started = time.monotonic()
    progress = Progress()
    try:
        async with asyncio.timeout(timeout):
            result = await body(progress)
    except TimeoutError:
        msg = f"no answer within {timeout:g}s while {progress}"
        result = _fail(dependency, TIMEOUT, msg, progress)
    except dsn.InvalidURL as exc:
        result = _fail(dependency, INVALID_URL, str(exc))
    except ProbeFailed as exc:
        result = _fail(dependency, exc.reason, exc.message, progress)
    except Exception as exc:  # a probe never raises: the reason says what happened
        finding = classify(exc)
        if finding is None:
            # Type only: driver exception texts and tracebacks can hold the DSN.
            log.warning("probe of %s failed unexpectedly: %s", dependency, type(exc).__name__)
            finding = Finding(PROBE_ERROR, f"unexpected {type(exc).__name__} while {progress}")
        result = _fail(dependency, finding.reason, finding.message, progress)
    result = _scrubbed(result, urls)
    elapsed = time.monotonic() - started
    metrics.PROBE_DURATION.labels(dependency).observe(elapsed)
    metrics.PROBES_TOTAL.labels(dependency, result.reason).inc()
    return result


def _fail(
    dependency: str, reason: str, message: str, progress: Progress | None = None
) -> ProbeResult:
    details = progress.details if progress is not None else {}
    return failure(dependency, reason, message, details=details)


def _scrubbed(result: ProbeResult, urls: tuple[str | None, ...]) -> ProbeResult:
    return replace(
        result,
        message=dsn.scrub(result.message, *urls),
        details={k: dsn.scrub(v, *urls) for k, v in result.details.items()},
    )
