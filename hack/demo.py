"""`make demo`: lark-operator end to end on one machine, in about a minute.

Starts the local control plane (etcd + kube-apiserver), the Open Platform emulator, real
PostgreSQL / Redis / RabbitMQ where their Debian packages are installed, two sample
LarkApps and the operator; waits until they are Ready; breaks one app's secret and shows
what the operator reports (condition, Event, hint); fixes it; tears everything down.

Every process it starts runs in its own session, is remembered in DIR/demo-pids.json and
is stopped on the way out: also on Ctrl-C or SIGTERM, and a crashed run's leftovers are
stopped by the next run. `--keep` stays up after the script (until Ctrl-C) so that you
can try `kubectl lark` yourself.

Another operator acting on the demo's namespace (one watching all namespaces on a shared
cluster, a forgotten `lark-operator run`) would fight this one over the same LarkApps and
make the output unreadable: the demo looks for its traces — a status on a LarkApp before
this demo's operator ran, Events from another instance, a held lark-operator Lease — and
stops, saying what it found, instead of showing confusing results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from lark_devenv import servers
from lark_devenv.binaries import MissingBinary, find
from lark_devenv.controlplane import ControlPlane, ControlPlaneError, free_port
from lark_operator.credentials import ALLOWED_BASE_URLS_ENV

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv: lark-operator, kubectl, kubectl-lark
NAMESPACE = "demo"
APPS = {"chat-bot": "cli_demochatbot01", "notifier": "cli_demonotifier01"}
BROKEN = "notifier"
T0 = time.monotonic()


class Interrupted(Exception):
    """SIGINT/SIGTERM: leave the script through its finally blocks."""


class AnotherOperator(RuntimeError):
    """Another operator acts on the demo's namespace: its results would mix with ours."""


# --- output -------------------------------------------------------------------------------
_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(f"[{time.monotonic() - T0:5.1f}s] {text}", flush=True)


def show(title: str, text: str) -> None:
    with _print_lock:
        print(f"\n--- {title} " + "-" * max(0, 76 - len(title)), flush=True)
        print(text.rstrip(), flush=True)
        print("-" * 82 + "\n", flush=True)


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    every: float = 0.5,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Poll `check`; `meanwhile` runs between polls (and may raise to stop waiting)."""
    deadline = time.monotonic() + timeout
    while not check():
        if meanwhile is not None:
            meanwhile()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


# --- processes ----------------------------------------------------------------------------
class Spawned:
    """A child in its own session (Ctrl-C reaches only the demo, which stops it in order)."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str]):
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)


class Leftovers:
    """DIR/demo-pids.json: what a run started, so that the next run can stop what a
    crashed (kill -9) run left behind. Only recorded PIDs are touched, and only while
    their command line still is what was recorded."""

    def __init__(self, directory: Path):
        self.path = directory / "demo-pids.json"
        self.entries: list[dict[str, Any]] = []

    def add(self, pid: int, marker: str) -> None:
        self.entries.append({"pid": pid, "marker": marker})
        self.path.write_text(json.dumps({"processes": self.entries}))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def stop_previous(self) -> int:
        try:
            old = json.loads(self.path.read_text()).get("processes", [])
        except (OSError, ValueError):
            return 0
        stopped = 0
        for entry in old:
            pid, marker = int(entry["pid"]), str(entry["marker"])
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    stopped += 1
        self.clear()
        return stopped


