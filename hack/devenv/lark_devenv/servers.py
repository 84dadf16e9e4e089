"""Real PostgreSQL, Redis and RabbitMQ servers on free loopback ports, from the Debian
packages (postgresql, redis-server, rabbitmq-server): for the demo and, through
tests/fixtures/servers.py, for the tests.

Each server runs in its own directory under /tmp and is stopped (process group and all)
by `stop()`/`close()` or, at the latest, when the Python process exits. Handles can
`stop()` and `start()` again on the same ports, so a test can take a server away and
bring it back. Every server has a password; `url`/`dsn` carry it percent-encoded.

Why not pytest-postgresql / pytest-redis / pytest-rabbitmq: as root (our CI) postgres and
rabbitmq must run under their own accounts in directories those accounts own, RabbitMQ
needs its management plugin, a private epmd and users from a definitions file, and tests
need stop/start on the same port and a password on every server. The plugins cover parts
of that each in their own way; this module covers all of it uniformly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from lark_devenv import procs


def _pg_bin() -> Path:
    """LARK_PG_BIN (or the tests' LARK_TEST_PG_BIN), else the newest Debian PostgreSQL."""
    explicit = os.environ.get("LARK_PG_BIN") or os.environ.get("LARK_TEST_PG_BIN")
    if explicit:
        return Path(explicit)

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.name))

    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version)
    if installed:
        return installed[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
RABBITMQ_BIN = Path(
    os.environ.get("LARK_RABBITMQ_BIN")
    or os.environ.get("LARK_TEST_RABBITMQ_BIN")
    or "/usr/lib/rabbitmq/bin"
)
HOST = "127.0.0.1"


def missing(dependency: str) -> str | None:
    """Why `dependency` cannot be started here (its Debian package), or None if it can."""
    if dependency == "postgres":
        need = [PG_BIN / "postgres", PG_BIN / "initdb", PG_BIN / "pg_isready"]
        absent = [str(p) for p in need if not p.is_file()]
        return f"{', '.join(absent)} not found (apt-get install postgresql)" if absent else None
    if dependency == "redis":
        ok = shutil.which("redis-server")
        return None if ok else "redis-server not on PATH (apt-get install redis-server)"
    if dependency == "rabbitmq":
        if not (RABBITMQ_BIN / "rabbitmq-server").is_file():
            return f"{RABBITMQ_BIN / 'rabbitmq-server'} not found (apt-get install rabbitmq-server)"
        return None if shutil.which("epmd") else "epmd not on PATH (apt-get install erlang-base)"
    raise ValueError(f"unknown dependency {dependency!r}")


def random_password(prefix: str) -> str:
    # '@', ':' and '/' on purpose: URLs must percent-encode them and redaction must cope.
    return f"{prefix}@:/{secrets.token_hex(6)}"


# --- PostgreSQL ---------------------------------------------------------------------------
class PostgresServer:
    """A postmaster on 127.0.0.1:port. `dsn` logs in as the non-superuser `lark` (member of
    pg_monitor) to database `lark`; `superuser_dsn` as `postgres`."""

    user = "lark"
    database = "lark"
    superuser = "postgres"

    def __init__(
        self,
        template: Path,
        *,
        password: str,
        superuser_password: str,
        max_connections: int = 100,
        superuser_reserved_connections: int = 3,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.os_user = procs.service_user("postgres")
        self.password = password
        self.superuser_password = superuser_password
        self.host = HOST
        self.port = procs.free_port()
        self.root = procs.owned_tempdir("lark-pg-", self.os_user)
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        shutil.copytree(template, self.datadir, symlinks=True)
        self.sockdir.mkdir()
        procs.chown_tree(self.root, self.os_user)
        self.datadir.chmod(0o700)
        options = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.sockdir),
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(superuser_reserved_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "log_connections": "on",  # tests count probe connections in the log
            "log_line_prefix": "%m [%p] ",
            "deadlock_timeout": "100ms",
            **(settings or {}),
        }
        argv = [str(PG_BIN / "postgres"), "-D", str(self.datadir)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        self.process = procs.ManagedProcess(
            argv,
            log_path=self.root / "postgres.log",
            user=self.os_user,
            stop_signal=signal.SIGINT,  # fast shutdown
            signal_group=False,  # the postmaster stops its backends itself
        )

    def dsn_for(
        self, user: str | None = None, password: str | None = None, database: str | None = None
    ) -> str:
        user = user or self.user
        if password is None:
            password = self.superuser_password if user == self.superuser else self.password
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{database or self.database}"
        )

    @property
    def dsn(self) -> str:
        return self.dsn_for()

    url = dsn

    @property
    def superuser_dsn(self) -> str:
        return self.dsn_for(self.superuser)

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        isready = [str(PG_BIN / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)]
        self.process.wait_until(
            lambda: subprocess.run(isready, check=False).returncode == 0,
            timeout,
            "accepting connections",
        )

    def stop(self, kill: bool = False) -> None:
        self.process.stop(kill=kill)

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket (trust auth), return its output."""
        argv = [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.sockdir), "-p", str(self.port), "-U", self.superuser]
        argv += ["-d", database, "-c", sql]
        return procs.run(argv, user=self.os_user).stdout.strip()

    def close(self) -> None:
        self.process.stop(kill=True)
        procs.remove_tree(self.root)


def make_postgres_template(password: str, superuser_password: str) -> Path:
    """initdb once per session; every server copies the result (much faster than initdb)."""
    os_user = procs.service_user("postgres")
    root = procs.owned_tempdir("lark-pg-template-", os_user)
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(superuser_password + "\n")
    procs.chown_tree(root, os_user)
    procs.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        user=os_user,
    )
    literal = password.replace("'", "''")
    bootstrap = (
        f"CREATE ROLE lark LOGIN PASSWORD '{literal}'\n"
        "CREATE DATABASE lark OWNER lark\n"
        "GRANT pg_monitor TO lark\n"
    )
    single = [str(PG_BIN / "postgres"), "--single", "-D", str(data), "-F", "postgres"]
    procs.run(single, user=os_user, input=bootstrap)
    pwfile.unlink()
    return data


# --- Redis --------------------------------------------------------------------------------
class RedisServer:
    """redis-server on 127.0.0.1:port; `url` carries the password when one is set."""

    def __init__(
        self,
        *,
        password: str | None,
        maxmemory: str | None = None,
        maxmemory_policy: str = "noeviction",
    ) -> None:
        self.password = password
        self.host = HOST
        self.port = procs.free_port()
        self.root = procs.owned_tempdir("lark-redis-", None)
        argv = ["redis-server", "--port", str(self.port), "--bind", HOST, "--dir", str(self.root)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        argv += ["--protected-mode", "no", "--logfile", ""]
        if password:
            argv += ["--requirepass", password]
        if maxmemory:
            argv += ["--maxmemory", maxmemory, "--maxmemory-policy", maxmemory_policy]
        self.process = procs.ManagedProcess(argv, log_path=self.root / "redis.log")

    def url_for(self, password: str | None = None, db: int = 0) -> str:
        password = self.password if password is None else password
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_for()

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self, timeout: float = 15) -> None:
        self.process.start()
        self.process.wait_until(
            lambda: procs.port_open(self.host, self.port), timeout, "listening port"
        )

    def stop(self, kill: bool = False) -> None:
        self.process.stop(kill=kill)

    def close(self) -> None:
        self.process.stop(kill=True)
        procs.remove_tree(self.root)


# --- RabbitMQ -----------------------------------------------------------------------------
def _rabbit_password_hash(password: str) -> str:
    # rabbit_password_hashing_sha256: base64(salt || sha256(salt || password))
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class RabbitMQServer:
    """A RabbitMQ node with the management plugin. `url` is AMQP for user `lark` (an
    administrator) on vhost '/', `management_url` the HTTP API without credentials
    (probes fall back to the AMQP URL's) and `management_url_for()` with them."""

    user = "lark"
    vhost = "/"

    def __init__(self, *, password: str) -> None:
        self.os_user = procs.service_user("rabbitmq")
        self.password = password
        self.host = HOST
        self.port = procs.free_port()
        self.management_port = procs.free_port()
        self.dist_port = procs.free_port()
        self.epmd_port = procs.free_port()
        self.nodename = f"lark{secrets.token_hex(4)}@localhost"
        self.root = procs.owned_tempdir("lark-rabbitmq-", self.os_user)
        definitions = {
            "users": [
                {
                    "name": self.user,
                    "password_hash": _rabbit_password_hash(password),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": ["administrator"],
                }
            ],
            "vhosts": [{"name": "/"}],
            "permissions": [
                {"user": self.user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            ],
        }
        (self.root / "definitions.json").write_text(json.dumps(definitions))
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {HOST}:{self.port}\n"
            f"management.tcp.ip = {HOST}\n"
            f"management.tcp.port = {self.management_port}\n"
            f"load_definitions = {self.root / 'definitions.json'}\n"
            "loopback_users = none\n"
            # Fresh queue counts in the management API within a second, not 5 s.
            "collect_statistics_interval = 100\n"
            "management.sample_retention_policies.global.minute = 1\n"
            "management.sample_retention_policies.basic.minute = 1\n"
            "management.sample_retention_policies.detailed.10 = 1\n"
        )
        (self.root / "enabled_plugins").write_text("[rabbitmq_management].\n")
        procs.chown_tree(self.root, self.os_user)
        self.env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.root),  # the Erlang cookie lives here
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
        }
        # A private epmd on its own port: the node never touches (or leaves behind) the
        # machine's shared one.
        self.epmd = procs.ManagedProcess(
            ["epmd", "-port", str(self.epmd_port), "-address", HOST],
            log_path=self.root / "epmd.log",
            env=self.env,
            user=self.os_user,
        )
        self.process = procs.ManagedProcess(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            log_path=self.root / "rabbitmq.out",
            env=self.env,
            user=self.os_user,
            cwd=self.root,
        )

    def url_for(self, password: str | None = None, user: str | None = None) -> str:
        password = self.password if password is None else password
        user = user or self.user
        return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"

    @property
    def url(self) -> str:
        return self.url_for()

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}/"

    def management_url_for(self, password: str | None = None, user: str | None = None) -> str:
        password = self.password if password is None else password
        user = user or self.user
        creds = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"http://{creds}@{self.host}:{self.management_port}/"

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self, wait: bool = True, timeout: float = 60) -> None:
        if not self.epmd.running:
            self.epmd.start()
        self.process.start()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        self.process.wait_until(self._ready, timeout, "AMQP and management API")

    def _ready(self) -> bool:
        if not procs.port_open(self.host, self.port):
            return False
        try:
            return self.management_get("/api/overview") is not None
        except (OSError, urllib.error.URLError):
            return False

    def management_get(self, path: str) -> Any:
        """GET a management API path as the admin user (None on an HTTP error)."""
        req = urllib.request.Request(f"http://{self.host}:{self.management_port}{path}")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return json.load(resp)
        except urllib.error.HTTPError:
            return None

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl against this node (e.g. ctl('set_disk_free_limit', '1000GB'))."""
        argv = [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args]
        return procs.run(argv, user=self.os_user, env=self.env, timeout=timeout).stdout

    def stop(self, kill: bool = False) -> None:
        """Stop the node (epmd stays for a restart). SIGTERM takes RabbitMQ ~6 s."""
        self.process.stop(kill=kill, timeout=30)

    def close(self) -> None:
        self.process.stop(kill=True)
        self.epmd.stop(kill=True)
        procs.remove_tree(self.root)


# --- starting ------------------------------------------------------------------------------
S = TypeVar("S", PostgresServer, RedisServer, RabbitMQServer)


def launch(server: S) -> S:
    """Start `server`; if that fails, remove everything it made before re-raising."""
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def start_postgres(password: str, superuser_password: str, **options: Any) -> PostgresServer:
    """initdb a fresh cluster and run a server on it (for one server; tests that start
    many copy one template, which is much faster)."""
    template = make_postgres_template(password, superuser_password)
    try:
        server = PostgresServer(
            template, password=password, superuser_password=superuser_password, **options
        )
    finally:
        procs.remove_tree(template.parent)  # the server has its own copy
    return launch(server)


def start_redis(password: str | None, **options: Any) -> RedisServer:
    return launch(RedisServer(password=password, **options))


def start_rabbitmq(password: str) -> RabbitMQServer:
    """A node with the management plugin; takes ~7-10 s."""
    return launch(RabbitMQServer(password=password))
