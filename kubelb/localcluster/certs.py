"""Certificates and keys for the local control plane, made with the `openssl` command line tool.

Inputs: a folder and names. Outputs: PEM files in that folder: a self-signed CA, leaf certificates
it signs (serving and client, EC P-256) and ServiceAccount signing key pairs. The `openssl` CLI
keeps `pip install kubelb` free of a crypto dependency; it is present on every Debian-like system.
These functions block (they run `openssl`); call them from a thread in async code.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_CA_DAYS = "3650"
_LEAF_DAYS = "825"


class OpenSSLError(RuntimeError):
    """`openssl` is missing or one of its invocations failed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A key pair for signing ServiceAccount tokens: private and public PEM files."""

    private: Path
    public: Path


def create_ca(directory: Path, *, common_name: str, name: str = "ca") -> CertPair:
    """A self-signed CA valid for ten years, written as `<name>.crt` and `<name>.key`."""
    config = directory / f"{name}.cnf"
    config.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
        f"[dn]\nCN = {common_name}\n"
        "[ext]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
        "subjectKeyIdentifier = hash\n"
    )
    pair = CertPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    _openssl(
        "req",
        "-x509",
        "-new",
        "-config",
        str(config),
        *_EC_KEY,
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
        "-days",
        _CA_DAYS,
    )
    config.unlink()
    return pair


def issue(
    ca: CertPair,
    directory: Path,
    name: str,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
) -> CertPair:
    """A leaf certificate signed by `ca`, written as `<name>.crt` and `<name>.key`.

    `organizations` become O= entries (Kubernetes reads them as groups: `system:masters` is
    admin); `server` and `client` choose the extended key usages.
    """
    if not (server or client):
        raise ValueError("a leaf certificate needs server or client usage")
    usages = [u for u, wanted in (("serverAuth", server), ("clientAuth", client)) if wanted]
    sans = [f"IP:{ip}" for ip in ip_addresses] + [f"DNS:{dns}" for dns in dns_names]
    extensions = [
        "[ext]",
        "basicConstraints = critical,CA:FALSE",
        "keyUsage = critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage = {','.join(usages)}",
        "authorityKeyIdentifier = keyid",
    ]
    if sans:
        extensions.append(f"subjectAltName = {','.join(sans)}")
    ext_file = directory / f"{name}.ext"
    ext_file.write_text("\n".join(extensions) + "\n")
    subject = "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"
    pair = CertPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    csr = _openssl("req", "-new", *_EC_KEY, "-keyout", str(pair.key), "-subj", subject)
    _openssl(
        "x509",
        "-req",
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-set_serial",
        f"0x{secrets.token_hex(16)}",
        "-days",
        _LEAF_DAYS,
        "-extfile",
        str(ext_file),
        "-extensions",
        "ext",
        "-out",
        str(pair.cert),
        stdin=csr,
    )
    ext_file.unlink()
    return pair


def create_signing_key(directory: Path, name: str) -> SigningKey:
    """An EC P-256 key pair for ES256 tokens: `<name>.key` (private) and `<name>.pub`."""
    key = SigningKey(private=directory / f"{name}.key", public=directory / f"{name}.pub")
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        str(key.private),
    )
    _openssl("pkey", "-in", str(key.private), "-pubout", "-out", str(key.public))
    return key


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    binary = shutil.which("openssl")
    if binary is None:
        raise OpenSSLError("the `openssl` command is needed for the control plane's certificates")
    result = subprocess.run(
        [binary, *args], input=stdin, capture_output=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise OpenSSLError(
            f"openssl {args[0]} failed ({result.returncode}): {result.stderr.decode().strip()}"
        )
    return result.stdout
