"""Running the operator: check what can be checked before anything starts (credentials for
the apiserver, the /health port), then kopf with the reconciler — or, with leader election,
a standby until the Lease is ours and kopf only while it stays ours.

Fatal start-up problems end the process with exit status 2 and one line saying what to fix,
instead of kopf retrying them forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from lark_operator.app import leader
from lark_operator.app.wiring import Wiring
from lark_operator.kube import AuthError, KubeClient, load_auth
from lark_operator.settings import Settings

log = logging.getLogger("lark_operator.run")


class StartupError(Exception):
    """Something a person must fix before the operator can run (exit status 2)."""


def run(settings: Settings) -> int:
    from lark_operator.app import handlers  # noqa: F401 - registers the kopf handlers

    try:
        election = _election(settings) if settings.leader_elect else None
        return asyncio.run(_main(settings, election))
    except StartupError as e:
        print(f"lark-operator run: {e}", file=sys.stderr)
        return 2


def _election(settings: Settings) -> leader.ElectionConfig:
    config = leader.ElectionConfig(
        namespace=settings.leader_elect_namespace or leader.default_namespace(),
        name=settings.leader_elect_name,
        identity=leader.default_identity(),
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
    )
    try:
        config.validate()
    except ValueError as e:
        raise StartupError(str(e)) from None
    return config


async def _main(settings: Settings, election: leader.ElectionConfig | None) -> int:
    wiring = Wiring(settings)
    await _preflight(wiring)
    try:
        if election is None:
            await _kopf(wiring)
            return 0
        return await _run_elected(wiring, election)
    finally:
        await wiring.stop_events()
        await wiring.stop_health()


async def _preflight(wiring: Wiring) -> None:
    s = wiring.settings
    try:
        wiring.auth = load_auth()
    except AuthError as e:  # missing or unreadable kubeconfig, no in-cluster account
        raise StartupError(f"cannot load Kubernetes credentials: {e}") from None
    wiring.kube = KubeClient(wiring.auth)
    try:
        await wiring.start_health()
    except OSError as e:
        ports = {s.health_port, s.metrics_port or s.health_port}
        where = ", ".join(f"{s.bind_address}:{p}" for p in sorted(ports))
        raise StartupError(
            f"cannot serve /health and /metrics on {where}: {e.strerror or e} "
            "(another process holds the port? use --health-port / --metrics-port)"
        ) from None
    try:
        await wiring.start_events()
    except OSError as e:
        raise StartupError(
            f"cannot serve POST /lark/events on {s.bind_address}:{s.events_port}: "
            f"{e.strerror or e} (another process holds the port? use --events-port; 0 turns "
            "the store apps' callbacks off)"
        ) from None


async def _kopf(wiring: Wiring, stop_flag: asyncio.Event | None = None) -> None:
    import kopf

    s = wiring.settings
    await kopf.operator(
        clusterwide=not s.namespaces,
        namespaces=s.namespaces,
        # HA is leader election (--leader-elect), not kopf peering: a paused kopf would
        # leave the reconciler's own scheduler running in every replica.
        standalone=True,
        stop_flag=stop_flag,
        memo=wiring,
    )


async def _run_elected(wiring: Wiring, config: leader.ElectionConfig) -> int:
    """Standby until the Lease is ours, then kopf + the reconciler while it stays ours.
    Losing it ends the process at once (exit 1, like controller-runtime): a restart is
    the one way to be sure nothing of the old term is still acting."""
    # A client of its own: renewals must not queue behind the reconciler's requests.
    kube = KubeClient(wiring.auth, max_connections=2)
    elector = leader.LeaderElector(kube, config)
    wiring.set_role("standby")
    wiring.election = elector
    # SIGTERM before kopf is up (and until kopf installs its own handler) sets this flag;
    # kopf is handed the same flag, so a signal in that gap still stops it gracefully.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    import kopf

    @kopf.on.cleanup(id="leader-election")
    async def _flag_stopped(**_: Any) -> None:
        # kopf stops on its own signal handler once it has one; its waiter on our flag
        # would then count as a hung task and hold the exit (and the Lease) for 5 s.
        stopping.set()

    try:
        acquiring = asyncio.create_task(elector.acquire())
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({acquiring, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():  # even if the Lease was won at the same moment
            acquiring.cancel()
            await asyncio.gather(acquiring, return_exceptions=True)
            await elector.release()
            log.info("stopped while standby")
            return 0
        stop_wait.cancel()

        wiring.set_role("leader")
        watchdog = leader.Watchdog(elector, _lost_leadership)
        watchdog.start()
        # Created before kopf starts, so kopf's shutdown does not count it as its own.
        holding = asyncio.create_task(elector.hold(), name="lark-leader-renew")
        operating = asyncio.create_task(_kopf(wiring, stop_flag=stopping))
        await asyncio.wait({holding, operating}, return_when=asyncio.FIRST_COMPLETED)
        if holding.done():
            _lost_leadership()
        # kopf has stopped (signal, or a crash): nothing acts any more, so hand the Lease
        # over now rather than make the standby wait for it to expire.
        watchdog.stop()
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await elector.release()
        try:
            operating.result()
        except Exception as e:
            log.error("operator stopped on error: %s: %s", type(e).__name__, e)
            return 1
        return 0
    finally:
        await kube.close()


def _lost_leadership() -> None:
    log.error("leader Lease lost (not renewed within the renew deadline); exiting")
    for h in logging.getLogger().handlers:
        h.flush()
    os._exit(1)
