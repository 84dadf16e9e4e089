"""The dependencies a LarkApp may have probed, with the words each is shown by."""

from __future__ import annotations

from enum import StrEnum

from lark_operator.vocabulary.reasons import ConditionType


class Dependency(StrEnum):
    POSTGRES = "postgres"
    REDIS = "redis"
    RABBITMQ = "rabbitmq"

    @property
    def condition(self) -> ConditionType:
        return _CONDITIONS[self]

    @property
    def label(self) -> str:
        """As a person names it (messages, Events)."""
        return _LABELS[self]


_CONDITIONS = {
    Dependency.POSTGRES: ConditionType.POSTGRES_HEALTHY,
    Dependency.REDIS: ConditionType.REDIS_HEALTHY,
    Dependency.RABBITMQ: ConditionType.RABBITMQ_HEALTHY,
}
_LABELS = {
    Dependency.POSTGRES: "PostgreSQL",
    Dependency.REDIS: "Redis",
    Dependency.RABBITMQ: "RabbitMQ",
}
DEPENDENCIES: tuple[Dependency, ...] = tuple(Dependency)
