"""target.rolloutRestart: a workload that reads the token once is rolled once per new token
(the pod template annotation), within the first half of renewBefore, and an operator killed
and restarted does not roll it a second time for the same token (counted in the
Deployment's metadata.generation, which only a pod template change moves here)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from lark_operator.vocabulary.names import TOKEN_FINGERPRINT_ANNOTATION
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

APP, SECRET = "cli_rollout01", "s3cret-rollout-value"
RENEW_BEFORE = 60.0


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rolled(env: Any, name: str = "api") -> tuple[int, str | None]:
    d = env.kube.deployment(env.ns, name)
    annotations = d.spec.template.metadata.annotations or {}
    return int(d.metadata.generation), annotations.get(TOKEN_FINGERPRINT_ANNOTATION)


def _token(env: Any) -> dict[str, Any]:
    return dict((env.kube.larkapp(env.ns, "app").get("status") or {}).get("token") or {})


class GenerationWatch(threading.Thread):
    """Samples the Deployment all along: every (generation, fingerprint) pair it showed."""

    def __init__(self, env: Any):
        super().__init__(daemon=True)
        self.env, self.seen, self.stop = env, set(), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.seen.add(_rolled(self.env))
            except Exception:
                pass


def test_rolled_once_per_token_across_a_kill_and_restart(env_factory: Any) -> None:
    # ttl 100 s, re-issue in the last 95 s, renewBefore 1m: a new token every ~40 s.
    env = env_factory({APP: SECRET}, token_ttl=100, reissue_window=95)
    env.app_secret("lark-secret", SECRET)
    env.kube.create_deployment(env.ns, "api")
    assert _rolled(env) == (1, None)
    restart = [{"kind": "Deployment", "name": "api"}, {"kind": "Deployment", "name": "gone"}]
    env.larkapp("app", APP, target={"rolloutRestart": restart})
    watch = GenerationWatch(env)
    watch.start()
    try:
        first = eventually(lambda: _token(env).get("fingerprint"), 30, what="first token")
        eventually(lambda: _rolled(env) == (2, first), RENEW_BEFORE / 2 + 10, what="rolled")
        landed = _ts(_token(env)["refreshedAt"])
        assert time.time() <= landed + RENEW_BEFORE / 2 + 5  # within the first half

        # The missing one is a condition and an Event, not a crash.
        cond = eventually(
            lambda: (
                (c := env.kube.condition(env.ns, "app", "RolloutRestart"))
                and c["status"] == "False"
                and c
            ),
            RENEW_BEFORE / 2 + 10,
            what="the missing workload said",
        )
        assert cond["reason"] == "WorkloadNotFound"
        assert "gone" in cond["message"]
        eventually(  # posted right after the status write read above
            lambda: "RolloutRestartFailed" in env.kube.event_reasons(env.ns, "app"),
            10,
            what="a RolloutRestartFailed Event",
        )

        # kill -9 after the patch, and a new operator: the same token is not applied again.
        env.op.kill()
        env.start_operator()
        second = eventually(
            lambda: (f := _token(env).get("fingerprint")) != first and f, 90, what="next token"
        )
        eventually(lambda: _rolled(env) == (3, second), RENEW_BEFORE / 2 + 10, what="rolled")
        # Generation 3 came with the second token only: never 3 with the first one.
        assert (3, first) not in watch.seen
        assert {g for g, _ in watch.seen} <= {1, 2, 3}
        # And the new operator read the workload before patching: no patch for the first.
        restarted = env.op.logs()
        assert f"rolled Deployment api for token {second}" in restarted
        assert f"rolled Deployment api for token {first}" not in restarted

        # The list fixed: the condition says it is enabled.
        env.kube.patch_larkapp(env.ns, "app", {"spec": {"target": {"rolloutRestart": restart[:1]}}})
        eventually(
            lambda: (
                (env.kube.condition(env.ns, "app", "RolloutRestart") or {}).get("reason")
                == "Enabled"
            ),
            15,
        )
        assert env.ready("app")
    finally:
        watch.stop.set()
        watch.join(5)
