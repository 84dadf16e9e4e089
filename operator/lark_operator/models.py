"""Typed view of a LarkApp spec. Handlers parse the raw spec here on their first line.

The CRD schema already rejects malformed objects at apply time; these models apply the
same defaults so that code never reads a raw dict, and so objects created before a
default existed still parse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lark_operator.vocabulary.dependencies import DEPENDENCIES, Dependency
from lark_operator.vocabulary.domains import base_url
from lark_operator.vocabulary.timefmt import parse_duration


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_Model):
    name: str
    key: str


class AppSecretRef(SecretKeyRef):
    key: str = "appSecret"


class Tokens(_Model):
    tenant: bool = True
    app: bool = False


class Refresh(_Model):
    renew_before: str = Field("10m", alias="renewBefore")
    jitter: float = 0.1

    @property
    def renew_before_seconds(self) -> float:
        return parse_duration(self.renew_before)


class Target(_Model):
    secret_name: str | None = Field(None, alias="secretName")
    creation_policy: Literal["Owner", "Orphan"] = Field("Owner", alias="creationPolicy")
    deletion_policy: Literal["Delete", "Retain"] = Field("Delete", alias="deletionPolicy")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class DsnRef(SecretKeyRef):
    key: str = "dsn"


class UrlRef(SecretKeyRef):
    key: str = "url"


class ManagementUrlRef(SecretKeyRef):
    key: str = "managementUrl"


class PostgresProbe(_Model):
    dsn_secret_ref: DsnRef = Field(alias="dsnSecretRef")
    max_connections_percent: int = Field(90, alias="maxConnectionsPercent")
    max_replication_lag_seconds: int = Field(30, alias="maxReplicationLagSeconds")
    deadlocks_per_interval: int = Field(1, alias="deadlocksPerInterval")


class RedisProbe(_Model):
    url_secret_ref: UrlRef = Field(alias="urlSecretRef")
    max_memory_percent: int = Field(90, alias="maxMemoryPercent")


class QueueWatch(_Model):
    name: str
    vhost: str = "/"
    max_ready: int = Field(1000, alias="maxReady")
    require_consumers: bool = Field(True, alias="requireConsumers")


class RabbitMQProbe(_Model):
    url_secret_ref: UrlRef = Field(alias="urlSecretRef")
    management_url_secret_ref: ManagementUrlRef | None = Field(None, alias="managementUrlSecretRef")
    queues: tuple[QueueWatch, ...] = ()


class Probes(_Model):
    interval: str = "30s"
    timeout: str = "5s"
    postgres: PostgresProbe | None = None
    redis: RedisProbe | None = None
    rabbitmq: RabbitMQProbe | None = None

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    @property
    def configured(self) -> tuple[Dependency, ...]:
        return tuple(d for d in DEPENDENCIES if getattr(self, d) is not None)


class EncryptKeyRef(SecretKeyRef):
    key: str = "encryptKey"


class VerificationTokenRef(SecretKeyRef):
    key: str = "verificationToken"


class StoreTenants(_Model):
    """Which tenants get a tenant_access_token: those listed, or every tenant that has
    installed the app (learned from app_open, dropped on app_uninstalled)."""

    keys: tuple[str, ...] = ()
    all: bool = False


class StoreSpec(_Model):
    encrypt_key_ref: EncryptKeyRef = Field(alias="encryptKeyRef")
    verification_token_ref: VerificationTokenRef = Field(alias="verificationTokenRef")
    tenants: StoreTenants = Field(default_factory=StoreTenants)

    def secret_names(self) -> set[str]:
        return {self.encrypt_key_ref.name, self.verification_token_ref.name}


class LarkAppSpec(_Model):
    app_id: str = Field(alias="appId")
    app_secret_ref: AppSecretRef = Field(alias="appSecretRef")
    domain: str = "feishu"
    tokens: Tokens = Field(default_factory=Tokens)
    refresh: Refresh = Field(default_factory=lambda: Refresh.model_validate({}))
    target: Target = Field(default_factory=lambda: Target.model_validate({}))
    probes: Probes = Field(default_factory=Probes)
    suspend: bool = False
    app_type: Literal["SelfBuilt", "Store"] = Field("SelfBuilt", alias="appType")
    store: StoreSpec | None = None  # the schema requires it iff appType is Store

    @property
    def is_store(self) -> bool:
        return self.app_type == "Store" and self.store is not None

    @classmethod
    def parse(cls, spec: Any) -> LarkAppSpec:
        return cls.model_validate(dict(spec or {}))

    def token_secret_name(self, larkapp_name: str) -> str:
        return self.target.secret_name or f"{larkapp_name}-lark-token"

    def base_url(self) -> str:
        """The Open Platform base URL (not yet checked against --allowed-base-url)."""
        return base_url(self.domain)

    def referenced_secrets(self) -> set[str]:
        """Names of every Secret in the namespace this LarkApp reads."""
        names = {self.app_secret_ref.name}
        if self.store is not None:
            names |= self.store.secret_names()
        p = self.probes
        if p.postgres:
            names.add(p.postgres.dsn_secret_ref.name)
        if p.redis:
            names.add(p.redis.url_secret_ref.name)
        if p.rabbitmq:
            names.add(p.rabbitmq.url_secret_ref.name)
            if p.rabbitmq.management_url_secret_ref:
                names.add(p.rabbitmq.management_url_secret_ref.name)
        return names
