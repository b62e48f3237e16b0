"""Make credentials valid nowhere but on this machine, for the BigQuery emulator tests.

Runs inside the emulator's environment, which has ``cryptography`` (the project's
has not): ``python throwaway_credentials.py DIRECTORY HOST`` writes

* ``service-account.pem``: a fresh RSA key for a throwaway service-account file
  (google-auth signs a token request with it; the local token endpoint grants any);
* ``tls.crt`` and ``tls.key``: a self-signed certificate for ``HOST``, its own CA,
  which the client trusts through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` only.

``python throwaway_credentials.py DIRECTORY HOST PASSPHRASE`` also writes
``service-account.encrypted.pem``, the same key encrypted with ``PASSPHRASE``: the
dbt credentials tests (tests/test_dbt_credentials.py) give both to dbt-snowflake,
under any Python with ``cryptography`` (a dbt utility's).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE_ACCOUNT_KEY_BITS = 1024
"""The smallest RSA key cryptography makes. google-auth checks the key each time it
loads the file (about 9 ms at 1,024 bits, 60 ms at 2,048), and dbt-bigquery loads it
for every connection: at 2,048 bits that was a third of dbt's CPU in the tests. The
key is valid nowhere and the local token endpoint grants any request."""
TLS_KEY_BITS = 2048
"""The emulator's certificate: loaded once per process, and TLS libraries may refuse less."""


def _key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _pem(key: rsa.RSAPrivateKey, passphrase: str = "") -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def main() -> None:
    """Write the three files (four with a passphrase) into the directory given."""
    directory, host, passphrase = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    service_account = _key(SERVICE_ACCOUNT_KEY_BITS)
    (directory / "service-account.pem").write_bytes(_pem(service_account))
    if passphrase:
        encrypted = _pem(service_account, passphrase[0])
        (directory / "service-account.encrypted.pem").write_bytes(encrypted)
    key = _key(TLS_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(_pem(key))


if __name__ == "__main__":
    main()
