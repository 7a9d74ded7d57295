"""A small certificate authority for the xDS link (EC P-256, `cryptography`), in this process.

`Authority.create()` makes a self-signed CA; `Authority.from_pem` loads one persisted by the
caller (a Secret in Kubernetes mode, files in the state directory in process mode).
`issue_node(node_id)` signs an Envoy's client certificate (URI SAN from `identity.node_uri`);
`issue_server(dns, ips)` the xDS server's own. Leaves are short-lived: `due(leaf)` says when to
issue the next one (after `RENEW_AT` of its lifetime), well before it expires.

Importing `cryptography` costs a process 10-15 MiB for good: the long-lived manager reaches this
module only through a child process (`isolated`, `python -m kubelb.pki`).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubelb.pki import identity, model
from kubelb.pki.model import BACKDATE, CA_VALIDITY, LEAF_VALIDITY, RENEW_AT

__all__ = ["BACKDATE", "CA_VALIDITY", "LEAF_VALIDITY", "RENEW_AT", "Authority", "Leaf"]


class Leaf(model.Leaf):
    """`model.Leaf` that parses its certificate."""

    __slots__ = ()

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)


class Authority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, common_name: str = "kubelb xDS CA", *, now: datetime.datetime | None = None,
               validity: datetime.timedelta = CA_VALIDITY) -> Authority:  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        start = (now or model.utc_now()) - BACKDATE
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def from_pem(cls, cert: bytes, key: bytes) -> Authority:
        """Raises ValueError when they are not a CA certificate and its key."""
        certificate = x509.load_pem_x509_certificate(cert)
        private = serialization.load_pem_private_key(key, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an EC key")
        if certificate.public_key() != private.public_key():
            raise ValueError("the CA key does not match its certificate")
        return cls(certificate, private)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())  # fmt: skip

    def issue_node(self, node_id: str, *, validity: datetime.timedelta = LEAF_VALIDITY,
                   now: datetime.datetime | None = None) -> Leaf:  # fmt: skip
        """An Envoy's client certificate: it may take the configuration of `node_id` only."""
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.node_uri(node_id))]
        return self._issue(node_id, sans, ExtendedKeyUsageOID.CLIENT_AUTH, validity, now)

    def issue_server(self, dns_names: Iterable[str] = (), ips: Iterable[str] = (), *,
                     validity: datetime.timedelta = LEAF_VALIDITY,
                     now: datetime.datetime | None = None) -> Leaf:  # fmt: skip
        """The xDS server's certificate, for every name and address Envoys dial."""
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.SERVER_URI)]
        sans += [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ips)]
        return self._issue("kubelb xDS server", sans, ExtendedKeyUsageOID.SERVER_AUTH, validity,
                           now)  # fmt: skip

    def _issue(
        self,
        common_name: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        validity: datetime.timedelta,
        now: datetime.datetime | None,
    ) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        start = now or model.utc_now()
        not_after = min(start + validity, self.cert.not_valid_after_utc)
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - min(BACKDATE, validity / 10))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
        return Leaf(
            cert.public_bytes(serialization.Encoding.PEM),
            key_pem,
            self.cert_pem,
            cert.not_valid_after_utc,
        )

    def due(self, cert_pem: bytes | None, *, node_id: str | None = None,
            now: datetime.datetime | None = None) -> bool:  # fmt: skip
        return due(cert_pem, self, node_id=node_id, now=now)

    def signed(self, cert: x509.Certificate) -> bool:
        """`cert` was issued by this CA (its signature verifies)."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def renew_time(cert: x509.Certificate) -> datetime.datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * RENEW_AT


def info(cert_pem: bytes | None, authority: Authority) -> model.CertInfo | None:
    """What `cert_pem` says, for `authority`; None when there is none or it is unreadable."""
    if not cert_pem:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    return model.CertInfo(signed=authority.signed(cert), uris=tuple(uris(cert)),
                          not_before=cert.not_valid_before_utc,
                          not_after=cert.not_valid_after_utc)  # fmt: skip


def due(cert_pem: bytes | None, authority: Authority, *, node_id: str | None = None,
        now: datetime.datetime | None = None) -> bool:  # fmt: skip
    """A new leaf is needed: none, unreadable, not from `authority`, for another node, or past
    its renewal time."""
    node_uri = identity.node_uri(node_id) if node_id is not None else None
    return model.due(info(cert_pem, authority), node_uri=node_uri, now=now)


def uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)  # fmt: skip
