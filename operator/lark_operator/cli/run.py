"""`lark-operator run`: the operator itself (kopf) against the current kubeconfig or the
in-cluster service account; with --leader-elect, only while holding the leader Lease."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from lark_operator import credentials
from lark_operator.durations import parse_duration
from lark_operator.operator_settings import Settings

if TYPE_CHECKING:
    from lark_operator.leader import ElectionConfig

log = logging.getLogger("lark_operator.run")


def _seconds(text: str) -> float:
    """'15' or a Go duration ('15s', '1m'), as controller-runtime's flags take them."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="Run the operator")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=None, help="Watch this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="Watch every namespace (the default when no --namespace)",
    )
    p.add_argument("--health-port", type=int, default=None, help="/health port [9091]")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="/metrics port [same as --health-port]"
    )
    p.add_argument("--log-format", choices=["json", "text"], default=None)
    p.add_argument("--log-level", default=None)
    p.add_argument(
        "--allowed-base-url",
        action="append",
        default=None,
        help="An Open Platform base URL a LarkApp may name in spec.domain (repeatable) "
        f"[${credentials.ALLOWED_BASE_URLS_ENV}, comma-separated]",
    )
    ha = p.add_argument_group("leader election (HA with a coordination.k8s.io Lease)")
    ha.add_argument(
        "--leader-elect",
        action="store_true",
        default=None,
        help="Act only while holding the leader Lease; wait as a standby otherwise",
    )
    ha.add_argument(
        "--leader-elect-namespace",
        default=None,
        help="Namespace of the Lease [the pod's namespace, else 'default']",
    )
    ha.add_argument("--leader-elect-name", default=None, help="Name of the Lease [lark-operator]")
    ha.add_argument(
        "--lease-duration",
        type=_seconds,
        default=None,
        help="How long a standby waits on an unrenewed Lease before taking it, s [15]",
    )
    ha.add_argument(
        "--renew-deadline",
        type=_seconds,
        default=None,
        help="How long the leader keeps acting without a successful renewal, s [10]",
    )
    ha.add_argument(
        "--retry-period", type=_seconds, default=None, help="Between Lease attempts, s [2]"
    )
    p.set_defaults(func=run)


_FIELDS = (
    "health_port",
    "metrics_port",
    "log_format",
    "log_level",
    "leader_elect",
    "leader_elect_namespace",
    "leader_elect_name",
    "lease_duration",
    "renew_deadline",
    "retry_period",
)


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings()
    if args.namespace:
        s.namespaces = list(args.namespace)
    if args.all_namespaces:
        s.namespaces, s.all_namespaces = [], True
    for field in _FIELDS:
        value = getattr(args, field, None)
        if value is not None:
            setattr(s, field, value)
    s.allowed_base_urls = credentials.allowed_base_urls(args.allowed_base_url)
    return s


def run(args: argparse.Namespace) -> int:
    from lark_operator import runtime
    from lark_operator.logs import setup_logging

    settings = settings_from(args)
    setup_logging(settings.log_format, settings.log_level)
    election: ElectionConfig | None = None
    if settings.leader_elect:
        from lark_operator import leader

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
            print(f"lark-operator run: {e}", file=sys.stderr)
            return 2
        election = config
    runtime.install(settings)
    from lark_operator import handlers  # noqa: F401 - registers the kopf handlers

    if election is None:
        asyncio.run(_kopf(settings))
        return 0
    return asyncio.run(_run_elected(settings, election))


async def _kopf(settings: Settings, stop_flag: asyncio.Event | None = None) -> None:
    import kopf

    await kopf.operator(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        # HA is leader election (--leader-elect), not kopf peering: a paused kopf would
        # leave the controller's own scheduler running in every replica.
        standalone=True,
        stop_flag=stop_flag,
    )


async def _run_elected(settings: Settings, config: ElectionConfig) -> int:
    """Standby until the Lease is ours, then kopf + the controller while it stays ours.
    Losing it ends the process at once (exit 1, like controller-runtime): a restart is
    the one way to be sure nothing of the old term is still acting."""
    from lark_operator import runtime
    from lark_operator.kube import KubeClient
    from lark_operator.leader import LeaderElector, Watchdog

    rt = runtime.runtime()
    # A client of its own: renewals must not queue behind the controller's requests.
    kube = KubeClient(max_connections=2)
    elector = LeaderElector(kube, config)
    rt.role, rt.election = "standby", elector
    # SIGTERM before kopf is up (and until kopf installs its own handler) sets this flag;
    # kopf is handed the same flag, so a signal in that gap still stops it gracefully.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await rt.start_health()

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

        rt.role = "leader"
        watchdog = Watchdog(elector, _lost_leadership)
        watchdog.start()
        # Created before kopf starts, so kopf's shutdown does not count it as its own.
        holding = asyncio.create_task(elector.hold(), name="lark-leader-renew")
        operating = asyncio.create_task(_kopf(settings, stop_flag=stopping))
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
        await rt.stop_health()
        await kube.close()


def _lost_leadership() -> None:
    log.error("leader Lease lost (not renewed within the renew deadline); exiting")
    for h in logging.getLogger().handlers:
        h.flush()
    os._exit(1)
