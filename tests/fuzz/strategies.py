"""Hypothesis strategies for hostile Open Platform answers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from lark_operator.openplatform.errors import CODES
from tests.fuzz.upstream import ENCODINGS, FRAMINGS, Case

HUGE_INTS = [2**31, 2**63, 2**64 + 1, 10**309, -(10**309), 10**4000, -(10**4000)]
NUMBERS: st.SearchStrategy[Any] = st.one_of(
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

# Any alphabet, behind a prefix that no message template contains (so that a secret found in
# an error message was put there, not made up by hypothesis out of template words).
secrets = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Zs", "Zl", "Zp"]),
    min_size=4,
    max_size=44,
).map(lambda s: "Sk3t" + s)

real_tokens = st.builds(
    lambda p, body: p + body,
    st.sampled_from(["t-", "a-", "u-"]),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
        min_size=16,
        max_size=60,
    ),
)
tokens = st.one_of(
    real_tokens,
    st.just(""),
    st.text(max_size=30),  # whitespace, control characters, any unicode
    st.sampled_from(["\ud800", "t-\udfff-x", " t-padded ", "t-a\r\nX-Injected: 1", "t-\x00"]),
    st.just("t-" + "x" * 5000),
    SCALARS,
    st.lists(st.text(max_size=5), max_size=2),
)
expires = st.one_of(
    st.integers(min_value=-5, max_value=100_000),
    st.sampled_from([0, 1, 7140, 7200, 86_400, 86_401, *HUGE_INTS]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([7200.0, 0.5, "7200", True, None, [], {}]),
)
codes = st.one_of(
    st.just(0),
    st.sampled_from(sorted(CODES)),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.sampled_from(["0", 0.0, -0.0, False, True, None, [], {}, "99991663"]),
)


@st.composite
def messages(draw: st.DrawFn, secret: str, token: Any) -> Any:
    leak = str(token) if isinstance(token, str) else "t-leaky-token-value"
    return draw(
        st.one_of(
            st.text(max_size=60),
            st.just(f"invalid app_secret {secret}"),
            st.just(json.dumps({"app_id": "cli_fuzz", "app_secret": secret})),
            st.just(f"token {leak} rejected"),
            st.just("x" * 20_000),
            st.just("line one\nline two\r\n\x1b[31mred\x1b[0m\x00"),
            st.just("\ud800 lone surrogate"),
            JSON_VALUES,
            st.fixed_dictionaries({"detail": st.just(secret)}),
        )
    )


@st.composite
def bodies(draw: st.DrawFn, secret: str, token_type: str) -> bytes:
    """A JSON-ish body: mostly near-valid answers with fields wrong in every way."""
    field_name = f"{token_type}_access_token"
    kinds = ["near", "near", "near", "valid", "random", "bytes", "nested", "empty"]
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return b""
    if kind == "random":
        obj: Any = draw(JSON_VALUES)
    elif kind == "bytes":
        return draw(st.binary(max_size=200))
    elif kind == "nested":
        depth = draw(st.sampled_from([10, 1000, 5000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = '{"code":0}'
        return (opener * depth + inner + closer * depth).encode()
    else:
        token = draw(real_tokens) if kind == "valid" else draw(tokens)
        obj = {}
        fields = {
            "code": draw(st.just(0)) if kind == "valid" else draw(codes),
            "msg": draw(messages(secret, token)),
            field_name: token,
            "expire": draw(st.integers(1, 86_400)) if kind == "valid" else draw(expires),
        }
        for name, value in fields.items():
            if (kind == "valid" and name != "msg") or draw(st.integers(0, 9)) > 0:
                obj[name] = value
        if draw(st.booleans()):
            obj.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3)))
    try:
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    except (ValueError, RecursionError):
        text = repr(obj)
    raw = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none"] * 6 + ["truncate", "badutf8", "bom", "utf16"]))
    if mutation == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mutation == "badutf8":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]))
        raw = raw[:at] + junk + raw[at:]
    elif mutation == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mutation == "utf16":
        raw = text.encode("utf-16", "surrogatepass")
    return raw


CONTENT_TYPES = [
    "application/json; charset=utf-8",
    "application/json",
    "text/html",
    "text/plain; charset=latin-1",
    "application/octet-stream",
    "",
    "application/json; charset=utf-16",
    "a" * 3000,
    "\u00e9t\u00e9/json",
]
RESETS = ["1", "0", "-1", "0.5", "nan", "inf", "-inf", "1e308", "99999999999", "soon", ""]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    secret = draw(secrets)
    token_type = draw(st.sampled_from(["tenant", "app"]))
    headers: list[tuple[str, str]] = []
    ctype = draw(st.sampled_from([*CONTENT_TYPES, None, "secret"]))
    if ctype == "secret":
        headers.append(("Content-Type", f"application/json; app_secret={secret}"))
    elif ctype is not None:
        headers.append(("Content-Type", ctype))
    if draw(st.integers(0, 3)) == 0:
        headers.append(("x-ogw-ratelimit-reset", draw(st.sampled_from(RESETS))))
    if draw(st.integers(0, 5)) == 0:
        headers.append(("Location", draw(st.sampled_from(["/canary", "http://127.0.0.1:9/x"]))))
    if draw(st.integers(0, 7)) == 0:
        headers.append(
            (
                draw(st.sampled_from(["X-Echo", "X-Bad Name", "\u00fc"])),
                draw(st.one_of(st.just(secret), st.text(max_size=20))),
            )
        )
    status = draw(
        st.one_of(
            st.just(200),
            st.integers(100, 599),
            st.sampled_from([204, 301, 302, 307, 308, 429, 500, 502]),
        )
    )
    framing = draw(st.sampled_from(["length"] * 4 + list(FRAMINGS)))
    encoding = "identity"
    if framing != "short" and draw(st.integers(0, 4)) == 0:
        encoding = draw(st.sampled_from(ENCODINGS))
    return Case(
        status=status,
        body=draw(bodies(secret, token_type)),
        headers=headers,
        framing=framing,
        encoding=encoding,
        secret=secret,
        token_type=token_type,
    )


@st.composite
def raw_cases(draw: st.DrawFn) -> Case:
    """Answers that are barely HTTP: random status lines, header bytes and framing."""
    secret = draw(secrets)
    status = draw(st.one_of(st.integers(0, 1200).map(str), st.text(max_size=5)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 ", "ICY", ""]))
    reason = draw(st.one_of(st.text(max_size=10), st.just(secret)))
    lines = [f"{version} {status} {reason}".encode("utf-8", "surrogatepass")]
    for _ in range(draw(st.integers(0, 4))):
        lines.append(
            draw(
                st.one_of(
                    st.binary(max_size=40),
                    st.sampled_from(
                        [
                            b"Content-Length: -1",
                            b"Content-Length: 99999999999999999999",
                            b"Content-Length: 5, 6",
                            b"Transfer-Encoding: chunked",
                            b"Transfer-Encoding: gzip, chunked",
                            b"Content-Encoding: br",
                            b"Content-Type: application/json",
                            b"x-ogw-ratelimit-reset: 1e999",
                            b"Location: /canary",
                            b"Connection: close",
                            b": empty-name",
                            b"X-Folded: a\r\n b",
                            b"X-Echo: " + secret.encode(),
                            secret.encode() + b": x",
                            b"X-" + b"h" * 9000 + b": v",
                        ]
                    ),
                )
            )
        )
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.just(b'{"code":0,"tenant_access_token":"t-ok","expire":7200}'),
            st.just(b'5\r\n{"cod\r\n0\r\n\r\n'),
            st.just(b"zz\r\nnot-a-chunk\r\n"),
            st.just(b"Bad app_secret " + secret.encode()),
        )
    )
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    raw = sep.join(lines) + sep + sep + body
    if draw(st.integers(0, 3)) == 0:
        raw = draw(st.binary(max_size=200))
    return Case(raw=raw, secret=secret)
