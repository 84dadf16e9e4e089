"""Who we are to the apiserver and how we reach it: what `loader.load_auth` returns.

`Auth` holds the server, the TLS material (in memory: the CA, a client certificate and its
key) and a `Credential` — the Authorization header — that renews itself when it is due: a
token file is re-read once a minute (bound service-account tokens rotate), an exec plugin
is run again when its credential expires. Nothing here writes key material to disk: the
ssl module loads a client key only from a path, so it gets an in-memory file (Linux memfd)
or, where there is none, a private directory removed before `Tls.context` returns.
Reprs and errors never show a token, password or key.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("lark_operator.kube")

Clock = Callable[[], float]  # seconds since the epoch (exec plugins give absolute times)
# client-go re-reads token files this often; kubelet rotates them well before they expire.
TOKEN_FILE_REREAD_SECONDS = 60.0
# After a failed renewal the last value is kept and renewal tried again this much later;
# nor is a source asked again sooner than this after it answered.
RENEWAL_RETRY_SECONDS = 10.0
# In-memory files where the platform has them (Linux): nothing to remove, even after a kill.
IN_MEMORY_FILES = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


class AuthError(Exception):
    """The credentials cannot be loaded or used. The text names the file, field or
    context to fix, never a value."""


@dataclass(frozen=True)
class Renewal:
    """A fresh bearer token, when to fetch the next one (None: only after a 401), and
    when it stops being accepted (None: not said)."""

    token: str
    refresh_at: float | None
    expires_at: float | None = None


Renew = Callable[[float], Renewal]  # called with the clock's now; raises AuthError


class Credential:
    """The Authorization header: a bearer token (static, re-read from a file, or from an
    exec plugin) or basic auth. Thread-safe: concurrent renewals run the source once."""

    def __init__(
        self,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        renew: Renew | None = None,
        refresh_at: float | None = None,
        expires_at: float | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.token = token
        self.username, self.password = username, password
        self.refresh_at, self.expires_at = refresh_at, expires_at
        self._renew, self._clock = renew, clock
        self._lock = threading.Lock()
        self._invalidated_at = float("-inf")

    @classmethod
    def renewing(cls, renew: Renew, clock: Clock = time.time) -> Credential:
        """A credential fetched now from `renew` (errors raise) and again when due."""
        first = renew(clock())
        return cls(
            first.token,
            renew=renew,
            refresh_at=first.refresh_at,
            expires_at=first.expires_at,
            clock=clock,
        )

    def __repr__(self) -> str:
        kind = "token" if self.token else "basic" if self.username else "none"
        return f"Credential({kind}, renewable={self._renew is not None})"

    def due(self) -> bool:
        return (
            self._renew is not None
            and self.refresh_at is not None
            and self._clock() >= self.refresh_at
        )

    def renew(self) -> None:
        """Fetch again if still due (a concurrent caller may have done it). On failure the
        last value stays (it may still be accepted) and renewal is retried a little later."""
        with self._lock:
            if not self.due() or self._renew is None:
                return
            now = self._clock()
            try:
                fresh = self._renew(now)
            except AuthError as exc:
                log.warning(
                    "renewing the Kubernetes credentials failed (%s); retrying in %.0fs",
                    exc,
                    RENEWAL_RETRY_SECONDS,
                )
                self.refresh_at = now + RENEWAL_RETRY_SECONDS
                return
            self.token, self.expires_at = fresh.token, fresh.expires_at
            # A source that answers with an already expired credential (a skewed clock)
            # is not run again on every request.
            self.refresh_at = (
                None
                if fresh.refresh_at is None
                else max(fresh.refresh_at, now + RENEWAL_RETRY_SECONDS)
            )

    def invalidate(self) -> None:
        """The apiserver refused it (401): a renewable credential is fetched anew before
        the next request — at most once per RENEWAL_RETRY_SECONDS, so that a source whose
        every answer is refused is not run for every request."""
        now = self._clock()
        if self._renew is not None and now >= self._invalidated_at + RENEWAL_RETRY_SECONDS:
            self._invalidated_at = self.refresh_at = now

    def header(self) -> str | None:
        if self.token:
            return f"Bearer {self.token}"
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return None


def token_file(path: Path) -> Renew:
    """A token read from `path`, read again after TOKEN_FILE_REREAD_SECONDS."""

    def read(now: float) -> Renewal:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise AuthError(f"cannot read the token file {path}: {exc.strerror}") from None
        if not token:
            raise AuthError(f"the token file {path} is empty")
        return Renewal(token, now + TOKEN_FILE_REREAD_SECONDS)

    return read


@dataclass(frozen=True)
class Tls:
    """PEM material, held in memory. `insecure` skips verifying the server (a client
    certificate is still presented)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cadata=self.ca.decode() if self.ca else None)
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.cert:
                with _readable_paths(self.cert, *([self.key] if self.key else [])) as paths:
                    ctx.load_cert_chain(*paths)
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            what = "client certificate/key" if self.cert else "certificate authority"
            raise AuthError(f"unusable {what}: {exc}") from None
        return ctx


@contextlib.contextmanager
def _readable_paths(*blobs: bytes) -> Iterator[list[str]]:
    """Paths that read as `blobs` while the block runs, and that nothing outlives."""
    if IN_MEMORY_FILES:
        fds: list[int] = []
        try:
            for blob in blobs:
                fds.append(os.memfd_create("lark-kube", os.MFD_CLOEXEC))
                with open(fds[-1], "wb", closefd=False) as f:
                    f.write(blob)
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="lark-kube-") as tmp:  # mode 0700
        paths = [os.path.join(tmp, str(i)) for i in range(len(blobs))]
        for path, blob in zip(paths, blobs, strict=True):
            Path(path).write_bytes(blob)
        yield paths


@dataclass
class Auth:
    """Where and as whom to talk, and the namespace a bare command means."""

    server: str
    tls: Tls
    credential: Credential
    namespace: str = "default"
    context: str | None = None  # the kubeconfig context; None in a pod
    ssl_context: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        # Built now, so a bad key or CA fails at load time, naming what is wrong.
        self.ssl_context = self.tls.context()
