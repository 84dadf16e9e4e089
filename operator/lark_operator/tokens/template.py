"""`target.template`: the token Secret's data rendered from Jinja2 templates, in a sandbox.

Templates are written by whoever may create a LarkApp in a namespace and run inside the
operator, which serves every namespace. Jinja2's SandboxedEnvironment keeps them away from
Python internals (no attribute access to `__class__` and the like); on top of it a template
may use only a small expression language, checked on its syntax tree before anything runs:
text, the variables, constants, `~` concatenation, if/else, comparisons, tests, and a few
filters that cannot blow up. No loops, macros, assignments, calls, subscripts or arithmetic,
at most MAX_FILTERS filters, output capped: a template that could run for minutes or fill
memory would stall every other LarkApp's refresh. Unknown variables are errors
(StrictUndefined), never empty strings. Error messages never carry a token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

from lark_operator.models import TokenTemplate

# What a template may read (tenant_key joins them for store apps).
VARIABLES = ("tenant_access_token", "app_access_token", "expires_at", "app_id")
MAX_FILTERS = 8  # per key: b64encode grows text by 4/3, so 8 in a row by at most ~10x
MAX_VALUE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 256 * 1024  # a Secret holds at most 1 MiB

_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Concat,
    nodes.Filter,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Test,
)
_TESTS = frozenset({"defined", "undefined", "none", "string"})


def _b64encode(value: object) -> str:
    return base64.b64encode(str(value).encode()).decode()


def _tojson(value: object) -> str:
    return json.dumps(value)


_FILTERS: dict[str, Callable[..., str]] = {
    "b64encode": _b64encode,
    "tojson": _tojson,  # a JSON string literal, quotes included
    "upper": lambda v: str(v).upper(),
    "lower": lambda v: str(v).lower(),
    "trim": lambda v: str(v).strip(),
    "string": str,
}


class TemplateRenderError(Exception):
    """A key that does not render: `key` names it, the message says why (never a token)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"spec.target.template.data[{key!r}]: {message}")
        self.key = key


class _Refused(ValueError):
    """A construct outside the token templates' small language."""


class _Environment(SandboxedEnvironment):
    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters = dict(_FILTERS)
        self.tests: dict[str, Any] = {k: v for k, v in self.tests.items() if k in _TESTS}
        self.globals: dict[str, Any] = {}


_ENV = _Environment()


def _check(tree: nodes.Template) -> None:
    """Refuse anything outside the small language (_Refused saying what)."""
    filters = 0
    for node in [tree, *tree.find_all(nodes.Node)]:
        if not isinstance(node, _ALLOWED_NODES):
            raise _Refused(f"{type(node).__name__.lower()} is not allowed in a token template")
        if isinstance(node, nodes.Name) and (node.ctx != "load" or node.name not in VARIABLES):
            raise _Refused(f"unknown variable {node.name!r} (known: {', '.join(VARIABLES)})")
        if isinstance(node, nodes.Filter):
            filters += 1
            if node.name not in _FILTERS:
                raise _Refused(f"filter {node.name!r} is not allowed (allowed: {_names()})")
            if node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
                raise _Refused(f"filter {node.name!r} takes no arguments here")
        if isinstance(node, nodes.Test) and node.name not in _TESTS:
            raise _Refused(f"test {node.name!r} is not allowed")
        if isinstance(node, nodes.Const) and not isinstance(node.value, (str, int, bool)):
            raise _Refused("only text, whole numbers and booleans are allowed as constants")
    if filters > MAX_FILTERS:
        raise _Refused(f"at most {MAX_FILTERS} filters per key")


def _names() -> str:
    return ", ".join(sorted(_FILTERS))


def render(template: TokenTemplate, variables: Mapping[str, str]) -> dict[str, str]:
    """Every key of `template.data` rendered with `variables` (the ones not held left
    undefined), or TemplateRenderError for the first key that does not render."""
    known = {k: v for k, v in variables.items() if k in VARIABLES}
    out: dict[str, str] = {}
    total = 0
    for key, source in sorted(template.data.items()):
        try:
            tree = _ENV.parse(source)
            _check(tree)
            text = _ENV.from_string(tree).render(known)
        except (TemplateError, ValueError, TypeError) as e:
            raise TemplateRenderError(key, _redact(_describe(e), known.values())) from None
        size = len(text.encode())
        total += size
        if size > MAX_VALUE_BYTES or total > MAX_TOTAL_BYTES:
            raise TemplateRenderError(
                key,
                f"renders to {size} bytes (at most {MAX_VALUE_BYTES} per key and "
                f"{MAX_TOTAL_BYTES} in all)",
            )
        out[key] = text
    return out


def _describe(e: Exception) -> str:
    if isinstance(e, _Refused):
        return str(e)
    line = getattr(e, "lineno", None)
    where = f" (line {line})" if line else ""
    message = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}{where}: {message}"


def _redact(text: str, values: Iterable[str]) -> str:
    for value in values:
        if value:
            text = text.replace(value, "[redacted]")
    return text
