"""mTLS material for the autoscaler service: a CA, a server and a client certificate per cluster.

Files live in ``<koral home>/clusters/<name>/autoscaler/`` (directory 0700, files 0600):
``ca.crt ca.key server.crt server.key client.crt client.key``. The server requires a client
certificate signed by the cluster's own CA, so a certificate of another cluster (another CA) is
refused. cluster-autoscaler's externalgrpc client checks the server certificate against
``ca.crt`` for the host of its configured address: the server certificate carries that host as
a subject alternative name (``hosts``) plus ``localhost`` and ``127.0.0.1``.

:func:`ensure_certs` is idempotent: it creates what is missing, re-issues the server certificate
when a requested host is not in it, and re-issues leaf certificates that expire within 30 days or
were signed by another CA. Keys are ECDSA P-256. Private keys are never logged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from koral_ansible.paths import Paths, private_dir, write_private

CA_DAYS = 3650
LEAF_DAYS = 1095
RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
CLIENT_CN = "cluster-autoscaler"


@dataclass(frozen=True)
class CertFiles:
    """Paths of one cluster's autoscaler certificates."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"


def cert_files(paths: Paths, cluster: str) -> CertFiles:
    return CertFiles(paths.cluster_dir(cluster) / "autoscaler")


# ---- building blocks (also used by tests to make foreign CAs) ----------------------------------
def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "koral"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def new_ca(common_name: str, days: int = CA_DAYS) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    *,
    server: bool,
    hosts: Sequence[str] = (),
    days: int = LEAF_DAYS,
) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA: (certificate PEM, key PEM).

    ``server=True`` gives serverAuth and the ``hosts`` as SANs; otherwise clientAuth.
    """
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the autoscaler CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(_san(hosts), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


# ---- per-cluster files ---------------------------------------------------------------------------
def _load(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _fresh(cert: x509.Certificate | None, ca: x509.Certificate) -> bool:
    if cert is None or cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _covers(cert: x509.Certificate, hosts: Iterable[str]) -> bool:
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in have for name in _san(hosts))


def ensure_certs(paths: Paths, cluster: str, hosts: Sequence[str] = ()) -> CertFiles:
    """Create or refresh the cluster's CA, server and client certificates; return their paths."""
    files = cert_files(paths, cluster)
    private_dir(files.dir)
    ca = _load(files.ca_cert)
    if (
        ca is None
        or not files.ca_key.exists()
        or ca.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE
    ):
        ca_pem, ca_key_pem = new_ca(f"koral autoscaler CA {cluster}")
        write_private(files.ca_key, ca_key_pem)
        write_private(files.ca_cert, ca_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    ca_pem, ca_key_pem = files.ca_cert.read_bytes(), files.ca_key.read_bytes()
    wanted = [*DEFAULT_HOSTS, *hosts]
    server = _load(files.server_cert)
    server_ok = server is not None and _fresh(server, ca) and _covers(server, wanted)
    if not server_ok or not files.server_key.exists():
        cert, key = issue(ca_pem, ca_key_pem, f"koral-autoscaler-{cluster}", server=True, hosts=wanted)
        write_private(files.server_key, key)
        write_private(files.server_cert, cert)
    if not _fresh(_load(files.client_cert), ca) or not files.client_key.exists():
        cert, key = issue(ca_pem, ca_key_pem, CLIENT_CN, server=False)
        write_private(files.client_key, key)
        write_private(files.client_cert, cert)
    return files
