"""docs/cli.md's fingerprint note against what the code computes: the CLI (a Token), the
operator's status (HeldTokens) and the token Secret module all print the same thing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lark_operator.openplatform import Token
from lark_operator.tokens.secret import HeldTokens, fingerprint

CLI_DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
TENANT, APP = "t-0123456789abcdef", "a-fedcba9876543210"


def expected(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def test_cli_and_status_fingerprints_are_one_formula() -> None:
    both = HeldTokens({"tenant": TENANT, "app": APP}, {"tenant": 1.0, "app": 1.0})
    assert Token(TENANT, "tenant", 1.0, 0.0).fingerprint() == expected(TENANT)
    assert both.fingerprint() == fingerprint(TENANT) == expected(TENANT)
    assert HeldTokens({"app": APP}, {"app": 1.0}).fingerprint() == expected(APP)


def test_the_doc_says_what_the_code_computes() -> None:
    text = " ".join(CLI_DOC.read_text().split())
    assert re.search(
        r"`sha256:` followed by the first 12 hex digits of the SHA-256 of the token itself", text
    )
    assert "that of the tenant token it holds (of the app token when it keeps only that)" in text
    assert "the two differ" not in text
