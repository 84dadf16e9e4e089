"""Key material and kubeconfig files for the loader's unit tests."""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pem:
    """A self-signed certificate (also usable as a CA) and its key."""

    cert: bytes
    key: bytes

    def b64(self, which: str) -> str:
        return base64.b64encode(getattr(self, which)).decode()


@pytest.fixture(scope="session")
def pem() -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.fixture
def empty_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR (and Python's cached tempfile.tempdir) pointed at an empty directory."""
    tmp = tmp_path / "TMPDIR"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield tmp


def write_kubeconfig(
    path: Path,
    *,
    user: dict[str, Any],
    cluster: dict[str, Any] | None = None,
    namespace: str | None = None,
) -> str:
    """One context `ctx` (current) for cluster `c` and user `u`."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [
            {
                "name": "ctx",
                "context": {
                    "cluster": "c",
                    "user": "u",
                    **({"namespace": namespace} if namespace else {}),
                },
            }
        ],
        "clusters": [
            {
                "name": "c",
                "cluster": cluster
                or {"server": "https://c:6443", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": user}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


PLUGIN = """#!/bin/sh
# A credential plugin that counts its runs: token tok-N on run N, expiring at the time in
# ./expires (if that file exists); records its arguments and KUBERNETES_EXEC_INFO.
dir=$(dirname "$0")
n=$(( $(cat "$dir/runs" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/runs"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/exec-info"
printf '%s' "$*|$PLUGIN_GREETING" > "$dir/args"
[ -e "$dir/fail" ] && { echo "plugin broke" >&2; exit 3; }
exp=$(cat "$dir/expires" 2>/dev/null)
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
printf '"status":{"token":"tok-%s"%s}}' "$n" "${exp:+,\\"expirationTimestamp\\":\\"$exp\\"}"
"""


@dataclass(frozen=True)
class FakePlugin:
    dir: Path

    @property
    def command(self) -> Path:
        return self.dir / "plugin.sh"

    def runs(self) -> int:
        runs = self.dir / "runs"
        return int(runs.read_text()) if runs.exists() else 0

    def expire_at(self, when: dt.datetime) -> None:
        (self.dir / "expires").write_text(when.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def fail(self, failing: bool = True) -> None:
        if failing:
            (self.dir / "fail").touch()
        else:
            (self.dir / "fail").unlink()


@pytest.fixture
def plugin(tmp_path: Path) -> FakePlugin:
    fake = FakePlugin(tmp_path / "plugin")
    fake.dir.mkdir()
    fake.command.write_text(PLUGIN)
    fake.command.chmod(0o755)
    return fake
