"""What the xDS CA issues and when a certificate is due, with no `cryptography` import.

Two authorities share the `Authority` protocol: `ca.Authority` signs in this process (tests and
the child process use it), `isolated.IsolatedAuthority` signs in a short-lived child process so
that a long-lived manager never loads `cryptography`. What a certificate says (`CertInfo`) is
enough to decide when it is due (`due`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(hours=24)
RENEW_AT = 2 / 3  # of a leaf's lifetime: a day-long leaf is replaced 8 hours before it expires
# Clocks differ between hosts: a leaf is valid from a little before it is issued.
BACKDATE = datetime.timedelta(minutes=5)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class Leaf:
    """A certificate and its private key, PEM; `ca` is the issuer's certificate. `not_after`:
    when it expires, when the issuer said so."""

    cert: bytes
    key: bytes
    ca: bytes
    not_after: datetime.datetime | None = None


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What matters of a certificate to its issuer: signed by it, whom it names (URI SANs), and
    when it is valid."""

    signed: bool
    uris: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def renew_time(self) -> datetime.datetime:
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT


def due(info: CertInfo | None, *, node_uri: str | None = None,
        now: datetime.datetime | None = None) -> bool:  # fmt: skip
    """A new leaf is needed: none or unreadable (None), not from the authority, naming another
    node, or past its renewal time."""
    if info is None or not info.signed:
        return True
    if node_uri is not None and info.uris != (node_uri,):
        return True
    return (now or utc_now()) >= info.renew_time


class Authority(Protocol):
    """The xDS CA as the manager uses it."""

    cert_pem: bytes

    def key_pem(self) -> bytes: ...

    def issue_node(self, node_id: str, *, validity: datetime.timedelta = LEAF_VALIDITY,
                   now: datetime.datetime | None = None) -> Leaf:  # fmt: skip
        """An Envoy's client certificate: it may take the configuration of `node_id` only."""
        ...

    def issue_server(self, dns_names: Iterable[str] = (), ips: Iterable[str] = (), *,
                     validity: datetime.timedelta = LEAF_VALIDITY,
                     now: datetime.datetime | None = None) -> Leaf:  # fmt: skip
        """The xDS server's certificate, for every name and address Envoys dial."""
        ...

    def due(self, cert_pem: bytes | None, *, node_id: str | None = None,
            now: datetime.datetime | None = None) -> bool:  # fmt: skip
        """A new leaf is needed in place of `cert_pem` (see `model.due`)."""
        ...
