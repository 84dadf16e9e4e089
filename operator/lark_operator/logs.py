"""Log formatting: JSON lines for machines, text for people.

A context (request id, namespace, name, app id) follows one reconcile through every call
it makes, via contextvars, so the Open Platform client's log lines carry the request id
of the reconcile that caused them without passing it around.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

CONTEXT_FIELDS = ("request_id", "namespace", "name", "app_id", "error_code")
# Always strings: the platform's codes are identifiers (`jq 'select(.error_code ==
# "99991663")'`, as the runbooks query them), not numbers to add up.
_STRING_FIELDS = ("error_code",)
# LogRecord already has `name` (the logger's); a LarkApp's name travels as `larkapp`.
_RECORD_FIELDS = {
    "request_id": "request_id",
    "namespace": "namespace",
    "larkapp": "name",
    "app_id": "app_id",
    "error_code": "error_code",
}
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "lark_log_context", default=None
)


def current_context() -> dict[str, Any]:
    return _context.get() or {}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    added = {k: v for k, v in fields.items() if v is not None}
    token = _context.set({**current_context(), **added})
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = dict(current_context())
    for attr, key in _RECORD_FIELDS.items():
        value = getattr(record, attr, None)
        if value is not None:
            out[key] = value
    # kopf's per-object loggers carry the object reference.
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict):
        out.setdefault("namespace", ref.get("namespace"))
        out.setdefault("name", ref.get("name"))
    for key in _STRING_FIELDS:
        if out.get(key) is not None:
            out[key] = str(out[key])
    return {k: v for k, v in out.items() if v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # type only: texts may hold secrets
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%H:%M:%S")
        f = _fields(record)
        where = f"{f['namespace']}/{f['name']} " if "namespace" in f and "name" in f else ""
        extra = " ".join(f"{k}={f[k]}" for k in ("request_id", "error_code") if k in f)
        return f"{ts} {record.levelname:<7} {where}{record.getMessage()}" + (
            f" [{extra}]" if extra else ""
        )


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "asyncio", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if root.level > logging.DEBUG:
        # kopf says "Handler ... succeeded" for every event of every object; the operator's
        # own lines already tell what happened. Failures still come through.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
