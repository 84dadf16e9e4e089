"""Token: its value never shows in repr or str, only its fingerprint."""

from __future__ import annotations

import re

from lark_operator.openplatform import Token


def test_token_repr_hides_the_value() -> None:
    t = Token(value="t-very-secret-token", token_type="tenant", expires_at=2.0, obtained_at=1.0)
    assert "t-very-secret-token" not in repr(t) and "t-very-secret-token" not in str(t)
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", t.fingerprint())
    assert t.fingerprint() in repr(t)