# --- the demo -------------------------------------------------------------------------------
class Demo:
    def __init__(self, args: argparse.Namespace):
        self.dir = Path(args.dir).resolve()
        self.keep = bool(args.keep)
        self.namespace = str(args.namespace)
        self.with_servers = not args.without_servers
        # The operator's Events carry this as reportingInstance (its HOSTNAME): any other
        # instance's Events on our LarkApps are another operator's.
        self.instance = f"lark-demo-{secrets.token_hex(4)}"
        self.operator_started = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.leftovers = Leftovers(self.dir)
        self.controlplane: ControlPlane | None = None
        self.kubeconfig = ""
        self.spawned: list[Spawned] = []
        self.servers: dict[str, Any] = {}
        self.starting: dict[str, Future[Any]] = {}
        self.secrets = {app: secrets.token_urlsafe(18) for app in APPS.values()}
        self.emulator_url = ""
        self.created_larkapps = False
        self.staying = False  # in --keep's wait, where Ctrl-C is the normal way out
        self.kubectl_bin = str(find("kubectl"))
        self.uids: dict[str, str] = {}  # LarkApp name -> uid, of the ones this run created

    # ..... helpers
    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])
        # The LarkApps' spec.domain is the emulator: commands that send an App Secret
        # (kubectl lark validate) must allow it as the operator does.
        allowed = {ALLOWED_BASE_URLS_ENV: self.emulator_url} if self.emulator_url else {}
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "PATH": path, **allowed}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, echo: bool = False
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_bin, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )
        if echo:
            show(f"$ kubectl {' '.join(args)}", proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def spawn(self, name: str, argv: list[str], **env: str) -> Spawned:
        child = Spawned(name, argv, self.logs / f"{name}.log", {**self.env(), **env})
        self.spawned.append(child)
        self.leftovers.add(child.proc.pid, argv[1] if len(argv) > 1 else argv[0])
        return child

    def larkapp(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "larkapp", name, "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(out))

    def is_ready(self, name: str) -> Callable[[], bool]:
        return lambda: self.condition(name, "Ready").get("status") == "True"

    def has_reason(self, name: str, ctype: str, reason: str) -> Callable[[], bool]:
        return lambda: self.condition(name, ctype).get("reason") == reason

    def condition(self, name: str, ctype: str) -> dict[str, Any]:
        for c in (self.larkapp(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == ctype:
                return dict(c)
        return {}

    # ..... steps
    def run(self) -> None:
        stopped = self.leftovers.stop_previous()
        if stopped:
            say(f"stopped {stopped} process(es) left behind by an earlier demo run")
        with ThreadPoolExecutor(max_workers=4) as pool:
            # The servers start while the control plane does: RabbitMQ alone takes ~10 s.
            for dep in servers_wanted() if self.with_servers else []:
                self.starting[dep] = pool.submit(self.start_server, dep)
            self.start_controlplane()
            self.start_emulator()
            for dep, future in self.starting.items():
                self.collect_server(dep, future)
        self.create_objects()
        self.check_alone()
        self.start_operator()
        self.wait_ready(list(APPS))
        self.check_alone()
        ns = self.namespace
        self.kubectl("get", "larkapps", "-n", ns, echo=True)
        self.kubectl("lark", "status", "-n", ns, echo=True)
        if self.servers:
            self.kubectl("lark", "describe", "chat-bot", "-n", ns, echo=True)
        self.break_and_fix()
        self.check_alone()
        if self.keep:
            self.stay_up()

    def start_controlplane(self) -> None:
        if os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true":
            self.kubeconfig = os.environ.get("KUBECONFIG") or str(
                Path("~/.kube/config").expanduser()
            )
            say(f"USE_EXISTING_CLUSTER=true: using {self.kubeconfig}; installing the CRD")
            self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            return
        say(f"starting the local control plane (etcd + kube-apiserver) in {self.dir}")
        cp = ControlPlane(self.dir, crds_dir=REPO / "crds")
        started = time.monotonic()
        if cp.running() is None:
            self.controlplane = cp  # ours to stop at the end, also if up() is interrupted
        state, fresh = cp.up(timeout=90)
        self.kubeconfig = state.kubeconfig
        if fresh:
            self.leftovers.add(state.apiserver_pid, "kube-apiserver")
            self.leftovers.add(state.etcd_pid, "etcd")
            say(f"  apiserver ready at {state.server} in {time.monotonic() - started:.1f}s")
        else:
            say(f"  reusing the control plane already running at {state.server}")

    def start_emulator(self) -> None:
        port = free_port()
        argv = [str(BIN / "lark-operator"), "emulator", "--port", str(port)]
        for app_id, secret in self.secrets.items():
            argv += ["--app", f"{app_id}:{secret}"]
        emu = self.spawn("emulator", argv)
        self.emulator_url = f"http://127.0.0.1:{port}"
        wait_for("the emulator", lambda: "listening on" in emu.log.read_text(), 20, 0.1)
        say(f"Open Platform emulator at {self.emulator_url} (apps {', '.join(APPS.values())})")

    def start_server(self, dep: str) -> Any:
        password = servers.random_password(f"demo-{dep}")
        if dep == "postgres":
            return servers.start_postgres(password, servers.random_password("demo-pg-super"))
        if dep == "redis":
            return servers.start_redis(password)
        return servers.start_rabbitmq(password)

    def collect_server(self, dep: str, future: Future[Any]) -> None:
        try:
            server = future.result()
        except Exception as exc:  # the demo goes on without this dependency
            say(f"{servers_label(dep)} did not start ({type(exc).__name__}); its probe is left out")
            return
        self.servers[dep] = server
        for proc in _server_processes(server):
            self.leftovers.add(proc.pid, proc.args[0] if isinstance(proc.args, list) else "")
        say(f"{servers_label(dep)} running on 127.0.0.1:{server.port}")

    def create_objects(self) -> None:
        ns = self.namespace
        say(f"creating namespace {ns!r}, Secrets and the LarkApps {', '.join(APPS)}")
        self.kubectl("create", "namespace", ns, check=False)
        self.remove_stale_larkapps()
        docs: list[dict[str, Any]] = []
        for name, app_id in APPS.items():
            docs.append(secret_doc(f"{name}-app-secret", {"appSecret": self.secrets[app_id]}, ns))
        probes: dict[str, Any] = {"interval": "5s", "timeout": "3s"}
        urls: dict[str, str] = {}
        if "postgres" in self.servers:
            urls["dsn"] = self.servers["postgres"].dsn
            probes["postgres"] = {"dsnSecretRef": {"name": "chat-bot-deps", "key": "dsn"}}
        if "redis" in self.servers:
            urls["redis"] = self.servers["redis"].url
            probes["redis"] = {"urlSecretRef": {"name": "chat-bot-deps", "key": "redis"}}
        if "rabbitmq" in self.servers:
            mq = self.servers["rabbitmq"]
            urls["amqp"], urls["management"] = mq.url, mq.management_url
            probes["rabbitmq"] = {
                "urlSecretRef": {"name": "chat-bot-deps", "key": "amqp"},
                "managementUrlSecretRef": {"name": "chat-bot-deps", "key": "management"},
            }
        if urls:
            docs.append(secret_doc("chat-bot-deps", urls, ns))
        for name, app_id in APPS.items():
            spec: dict[str, Any] = {
                "appId": app_id,
                "appSecretRef": {"name": f"{name}-app-secret"},
                "domain": self.emulator_url,
            }
            if name == "chat-bot" and urls:
                spec["probes"] = probes
            docs.append(
                {
                    "apiVersion": "larkservice.io/v1alpha1",
                    "kind": "LarkApp",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": spec,
                }
            )
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        self.created_larkapps = True
        self.uids = {name: str(self.larkapp(name)["metadata"]["uid"]) for name in APPS}

    # ..... another operator?
    def check_alone(self) -> None:
        """Stop with what was found if another operator acts on the namespace."""
        found = self.foreign_activity()
        if found:
            raise AnotherOperator(
                f"another operator is acting on namespace {self.namespace!r}, so what this "
                "demo would show mixes with its doing:\n  - "
                + "\n  - ".join(found)
                + "\n  Stop that operator (or make it not watch this namespace), or run the "
                "demo in another namespace: hack/demo.py --namespace NAME."
            )

    def foreign_activity(self) -> list[str]:
        """Traces of an operator other than ours on the LarkApps this run created."""
        found: list[str] = []
        if not self.uids:
            return found
        if not self.operator_started:
            for name in APPS:
                obj = self.larkapp(name)
                status = obj.get("status") or {}
                if status or obj["metadata"].get("finalizers"):
                    phase = status.get("phase") or "-"
                    found.append(
                        f"LarkApp {self.namespace}/{name} already has a status (phase {phase}) "
                        "or a finalizer, and this demo's operator has not started yet"
                    )
        events = json.loads(
            self.kubectl("get", "events", "-n", self.namespace, "-o", "json").stdout
        )["items"]
        others: dict[str, set[str]] = {}
        for e in events:
            involved = e.get("involvedObject") or {}
            if involved.get("uid") not in self.uids.values():
                continue
            source = e.get("reportingInstance") or (e.get("source") or {}).get("host") or ""
            component = e.get("reportingComponent") or (e.get("source") or {}).get("component")
            if component == "lark-operator" and source != self.instance:
                others.setdefault(source or "(no instance)", set()).add(str(e.get("reason")))
        for instance, reasons in sorted(others.items()):
            found.append(
                f"Events on this run's LarkApps from another lark-operator (instance "
                f"{instance!r}): {', '.join(sorted(reasons))}"
            )
        found += self.held_leases()
        return found

    def held_leases(self) -> list[str]:
        """lark-operator leader Leases held and renewed lately: an operator in HA mode."""
        proc = self.kubectl("get", "leases", "-A", "-o", "json", check=False)
        if proc.returncode != 0:
            return []  # not allowed to list Leases: nothing to say
        out = []
        now = dt.datetime.now(dt.UTC)
        for lease in json.loads(proc.stdout)["items"]:
            spec, meta = lease.get("spec") or {}, lease["metadata"]
            holder = spec.get("holderIdentity")
            if "lark-operator" not in meta["name"] or not holder:
                continue
            renewed = spec.get("renewTime") or spec.get("acquireTime") or ""
            try:
                when = dt.datetime.fromisoformat(renewed.replace("Z", "+00:00"))
            except ValueError:
                continue
            age = (now - when).total_seconds()
            if age <= 2 * float(spec.get("leaseDurationSeconds") or 15):
                out.append(
                    f"Lease {meta['namespace']}/{meta['name']} is held by {holder!r} (renewed "
                    f"{age:.0f}s ago): a lark-operator watching all namespaces acts here too"
                )
        return out

    def remove_stale_larkapps(self) -> None:
        """LarkApps of an earlier run (etcd keeps its data in DIR) would carry that run's
        status and token; with no operator running yet, drop their finalizers and delete."""
        ns = self.namespace
        names = self.kubectl("get", "larkapps", "-n", ns, "-o", "name").stdout.split()
        if not names:
            return
        say(f"  removing {len(names)} LarkApp(s) left from an earlier run")
        unfinalize = '{"metadata":{"finalizers":null}}'
        for ref in names:
            self.kubectl("patch", ref, "-n", ns, "--type=merge", "-p", unfinalize)
        self.kubectl("delete", "larkapps", "--all", "-n", ns, "--wait=true")
        self.kubectl("delete", "secrets", "--all", "-n", ns, check=False)

    def start_operator(self) -> None:
        port = free_port()
        argv = ["run", "--namespace", self.namespace, "--allowed-base-url", self.emulator_url]
        say(f"starting the operator: lark-operator {' '.join(argv)}")
        argv += ["--health-port", str(port), "--log-format", "text"]
        op = self.spawn("operator", [str(BIN / "lark-operator"), *argv], HOSTNAME=self.instance)
        self.operator_started = True

        def healthy() -> bool:
            if not op.alive():
                raise RuntimeError(f"the operator exited; see {op.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    return bool(json.load(r).get("status") == "healthy")
            except OSError:
                return False

        wait_for("the operator's /health", healthy, 60, 0.2)
        say(f"  operator healthy (/health on :{port}, log {op.log})")

    def wait_ready(self, names: list[str], timeout: float = 90) -> None:
        started = time.monotonic()
        for name in names:
            wait_for(
                f"LarkApp {name} Ready", self.is_ready(name), timeout, meanwhile=self.check_alone
            )
        say(f"{', '.join(names)} Ready after {time.monotonic() - started:.1f}s")

    def break_and_fix(self) -> None:
        app_id = APPS[BROKEN]
        say(f"breaking {BROKEN}: its Secret now holds a wrong app secret; forcing a refresh")
        ns = self.namespace
        wrong = secret_doc(f"{BROKEN}-app-secret", {"appSecret": "not-the-right-secret"}, ns)
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(wrong))
        self.kubectl("lark", "refresh", BROKEN, "-n", ns, "--wait", check=False, echo=True)
        invalid = self.has_reason(BROKEN, "CredentialsValid", "InvalidCredentials")
        wait_for("CredentialsValid=False", invalid, 60, meanwhile=self.check_alone)
        cond = self.condition(BROKEN, "CredentialsValid")
        say(f"{BROKEN}: CredentialsValid={cond['status']} reason={cond['reason']}")
        self.kubectl("lark", "describe", BROKEN, "-n", ns, echo=True)
        self.kubectl("lark", "status", "-n", ns, check=False, echo=True)

        say(f"fixing {BROKEN}: the right secret goes back into its Secret")
        right = secret_doc(f"{BROKEN}-app-secret", {"appSecret": self.secrets[app_id]}, ns)
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(right))
        self.wait_ready([BROKEN], timeout=60)
        self.kubectl("get", "larkapps", "-n", ns, echo=True)

    def stay_up(self) -> None:
        self.staying = True
        say("--keep: everything stays up until Ctrl-C. In another shell:")
        print(f"    export KUBECONFIG={self.kubeconfig} PATH={BIN}:$PATH", flush=True)
        print(f"    export {ALLOWED_BASE_URLS_ENV}={self.emulator_url}", flush=True)
        print(f"    kubectl lark status -n {self.namespace}", flush=True)
        print(f"    kubectl lark validate chat-bot -n {self.namespace}", flush=True)
        print(f"    kubectl lark describe chat-bot -n {self.namespace}", flush=True)
        while all(s.alive() for s in self.spawned):
            time.sleep(1)
        say("a demo process exited; tearing down")

    # ..... teardown
    def teardown(self) -> None:
        say("tearing down")
        operator_up = any(s.name == "operator" and s.alive() for s in self.spawned)
        if self.created_larkapps and operator_up and self.kubeconfig:
            # With the operator still running, so that it removes its finalizer and the
            # token Secrets (this control plane has no garbage collector).
            with contextlib.suppress(Exception):
                self.kubectl("delete", "larkapps", "--all", "-n", self.namespace, "--timeout=20s")
        for child in reversed(self.spawned):
            child.stop()
            say(f"  stopped the {child.name}")
        for dep, future in self.starting.items():
            # Also a server whose start finished after an interruption.
            server = self.servers.get(dep)
            if server is None and future.done() and future.exception() is None:
                server = future.result()
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
                say(f"  stopped {servers_label(dep)}")
        if self.controlplane is not None:
            self.controlplane.down()
            say("  stopped the control plane")
        self.leftovers.clear()


def servers_wanted() -> list[str]:
    wanted = []
    for dep in ("postgres", "redis", "rabbitmq"):
        reason = servers.missing(dep)
        if reason:
            say(f"skipping {servers_label(dep)}: {reason}")
        else:
            wanted.append(dep)
            say(f"starting {servers_label(dep)} (real server, free loopback port)")
    return wanted


def servers_label(dep: str) -> str:
    return {"postgres": "PostgreSQL", "redis": "Redis", "rabbitmq": "RabbitMQ"}[dep]


def _server_processes(server: Any) -> Iterator[subprocess.Popen[bytes]]:
    for managed in (getattr(server, "process", None), getattr(server, "epmd", None)):
        if managed is not None and managed.proc is not None:
            yield managed.proc


def secret_doc(name: str, data: dict[str, str], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=".lark-dev", help="control plane directory [.lark-dev]")
    parser.add_argument(
        "--keep", action="store_true", help="stay up after the script, until Ctrl-C"
    )
    parser.add_argument(
        "--namespace", default=NAMESPACE, help=f"namespace of the LarkApps [{NAMESPACE}]"
    )
    parser.add_argument(
        "--without-servers",
        action="store_true",
        help="start no PostgreSQL/Redis/RabbitMQ (the LarkApps probe nothing)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    demo: Demo | None = None
    status = 0
    try:
        demo = Demo(args)
        demo.run()
    except Interrupted as exc:
        say(f"interrupted ({exc})")
        status = 0 if demo is not None and demo.staying else 130
    except (MissingBinary, ControlPlaneError, RuntimeError) as exc:
        say(f"demo failed: {exc}")
        status = 1
    finally:
        # A second Ctrl-C must not cut the teardown short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if demo is not None:
            demo.teardown()
    say(f"demo {'finished' if status == 0 else 'ended'} in {time.monotonic() - T0:.1f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
