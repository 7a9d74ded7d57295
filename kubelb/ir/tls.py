"""TLS key material in the IR: `TLSSecret` (a certificate chain and its private key, PEM) and its
validation. Listeners never hold key material: they name a secret (`proxy.ServerCertificate`),
and `ProxyConfig.secrets` carries the secrets beside them, so Envoy receives them by SDS and a
rotation changes a secret, never a listener.

Validation (`secret_problems`) uses only the standard library: the `ssl` module loads the pair
(which checks that both parse and that the key belongs to the first certificate) from anonymous
in-memory files, never from disk, and the leaf's validity period is read from its DER. Problems
come back as messages, never as exceptions. The costly part is cached by content, the clock is
the caller's.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import functools
import re
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.util import memfiles

# The keys of a `kubernetes.io/tls` Secret.
CERT_KEY = "tls.crt"
PRIVATE_KEY_KEY = "tls.key"

_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSSecret:
    """A certificate chain (PEM, leaf first) and the leaf's private key (PEM), under a name
    that listeners refer to. The name stays when the content changes (a rotation)."""

    name: str
    certificate_chain: str = field(repr=False)
    private_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What validation learned about a chain's leaf (POSIX seconds, UTC)."""

    not_before: float
    not_after: float


def secret_problems(secret: TLSSecret, now: float) -> list[str]:
    """Why `secret` cannot be served at time `now` (empty when it can): unparsable PEM, a key
    that does not belong to the leaf certificate, a leaf not valid yet or expired."""
    info = inspect(secret.certificate_chain, secret.private_key)
    if isinstance(info, str):
        return [info]
    if now < info.not_before:
        return [f"the certificate is not valid before {_iso(info.not_before)}"]
    if now >= info.not_after:
        return [f"the certificate expired at {_iso(info.not_after)}"]
    return []


@functools.lru_cache(maxsize=1024)
def inspect(certificate_chain: str, private_key: str) -> CertificateInfo | str:
    """The leaf's validity period, or why the pair is unusable (a message)."""
    match = _PEM_CERT.search(certificate_chain)
    if match is None:
        return "the certificate chain holds no PEM certificate"
    try:
        der = base64.b64decode("".join(match["body"].split()), validate=True)
        not_before, not_after = _validity(der)
    except (binascii.Error, ValueError, IndexError) as exc:
        return f"the certificate does not parse: {exc}"
    if not private_key.strip():
        return "the private key is empty"
    problem = _pair_problem(certificate_chain, private_key)
    if problem is not None:
        return problem
    return CertificateInfo(not_before=not_before, not_after=not_after)


def server_name_errors(where: str, groups: list[tuple[str, ...]]) -> list[str]:
    """Server names of SNI choices (certificates or routes, one tuple each) that Envoy
    cannot tell apart or not take."""
    errors = [f"{where}: server name {n!r} is given twice" for n in _duplicates(
        n for names in groups for n in names)]  # fmt: skip
    if sum(1 for names in groups if not names) > 1:
        errors.append(f"{where}: more than one default (no server names)")
    errors.extend(
        f"{where}: server name {n!r} must be lower-case, with `*.` only at its start"
        for names in groups
        for n in names
        if not n or n != n.lower() or "*" in n.removeprefix("*.")
    )
    return errors


def config_errors(secrets: Sequence[TLSSecret], listeners: Iterable[Any]) -> list[str]:
    """What is wrong with the secrets of a `proxy.ProxyConfig` and the `tls` of its
    `listeners`: duplicate secret names, listeners naming unknown secrets or server names
    twice."""
    names = [s.name for s in secrets]
    errors = [f"duplicate secret name {n!r}" for n in _duplicates(names)]
    known = set(names)
    for li in listeners:
        if li.tls is None:
            continue
        where = f"listener {li.name!r}"
        if not li.tls.certificates:
            errors.append(f"{where}: TLS needs at least one certificate")
        errors.extend(server_name_errors(where, [c.server_names for c in li.tls.certificates]))
        errors.extend(
            f"{where}: refers to unknown secret {c.secret!r}"
            for c in li.tls.certificates
            if c.secret not in known
        )
    return errors


def _duplicates(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    twice: list[str] = []
    for n in names:
        if n in seen and n not in twice:
            twice.append(n)
        seen.add(n)
    return twice


def _pair_problem(certificate_chain: str, private_key: str) -> str | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with (
            memfiles.memory_file(certificate_chain) as cert_path,
            memfiles.memory_file(private_key) as key_path,
        ):
            # An encrypted key gets an empty password and fails, instead of prompting.
            context.load_cert_chain(cert_path, key_path, password=b"")
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(reason).upper():
            return "the private key does not belong to the certificate"
        return f"the certificate or key does not load: {reason}"
    except (OSError, ValueError, TypeError) as exc:
        return f"the certificate or key does not load: {exc}"
    return None


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `at`."""
    tag, length = der[at], der[at + 1]
    start = at + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("truncated DER")
    return tag, start, end


def _validity(der: bytes) -> tuple[float, float]:
    """notBefore and notAfter of an X.509 certificate (DER)."""
    _, cert, _ = _tlv(der, 0)  # Certificate
    _, at, _ = _tlv(der, cert)  # TBSCertificate
    tag, _, end = _tlv(der, at)
    if tag == 0xA0:  # [0] version
        at = end
    for _ in range(3):  # serialNumber, signature, issuer
        at = _tlv(der, at)[2]
    tag, start, _ = _tlv(der, at)
    if tag != 0x30:
        raise ValueError("no validity period")
    first = _tlv(der, start)
    second = _tlv(der, first[2])
    return _time(der, first), _time(der, second)


def _time(der: bytes, element: tuple[int, int, int]) -> float:
    tag, start, end = element
    text = der[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSS
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime, YYYYMMDDHHMMSS
        raise ValueError(f"unexpected time tag {tag:#x}")
    parts = (text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14] or "0")
    return float(calendar.timegm((*(int(p) for p in parts), 0, 0, 0)))


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
