"""Certificates for the local control plane, as envtest makes them.

One CA signs the apiserver's serving certificate and an admin client certificate in group
system:masters; a separate RSA key signs service-account tokens.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pki_paths(cert_dir: Path) -> dict[str, Path]:
    """Where make_pki writes each file (a restarted control plane reuses them)."""
    return {
        "ca": cert_dir / "ca.crt",
        "serving_cert": cert_dir / "apiserver.crt",
        "serving_key": cert_dir / "apiserver.key",
        "admin_cert": cert_dir / "admin.crt",
        "admin_key": cert_dir / "admin.key",
        "sa_key": cert_dir / "sa.key",
        "sa_pub": cert_dir / "sa.pub",
    }


def reusable_pki(
    cert_dir: Path, *, margin: dt.timedelta = dt.timedelta(days=1)
) -> dict[str, Path] | None:
    """The files make_pki wrote earlier, if all are there and no certificate expires within
    `margin`: a restarted control plane keeps them, so its clients' credentials stay good."""
    paths = pki_paths(cert_dir)
    if not all(p.is_file() for p in paths.values()):
        return None
    deadline = dt.datetime.now(dt.UTC) + margin
    for name in ("ca", "serving_cert", "admin_cert"):
        try:
            cert = x509.load_pem_x509_certificate(paths[name].read_bytes())
        except ValueError:
            return None
        if cert.not_valid_after_utc < deadline:
            return None
    return paths


def make_pki(cert_dir: Path) -> dict[str, Path]:
    """Write every file the apiserver and an admin client need; return their paths."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lark-dev-ca")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)

    srv_key = _key()
    srv_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    srv = _cert(srv_name, srv_key, ca_name, ca_key, server=True)

    adm_key = _key()
    adm_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "lark-dev-admin"),
        ]
    )
    adm = _cert(adm_name, adm_key, ca_name, ca_key, client=True)

    sa_key = _key()
    paths = pki_paths(cert_dir)
    pem = serialization.Encoding.PEM
    _write(paths["ca"], ca.public_bytes(pem))
    _write(paths["serving_cert"], srv.public_bytes(pem))
    _write(paths["serving_key"], _pem_key(srv_key))
    _write(paths["admin_cert"], adm.public_bytes(pem))
    _write(paths["admin_key"], _pem_key(adm_key))
    _write(paths["sa_key"], _pem_key(sa_key))
    _write(
        paths["sa_pub"],
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return paths
