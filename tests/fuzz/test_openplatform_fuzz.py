"""Fuzzing the Open Platform client's handling of answers, through the real client and a
real socket: whatever the upstream sends, get_token returns a well-formed token or raises
a clear OpenPlatformError that leaks nothing, within its timeouts.

CI runs a few hundred examples per test (see conftest.examples); LARK_FUZZ_EXAMPLES=N
runs N. An input that breaks a property is printed as a corpus entry (and written to
$LARK_FUZZ_SAVE_DIR when set); it belongs in tests/fuzz/corpus/ once fixed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from lark_operator.emulator import running_emulator
from lark_operator.openplatform import ErrorKind, OpenPlatformClient, OpenPlatformError
from tests.fuzz.conftest import fuzz
from tests.fuzz.oracle import (
    CALL_BOUND,
    CONNECT_TIMEOUT,
    MAX_BODY,
    READ_TIMEOUT,
    Outcome,
    call,
    check,
)
from tests.fuzz.strategies import cases, raw_cases, secrets
from tests.fuzz.upstream import Case, ScriptedUpstream


def run(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, case: Case, **kw: int
) -> Outcome:
    if currently_in_test_context():
        note("corpus entry: " + json.dumps(case.to_json(), ensure_ascii=True)[:4000])
    try:
        out = loop.run_until_complete(call(upstream, case, **kw))
        check(case, out, **kw)
    except BaseException:
        save = os.environ.get("LARK_FUZZ_SAVE_DIR")
        if save:  # hypothesis replays the shrunk example last: it is the one that stays
            Path(save).mkdir(parents=True, exist_ok=True)
            case.save(Path(save) / "last-failure.json")
        raise
    return out


@fuzz(500)
@given(case=cases())
def test_any_answer_ends_in_a_token_or_a_clear_error(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, case: Case
) -> None:
    run(loop, upstream, case)


@fuzz(150)
@given(case=cases())
def test_retries_of_bad_answers_stay_bounded(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, case: Case
) -> None:
    run(loop, upstream, case, max_attempts=3)


@fuzz(300)
@given(case=raw_cases())
def test_barely_http_answers(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, case: Case
) -> None:
    run(loop, upstream, case)


# --- size: the body is read with a cap, never whole ------------------------------------------


def _padded(size: int) -> bytes:
    """A valid success answer of exactly `size` bytes (padded with JSON whitespace)."""
    core = b'{"code":0,"msg":"ok","tenant_access_token":"t-sized","expire":7200}'
    return core[:-1] + b" " * (size - len(core)) + b"}"


@fuzz(20, per=10)
@given(
    delta=st.integers(-64, 64),
    framing=st.sampled_from(["length", "chunked", "close"]),
    encoding=st.sampled_from(["identity", "gzip"]),
)
def test_the_body_cap_is_exact(
    loop: asyncio.AbstractEventLoop,
    upstream: ScriptedUpstream,
    delta: int,
    framing: str,
    encoding: str,
) -> None:
    case = Case(body=_padded(MAX_BODY + delta), framing=framing, encoding=encoding)
    out = run(loop, upstream, case)
    assert (out.token is not None) == (delta <= 0)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
@pytest.mark.parametrize("megabytes", [10, 50])
def test_huge_bodies_are_not_read_into_memory(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, framing: str, megabytes: int
) -> None:
    case = Case(body=b'{"code":0,"msg":"', repeat=megabytes << 20, framing=framing)
    tracemalloc.start()
    try:
        out = run(loop, upstream, case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.error is not None
    assert "larger than 1048576 bytes" in str(out.error), str(out.error)
    assert out.error.code_label == "oversized"
    assert peak < 8 << 20, f"the client held {peak >> 20} MiB for one answer"
    assert out.elapsed < 3


def test_a_compression_bomb_is_stopped_at_the_cap(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream
) -> None:
    bomb = gzip.compress(b'{"code":0,"msg":"' + b" " * (50 << 20), compresslevel=9)
    case = Case(body=b"", headers=[("Content-Encoding", "gzip")])
    case.payload = lambda: bomb  # type: ignore[method-assign]
    tracemalloc.start()
    try:
        out = run(loop, upstream, case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.error is not None and "larger than 1048576 bytes" in str(out.error)
    assert peak < 8 << 20


# --- time: slow and silent upstreams hit the timeouts -----------------------------------------

TIMEOUT_CASES = {
    "silent": Case(raw=b"", hang=True),
    "half a status line": Case(raw=b"HTTP/1.1 20", hang=True),
    "headers, no body": Case(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n", hang=True),
    "body trickles forever": Case(
        body=b'{"code":0,"msg":"' + b"z" * 4000, framing="close", piece=1, delay=0.05
    ),
    "chunks trickle": Case(
        body=b'{"code":0,"msg":"' + b"z" * 4000, framing="chunked", piece=2, delay=0.1
    ),
    "interim 100, then nothing": Case(raw=b"HTTP/1.1 100 Continue\r\n\r\n", hang=True),
}


@pytest.mark.parametrize("name", list(TIMEOUT_CASES))
def test_slow_or_silent_upstream_times_out(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, name: str
) -> None:
    out = run(loop, upstream, TIMEOUT_CASES[name])
    assert out.error is not None
    assert out.error.kind is ErrorKind.TRANSIENT
    assert "timed out" in str(out.error)
    assert out.elapsed <= CONNECT_TIMEOUT + READ_TIMEOUT + 1.0


@fuzz(6, per=1000)
@given(
    delay=st.floats(0.02, 0.3),
    piece=st.integers(1, 64),
    framing=st.sampled_from(["close", "chunked", "length"]),
)
def test_trickling_bodies_never_hang(
    loop: asyncio.AbstractEventLoop,
    upstream: ScriptedUpstream,
    delay: float,
    piece: int,
    framing: str,
) -> None:
    body = b'{"code":0,"msg":"ok","tenant_access_token":"t-trickle","expire":7200}'
    case = Case(body=body + b" " * 2000, framing=framing, piece=piece, delay=delay)
    out = run(loop, upstream, case)
    assert out.elapsed < CALL_BOUND


# --- the emulator's own fault modes -------------------------------------------------------


@fuzz(60, per=50)
@given(
    secret=secrets,
    fault=st.fixed_dictionaries(
        {},
        optional={
            "code": st.sampled_from([0, 10003, 99991400, 99991663, 1500, 4242424]),
            "http_status": st.sampled_from([200, 400, 429, 500, 502, 503]),
            "malformed": st.sampled_from(
                ["html", "truncated", "wrong_types", "missing_fields", "json_garbage"]
            ),
            "reset": st.booleans(),
            "latency_ms": st.sampled_from([0, 5, 5, 5, 5, 5, 5, 1500]),
            "ratelimit_reset": st.sampled_from([0, 1, 1e9]),
        },
    ),
    token_type=st.sampled_from(["tenant", "app"]),
)
def test_emulator_faults(
    loop: asyncio.AbstractEventLoop, secret: str, fault: dict[str, object], token_type: str
) -> None:
    async def go() -> None:
        async with running_emulator({"cli_fuzz": secret}) as emu:
            async with OpenPlatformClient(
                connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, max_attempts=2
            ) as client:
                session = await client._get_session()
                async with session.post(emu.base_url + "/_emulator/faults", json=fault) as r:
                    # A fault of nothing but defaults is refused: then there is none.
                    assert r.status < 300 or _harmless(fault), await r.text()
                try:
                    async with asyncio.timeout(CALL_BOUND):
                        tok = await client.get_token(emu.base_url, "cli_fuzz", secret, token_type)
                except OpenPlatformError as e:
                    text = str(e)
                    assert "/open-apis/auth/v3/" in text and secret not in text
                    assert len(text) <= 700 and text.isprintable()
                    assert not _harmless(fault), text
                    return
                assert _harmless(fault), (fault, tok)
                assert tok.value.startswith(("t-", "a-")) and tok.expires_at > 0
                return
            raise AssertionError("unreachable")

    loop.run_until_complete(go())


def _harmless(fault: dict[str, Any]) -> bool:
    """A fault that still lets the emulator answer normally (and in time)."""
    return (
        set(fault) <= {"latency_ms", "ratelimit_reset", "reset"}
        and not fault.get("reset")
        and float(fault.get("latency_ms", 0)) < 500
    )
