"""Every operator knob in one place: CLI flags override LARK_OPERATOR_* environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lark_operator import credentials


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LARK_OPERATOR_{name}", default)


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(f"LARK_OPERATOR_{name}", "")
    return [x.strip() for x in raw.split(",") if x.strip()]


@dataclass
class Settings:
    namespaces: list[str] = field(default_factory=lambda: _env_list("NAMESPACES"))
    all_namespaces: bool = False
    health_port: int = int(_env("HEALTH_PORT", "9091"))
    metrics_port: int | None = None  # None: same as the health port
    log_format: str = _env("LOG_FORMAT", "text")
    log_level: str = _env("LOG_LEVEL", "INFO")
    # Read (and compared) by credentials.py, which the CLI commands use as well.
    allowed_base_urls: list[str] = field(default_factory=credentials.allowed_base_urls)
    # Open Platform client
    api_rate_per_second: float = float(_env("API_RATE", "10"))
    api_burst: int = int(_env("API_BURST", "20"))
    # Refresh scheduling
    max_concurrent_refreshes: int = int(_env("MAX_CONCURRENT_REFRESHES", "32"))
    retry_base: float = float(_env("RETRY_BASE_SECONDS", "5"))
    retry_cap: float = float(_env("RETRY_CAP_SECONDS", "300"))
    credentials_retry_cap: float = float(_env("CREDENTIALS_RETRY_CAP_SECONDS", "600"))
    near_expiry_retry_cap: float = float(_env("NEAR_EXPIRY_RETRY_CAP_SECONDS", "30"))
    # Probes
    max_concurrent_probes: int = int(_env("MAX_CONCURRENT_PROBES", "16"))
    probe_status_every: float = float(_env("PROBE_STATUS_EVERY_SECONDS", "300"))
    # HA
    # HA by Lease (leader.py): only the holder of the Lease runs kopf and the controller.
    leader_elect: bool = _env("LEADER_ELECT", "false").lower() in ("1", "true", "yes")
    leader_elect_namespace: str | None = os.environ.get("LARK_OPERATOR_LEADER_ELECT_NAMESPACE")
    leader_elect_name: str = _env("LEADER_ELECT_NAME", "lark-operator")
    lease_duration: float = float(_env("LEASE_DURATION_SECONDS", "15"))
    renew_deadline: float = float(_env("RENEW_DEADLINE_SECONDS", "10"))
    retry_period: float = float(_env("RETRY_PERIOD_SECONDS", "2"))
