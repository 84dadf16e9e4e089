"""Every operator knob in one place, read once at start by `load()`: `run`'s flags override
the LARK_OPERATOR_* environment. A bad value stops the start with one line naming the
variable (or flag) and what is wrong; nothing is read at import time."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lark_operator.vocabulary.domains import is_base_url, metadata_address

PREFIX = "LARK_OPERATOR_"
CommaList = Annotated[list[str], NoDecode]


def _env(name: str) -> Any:
    """A field read from LARK_OPERATOR_<name> (for fields whose name is not the variable's)."""
    return AliasChoices(name.lower(), PREFIX + name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", populate_by_name=True, validate_default=True
    )

    namespaces: CommaList = []  # empty: every namespace
    health_port: int = Field(9091, ge=1, le=65535)
    metrics_port: int | None = Field(None, ge=1, le=65535)  # None: the health port
    bind_address: str = "0.0.0.0"  # of /health and /metrics
    log_format: Literal["json", "text"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Per-LarkApp series beyond the token expiry: for every LarkApp, or only those that
    # are not Ready (metrics.py; docs/scaling.md says when to choose which).
    larkapp_metrics: Literal["all", "unhealthy"] = "all"
    # Base URLs a LarkApp may name in spec.domain besides feishu/lark (the CLI reads the
    # same variable, lark_operator.credentials).
    allowed_base_urls: CommaList = []
    # Where cluster-wide things live: ClusterLarkApps' App Secrets are read from there (and
    # only there), store apps' tickets are kept there. None: the operator's own namespace
    # (its service account's, else the kubeconfig context's).
    cluster_resource_namespace: str | None = Field(
        None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    # Open Platform client
    api_rate_per_second: float = Field(10.0, gt=0, validation_alias=_env("API_RATE"))
    api_burst: int = Field(20, ge=1)
    # Refresh scheduling
    max_concurrent_refreshes: int = Field(32, ge=1)
    # Refreshes per second one replica completes; None: measured (reconcile/capacity.py).
    refresh_capacity: float | None = Field(None, gt=0)
    retry_base: float = Field(5.0, gt=0, validation_alias=_env("RETRY_BASE_SECONDS"))
    retry_cap: float = Field(300.0, gt=0, validation_alias=_env("RETRY_CAP_SECONDS"))
    credentials_retry_cap: float = Field(
        600.0, gt=0, validation_alias=_env("CREDENTIALS_RETRY_CAP_SECONDS")
    )
    # Transient failures are retried at most this far apart (a token may lapse otherwise).
    near_expiry_retry_cap: float = Field(
        30.0, gt=0, validation_alias=_env("NEAR_EXPIRY_RETRY_CAP_SECONDS")
    )
    # Probes
    max_concurrent_probes: int = Field(16, ge=1)
    probe_status_every: float = Field(
        300.0, gt=0, validation_alias=_env("PROBE_STATUS_EVERY_SECONDS")
    )
    # Store apps: the platform's event callbacks (POST /lark/events; 0: not served).
    events_port: int = Field(9092, ge=0, le=65535)
    # A callback signed longer ago than this (or this far ahead) is a replay: refused.
    event_max_age: float = Field(300.0, gt=0, validation_alias=_env("EVENT_MAX_AGE_SECONDS"))
    # The platform pushes an app_ticket about hourly: none for this long is TicketMissing.
    ticket_stale_after: float = Field(
        7200.0, gt=0, validation_alias=_env("TICKET_STALE_AFTER_SECONDS")
    )
    # At most one app_ticket/resend per app this often (at start without a ticket, on 10012).
    ticket_resend_interval: float = Field(
        60.0, gt=0, validation_alias=_env("TICKET_RESEND_INTERVAL_SECONDS")
    )
    # HA by Lease (app/leader.py): only the holder of the Lease runs kopf and the reconciler.
    leader_elect: bool = False
    leader_elect_namespace: str | None = None
    leader_elect_name: str = "lark-operator"
    lease_duration: float = Field(15.0, gt=0, validation_alias=_env("LEASE_DURATION_SECONDS"))
    renew_deadline: float = Field(10.0, gt=0, validation_alias=_env("RENEW_DEADLINE_SECONDS"))
    retry_period: float = Field(2.0, gt=0, validation_alias=_env("RETRY_PERIOD_SECONDS"))

    @field_validator("namespaces", "allowed_base_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [x.strip() for x in value.split(",") if x.strip()]
        return value

    @field_validator("allowed_base_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not is_base_url(url.rstrip("/")):
                raise ValueError(
                    f"{url!r} is not an http(s) base URL with a host (e.g. https://open.example.com)"
                )
            if (where := metadata_address(url)) is not None:
                raise ValueError(f"{url!r} is {where}: an App Secret is never sent there")
        return urls

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class SettingsError(ValueError):
    """One line: the variable or flag, and what is wrong with its value."""


# Fields whose flag is not --<field name with dashes>.
_FLAGS = {"allowed_base_urls": "--allowed-base-url", "namespaces": "--namespace"}


def load(**overrides: Any) -> Settings:
    """Settings from the environment, with `overrides` (from flags; None = not given) on
    top. SettingsError names the first bad variable or flag."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        field = field.removeprefix(PREFIX).lower()
        source = (
            _FLAGS.get(field, "--" + field.replace("_", "-"))
            if field in given
            else _variable(field)
        )
        raise SettingsError(f"{source}: {_message(err)}") from None


def _variable(field: str) -> str:
    alias = (
        Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    )
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return PREFIX + field.upper()


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = value if isinstance(value, (str, int, float)) and len(str(value)) < 200 else None
    return f"{msg} (got {shown!r})" if shown is not None else msg
