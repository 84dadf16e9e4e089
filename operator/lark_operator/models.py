"""Typed views of LarkApp and ClusterLarkApp specs. Handlers parse the raw spec here on their
first line.

The CRD schema already rejects malformed objects at apply time; these models apply the
same defaults so that code never reads a raw dict, and so objects created before a
default existed still parse.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class TokenTemplate(_Model):
    """The token Secret's own shape: its `type` and every data key as a Jinja2 template
    (tokens/template.py renders them in a sandbox)."""

    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)


WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class WorkloadRef(_Model):
    """A workload in the LarkApp's own namespace to roll after each new token."""

    kind: WorkloadKind
    name: str


class Target(_Model):
    secret_name: str | None = Field(None, alias="secretName")
    creation_policy: Literal["Owner", "Orphan"] = Field("Owner", alias="creationPolicy")
    deletion_policy: Literal["Delete", "Retain"] = Field("Delete", alias="deletionPolicy")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    template: TokenTemplate | None = None
    rollout_restart: tuple[WorkloadRef, ...] = Field((), alias="rolloutRestart")


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


class AppCredentials(_Model):
    """What a refresh needs: the app, where its App Secret is, which platform, which tokens
    and when to renew. A ClusterLarkApp is one (its App Secret in the cluster resource
    namespace); a LarkApp with appId has one (`LarkAppSpec.credentials`)."""

    app_id: str = Field(alias="appId")
    app_secret_ref: AppSecretRef = Field(alias="appSecretRef")
    domain: str = "feishu"
    tokens: Tokens = Field(default_factory=Tokens)
    refresh: Refresh = Field(default_factory=lambda: Refresh.model_validate({}))

    def base_url(self) -> str:
        """The Open Platform base URL (not yet checked against --allowed-base-url)."""
        return base_url(self.domain)


class LabelRequirement(_Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # NotIn: also when the key is absent


class LabelSelector(_Model):
    """A Kubernetes label selector, with its semantics: every term must hold, and an empty
    selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: tuple[LabelRequirement, ...] = Field((), alias="matchExpressions")

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


class AllowedNamespaces(_Model):
    names: tuple[str, ...] = ()
    selector: LabelSelector | None = None

    def allows(self, namespace: str, labels: Mapping[str, str] | None) -> bool | None:
        """Whether `namespace` may use the ClusterLarkApp: named, or its labels match the
        selector. None when only its labels could tell and they are not known (yet)."""
        if namespace in self.names:
            return True
        if self.selector is None:
            return False
        return None if labels is None else self.selector.matches(labels)


class ClusterLarkAppSpec(AppCredentials):
    allowed_namespaces: AllowedNamespaces = Field(alias="allowedNamespaces")

    @classmethod
    def parse(cls, spec: Any) -> ClusterLarkAppSpec:
        return cls.model_validate(dict(spec or {}))


class AppRef(_Model):
    kind: Literal["ClusterLarkApp"] = "ClusterLarkApp"
    name: str


class LarkAppSpec(_Model):
    # appId and appSecretRef, or appRef (the CRD admits exactly one of the two).
    app_id: str | None = Field(None, alias="appId")
    app_secret_ref: AppSecretRef | None = Field(None, alias="appSecretRef")
    app_ref: AppRef | None = Field(None, alias="appRef")
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

    def credentials(self) -> AppCredentials | None:
        """The app part of a LarkApp that names its own app (None: it uses appRef)."""
        if self.app_id is None or self.app_secret_ref is None:
            return None
        return AppCredentials.model_construct(
            app_id=self.app_id,
            app_secret_ref=self.app_secret_ref,
            domain=self.domain,
            tokens=self.tokens,
            refresh=self.refresh,
        )

    def resolved(self, app: AppCredentials) -> LarkAppSpec:
        """This spec with the app, platform, token set and renewal of the ClusterLarkApp it
        names (appRef): what its token Secret and status describe."""
        update = {"app_id": app.app_id, "domain": app.domain}
        return self.model_copy(update={**update, "tokens": app.tokens, "refresh": app.refresh})

    def referenced_secrets(self) -> set[str]:
        """Names of every Secret in the namespace this LarkApp reads."""
        names = {self.app_secret_ref.name} if self.app_secret_ref else set()
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
