"""The self-signed certificate used when HTTPS is on and no certificate files are given."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

VALID_DAYS = 365
RENEW_BEFORE_DAYS = 30  # a generated certificate with less left is made anew at start


def _days_left(cert_path: str) -> float:
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError):
        return -1.0
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left.total_seconds() / 86400


def ensure_certificate(tls_dir: str, days: int = VALID_DAYS) -> tuple[str, str]:
    """(cert, key) paths under `tls_dir`, generated on first use and again once fewer than
    RENEW_BEFORE_DAYS are left (restart the broker to pick the new one up)."""
    cert_path = os.path.join(tls_dir, "server.crt")
    key_path = os.path.join(tls_dir, "server.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        left = _days_left(cert_path)
        if left >= RENEW_BEFORE_DAYS:
            return cert_path, key_path
        log.warning("the generated certificate %s has %.0f days left; generating a new one",
                    cert_path, max(0.0, left))
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    key_fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(key_fd, 0o600)  # a key file left from before keeps no wider mode
    with os.fdopen(key_fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    with open(cert_path + ".tmp", "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(cert_path + ".tmp", cert_path)
    log.info("TLS certificates generated successfully")
    log.info("Certificate file: %s", cert_path)
    log.info("Key file: %s", key_path)
    log.info("Hostname: localhost; validity: 1 year")
    log.info("Note: self-signed certificate - browsers will show a security warning")
    return cert_path, key_path
