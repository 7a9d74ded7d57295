"""The HTTPS scenarios: an HTTP listener terminating TLS in front of the HTTP backend.

`https` measures requests per second on kept-alive TLS connections (the cost of the record
layer on top of proxying); `handshakes` sends `Connection: close`, so every request is a new TCP
connection and a full TLS handshake (wrk resumes no session): new TLS handshakes per second.

The listener presents one certificate per name for `NAMED` hosts plus a default one, as a hub
serving many tenants does; the load generator's SNI (wrk sends the URL's host, 127.0.0.1) takes
the default, so both proxies walk their whole SNI choice (exact name, wildcard suffixes,
default) on every handshake. Keys are ECDSA P-256 made for the run (in memory, and in the run's
temporary folder for the proxies' configuration), TLS 1.3 as the client and proxies agree.

`check` proves, before anything is measured, that a proxy serves the default certificate and
routes the request to the backend.
"""

from __future__ import annotations

import datetime
import http.client
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubelb.ir import proxy, tls

NAMED = 20
DEFAULT_NAME = "default.https.bench.test"


def host_name(i: int) -> str:
    return f"svc-{i:02d}.https.bench.test"


def self_signed(name: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a self-signed ECDSA P-256 certificate for `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def secrets() -> tuple[tls.TLSSecret, ...]:
    """One secret per named host, and `default` (made once per run: both proxies get the same)."""
    names = [*(host_name(i) for i in range(NAMED)), DEFAULT_NAME]
    out = []
    for name in names:
        chain, key = self_signed(name)
        out.append(tls.TLSSecret(name=f"cert-{name}", certificate_chain=chain, private_key=key))
    return tuple(out)


def listener(port: int, cluster: str) -> proxy.Listener:
    certificates = tuple(
        proxy.ServerCertificate(server_names=(host_name(i),), secret=f"cert-{host_name(i)}")
        for i in range(NAMED)
    )
    return proxy.Listener(
        name="https", address="127.0.0.1", port=port, protocol=proxy.Protocol.HTTP,
        virtual_hosts=proxy.group_by_hostname(
            [((), proxy.HTTPRoute(name="all", backends=(proxy.WeightedCluster(cluster=cluster),)))]
        ),
        tls=proxy.ListenerTLS(certificates=(
            *certificates, proxy.ServerCertificate(server_names=(), secret=f"cert-{DEFAULT_NAME}"),
        )),
    )  # fmt: skip


def check(port: int, default_cert_pem: str, *, requests: int = 8) -> str:
    """GET / over HTTPS through 127.0.0.1:`port`, verifying the default certificate; raise unless
    every answer is 200. Returns the TLS version agreed."""
    context = ssl.create_default_context(cadata=default_cert_pem)
    context.check_hostname = False  # wrk's SNI is the address; the chain is still verified
    version = ""
    for _ in range(requests):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTPS through 127.0.0.1:{port}: status {r.status}")
            assert conn.sock is not None
            version = conn.sock.version() or ""
        finally:
            conn.close()
    return version
