"""The environment variables the CLI reads, and `validate-env`'s judgement of them.

A dependency is named by a URL variable (the first set wins):
  PostgreSQL  DATABASE_URL, LARK_DATABASE_URL, POSTGRES_DSN
  Redis       REDIS_URL, LARK_REDIS_URL
  RabbitMQ    RABBITMQ_URL, LARK_RABBITMQ_URL;
              management API: RABBITMQ_MANAGEMENT_URL, LARK_RABBITMQ_MANAGEMENT_URL
or, as the original runbooks' environment has it, by parts: POSTGRES_HOST, POSTGRES_PORT,
POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD (REDIS_*, RABBITMQ_* likewise), used when no
URL variable is set. Values are normalised as Secret values are (credentials.normalise_text:
surrounding whitespace stripped); secret values are never shown.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from lark_operator import credentials

ENV_URLS: dict[str, tuple[str, ...]] = {
    "postgres": ("DATABASE_URL", "LARK_DATABASE_URL", "POSTGRES_DSN"),
    "redis": ("REDIS_URL", "LARK_REDIS_URL"),
    "rabbitmq": ("RABBITMQ_URL", "LARK_RABBITMQ_URL"),
}
MANAGEMENT_ENV = ("RABBITMQ_MANAGEMENT_URL", "LARK_RABBITMQ_MANAGEMENT_URL")
APP_ID = re.compile(r"^cli_[A-Za-z0-9]+$")  # as the CRD schema: cli_ + letters/digits, <= 64
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Parts:
    """A dependency given as separate variables (the runbooks' POSTGRES_HOST, ...)."""

    scheme: str
    host: str
    port: str
    default_port: int
    user: str | None
    password: str
    database: str | None = None  # PostgreSQL's database name

    @property
    def variables(self) -> tuple[str, ...]:
        names = (self.host, self.port, self.database, self.user, self.password)
        return tuple(n for n in names if n)


PARTS: dict[str, Parts] = {
    "postgres": Parts(
        "postgresql",
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        5432,
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
    ),
    "redis": Parts("redis", "REDIS_HOST", "REDIS_PORT", 6379, None, "REDIS_PASSWORD"),
    "rabbitmq": Parts(
        "amqp", "RABBITMQ_HOST", "RABBITMQ_PORT", 5672, "RABBITMQ_USER", "RABBITMQ_PASSWORD"
    ),
}


def value(env: Mapping[str, str], name: str | None) -> str | None:
    """A variable as the CLI uses it: stripped; None when unset, empty or blank."""
    return credentials.normalise_text(env.get(name, "")) if name else None


def env_url(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str | None]:
    """(variable, value) of the first URL variable set; (first name, None) when none is."""
    for name in names:
        found = value(env, name)
        if found is not None:
            return name, found
    return names[0], None


def dependency_url(env: Mapping[str, str], dependency: str) -> tuple[str, str | None]:
    """Where the URL of a dependency comes from (a variable, or `POSTGRES_HOST, ...`) and
    the URL; (the variables to set, None) when it is not configured."""
    name, url = env_url(env, ENV_URLS[dependency])
    if url is not None:
        return name, url
    parts = PARTS[dependency]
    built = parts_url(env, parts)
    if built is not None:
        return ", ".join(n for n in parts.variables if value(env, n) is not None), built
    return " or ".join([*ENV_URLS[dependency], parts.host]), None


def parts_url(env: Mapping[str, str], parts: Parts) -> str | None:
    """The URL the parts make (None without a host); malformed parts make a URL that
    dsn.parse refuses, naming what is wrong without the password."""
    host = value(env, parts.host)
    if host is None:
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = value(env, parts.port) or str(parts.default_port)
    user, password = value(env, parts.user), value(env, parts.password)
    auth = quote(user or "", safe="") + (f":{quote(password, safe='')}" if password else "")
    database = value(env, parts.database)
    path = "/" + quote(database, safe="") if database else "/"
    return f"{parts.scheme}://{auth + '@' if auth else ''}{host}:{port}{path}"


# --- validate-env ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvCheck:
    variable: str
    status: str  # OK | MISSING | MALFORMED | UNSET (optional and not set)
    detail: str

    @property
    def failed(self) -> bool:
        return self.status in ("MISSING", "MALFORMED")


def check_env(env: Mapping[str, str]) -> list[EnvCheck]:
    """Every variable the operator's CLI reads, judged; values of secrets are never shown."""
    return [
        _check_app_id(env.get("LARK_APP_ID")),
        _check_secret(env.get("LARK_APP_SECRET")),
        _check_domain(env.get("LARK_DOMAIN")),
        _check_allowlist(env.get(credentials.ALLOWED_BASE_URLS_ENV)),
        *_check_dependencies(env),
    ]


def _check_app_id(raw: str | None) -> EnvCheck:
    name = "LARK_APP_ID"
    if not raw:
        return EnvCheck(name, "MISSING", "required: the app's ID, e.g. cli_a1b2c3d4e5f6")
    if raw != raw.strip():
        return EnvCheck(name, "MALFORMED", "has leading or trailing whitespace")
    if not APP_ID.match(raw) or len(raw) > 64:
        return EnvCheck(
            name, "MALFORMED", f"{raw[:70]!r} is not 'cli_' followed by letters/digits (<= 64)"
        )
    return EnvCheck(name, "OK", raw)


def _check_secret(raw: str | None) -> EnvCheck:
    # Judged as `validate` reads it: the one normalisation of credentials.py.
    name = "LARK_APP_SECRET"
    if credentials.normalise_text(raw or "") is None:
        what = "is empty or only whitespace" if raw else "is not set"
        return EnvCheck(
            name, "MISSING", f"required: the App Secret from the developer console ({what})"
        )
    if raw != (raw or "").strip():
        return EnvCheck(
            name, "OK", "set (value not shown); surrounding whitespace is stripped, as by validate"
        )
    return EnvCheck(name, "OK", "set (value not shown)")


def _check_domain(raw: str | None) -> EnvCheck:
    from lark_operator.probes import dsn
    from lark_operator.vocabulary.domains import BASE_URLS

    name = "LARK_DOMAIN"
    if not raw:
        return EnvCheck(name, "UNSET", f"optional; defaults to feishu ({BASE_URLS['feishu']})")
    if raw in BASE_URLS:
        return EnvCheck(name, "OK", f"{raw} ({BASE_URLS[raw]})")
    try:
        dsn.parse(raw, dsn.SCHEMES["management"])  # http/https with a host
    except dsn.InvalidURL as exc:
        return EnvCheck(name, "MALFORMED", f"not feishu, lark or an http(s) URL: {exc}")
    return EnvCheck(name, "OK", dsn.redact(raw))


def _check_allowlist(raw: str | None) -> EnvCheck:
    from lark_operator.probes import dsn

    name = credentials.ALLOWED_BASE_URLS_ENV
    urls = credentials.allowed_base_urls(None, {name: raw or ""})
    if not urls:
        return EnvCheck(name, "UNSET", "optional: base URLs besides feishu/lark (comma-separated)")
    for url in urls:
        try:
            dsn.parse(url, dsn.SCHEMES["management"])
        except dsn.InvalidURL as exc:
            return EnvCheck(name, "MALFORMED", f"{dsn.redact(url)} is not an http(s) URL: {exc}")
        metadata = credentials.metadata_address(url)
        if metadata is not None:
            return EnvCheck(
                name, "MALFORMED", f"{url} is {metadata}: never allow an App Secret to go there"
            )
    return EnvCheck(name, "OK", ", ".join(urls))


def _check_dependencies(env: Mapping[str, str]) -> list[EnvCheck]:
    from lark_operator.probes import dsn

    checks = []
    for dep, names in ENV_URLS.items():
        present = [n for n in names if value(env, n) is not None]
        for i, var in enumerate(present):
            checks.append(_check_url(var, env[var], dsn.SCHEMES[dep], present[0] if i else None))
        parts = PARTS[dep]
        given = [n for n in parts.variables if value(env, n) is not None]
        if given:
            checks += _check_parts(env, parts, winner=present[0] if present else None)
        elif not present:
            alt = f" (or {parts.host}, {parts.port}, ...)"
            checks.append(EnvCheck(names[0], "UNSET", f"optional: the {dep} URL{alt}"))
    present = [n for n in MANAGEMENT_ENV if value(env, n) is not None]
    for i, var in enumerate(present):
        checks.append(
            _check_url(var, env[var], dsn.SCHEMES["management"], present[0] if i else None)
        )
    if not present:
        checks.append(EnvCheck(MANAGEMENT_ENV[0], "UNSET", "optional: the rabbitmq management URL"))
    return checks


def _check_url(var: str, raw: str, schemes: Sequence[str], winner: str | None) -> EnvCheck:
    from lark_operator.probes import dsn

    used = f" (ignored: {winner} wins)" if winner else ""
    url = credentials.normalise_text(raw) or ""
    try:
        dsn.parse(url, schemes)
    except dsn.InvalidURL as exc:
        return EnvCheck(var, "MALFORMED", f"{exc}{used}")
    return EnvCheck(var, "OK", dsn.redact(url) + used)


def _check_parts(env: Mapping[str, str], parts: Parts, winner: str | None) -> list[EnvCheck]:
    """The runbooks' POSTGRES_HOST, POSTGRES_PORT, ... of one dependency (some are set)."""
    if winner is not None:
        return [
            EnvCheck(n, "OK", f"set (ignored: {winner} wins)")
            for n in parts.variables
            if value(env, n) is not None
        ]
    host, port = value(env, parts.host), value(env, parts.port)
    checks = [_check_host(parts.host, host)]
    if port is None:
        checks.append(EnvCheck(parts.port, "UNSET", f"optional; defaults to {parts.default_port}"))
    elif not port.isdigit() or not 0 < int(port) < 65536:
        checks.append(EnvCheck(parts.port, "MALFORMED", f"{port[:20]!r} is not a port (1-65535)"))
    else:
        checks.append(EnvCheck(parts.port, "OK", port))
    if parts.database:
        db = value(env, parts.database)
        detail = db if db else f"optional; defaults to the user name ({parts.user})"
        checks.append(EnvCheck(parts.database, "OK" if db else "UNSET", detail))
    if parts.user:
        user = value(env, parts.user)
        if user is not None:
            checks.append(EnvCheck(parts.user, "OK", user))
        elif parts.scheme == "postgresql":
            checks.append(EnvCheck(parts.user, "MISSING", f"required with {parts.host}"))
        else:
            checks.append(EnvCheck(parts.user, "UNSET", "optional; defaults to guest"))
    set_pw = value(env, parts.password) is not None
    checks.append(
        EnvCheck(parts.password, "OK", "set (value not shown)")
        if set_pw
        else EnvCheck(parts.password, "UNSET", "optional: no password")
    )
    return checks


def _check_host(name: str, host: str | None) -> EnvCheck:
    if host is None:
        return EnvCheck(name, "MISSING", "required when the other parts are set")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not _HOSTNAME.match(host):
            return EnvCheck(name, "MALFORMED", f"{host[:70]!r} is not a host name or IP address")
    return EnvCheck(name, "OK", host)
