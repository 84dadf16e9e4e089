"""ReplicationLag through the operator against a real streaming replica: replay paused on
the replica while the primary writes makes real lag; resuming replay recovers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.servers import PostgresReplication
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_replica01", "s3cret-replica-value"


def test_paused_replica_reads_replication_lag_and_recovers_when_replay_resumes(
    env_factory: Any, postgres_replication: PostgresReplication
) -> None:
    pair = postgres_replication
    env = env_factory({APP: SECRET})
    env.app_secret("lark-secret", SECRET)
    env.secrets.update({pair.replica.password, pair.primary.superuser_password})
    env.kube.put_secret(env.ns, "replica-db", {"dsn": pair.replica.dsn})
    env.larkapp(
        "app",
        APP,
        probes={
            "interval": "5s",
            "timeout": "2s",
            "postgres": {
                "dsnSecretRef": {"name": "replica-db", "key": "dsn"},
                "maxReplicationLagSeconds": 3,
            },
        },
    )

    def postgres() -> dict[str, Any]:
        return env.kube.condition(env.ns, "app", "PostgresHealthy") or {}

    def probe_status() -> dict[str, Any]:
        status = env.kube.larkapp(env.ns, "app").get("status") or {}
        return (status.get("probes") or {}).get("postgres") or {}

    def events(reason: str) -> list[str]:
        return [e.message for e in env.kube.events(env.ns, "app") if e.reason == reason]

    with pair.writing():  # the primary commits throughout: a replica that keeps up is fine
        eventually(lambda: postgres().get("status") == "True", 40, what="PostgresHealthy")
        assert probe_status()["details"]["role"] == "replica"

        pair.wait_caught_up()
        pair.pause_replay()
        eventually(
            lambda: postgres().get("reason") == "ReplicationLag",
            30,
            what="PostgresHealthy=False reason ReplicationLag",
        )
        assert postgres()["status"] == "False"
        details = probe_status()["details"]
        assert float(details["replayLagSeconds"]) >= 3 and details["replayPaused"] == "true"
        failed = eventually(lambda: events("ProbeFailed"), 15, what="a ProbeFailed Event")
        assert "ReplicationLag" in failed[0] and "replay is paused" in failed[0], failed
        assert env.kube.larkapp(env.ns, "app")["status"]["phase"] == "Degraded"

        pair.resume_replay()
        eventually(lambda: postgres().get("status") == "True", 30, what="recovery")
        eventually(lambda: events("ProbeRecovered"), 15, what="a ProbeRecovered Event")
        assert probe_status()["details"]["replayPaused"] == "false"
        eventually(lambda: env.ready("app"), 15, what="Ready again")
    # One failure and one recovery: the lag did not flap while it grew or as replay caught up.
    assert env.kube.event_reasons(env.ns, "app").count("ProbeFailed") == 1
