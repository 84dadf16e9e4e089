"""Every answer that ever broke the client, replayed on every run (tests/fuzz/corpus/).

An entry is a `Case` in JSON (see upstream.Case.to_json) with `why` it is there and,
optionally, the outcome it pins: `expect` (success|error) and a `message` fragment.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fuzz.oracle import call, check
from tests.fuzz.upstream import Case, ScriptedUpstream

CORPUS = Path(__file__).parent / "corpus"
ENTRIES = sorted(CORPUS.glob("*.json"))


def test_the_corpus_is_not_empty() -> None:
    assert len(ENTRIES) >= 30


@pytest.mark.parametrize("path", ENTRIES, ids=[p.stem for p in ENTRIES])
def test_corpus_entry(
    loop: asyncio.AbstractEventLoop, upstream: ScriptedUpstream, path: Path
) -> None:
    data = json.loads(path.read_text())
    assert data.get("why"), f"{path.name}: say why the entry is there"
    case = Case.from_json(data)
    out = loop.run_until_complete(call(upstream, case))
    check(case, out)
    if data.get("expect") == "success":
        assert out.token is not None, str(out.error)
    elif data.get("expect") == "error":
        assert out.error is not None, f"success reported: {out.token!r}"
        if data.get("message"):
            assert data["message"] in str(out.error), str(out.error)
