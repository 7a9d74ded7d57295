"""The files an Envoy reads its xDS client certificate from, laid out as the kubelet lays out a
mounted Secret, so one bootstrap serves both modes.

A certificate directory holds `tls.crt`, `tls.key`, `ca.crt`, `sds.json` and `ca-sds.json`,
each a symlink into `..data`, itself a symlink to the current version's folder. `write_dir` swaps
`..data` in one rename: Envoy's file-based SDS (the two JSON files, watched through the
directory) sees a move into the directory and reads the new certificate and key together, never
a half-written pair; a new CA is picked up the same way.

`sds_resource(directory)` and `ca_sds_resource(directory)` are the SDS files' content: the TLS
certificate Secret `SDS_NAME` and the validation context Secret `CA_SDS_NAME`, whose files are
in `directory` (the directory as Envoy sees it: in Kubernetes the mount path).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from kubelb.pki import isolated, model

CERT = "tls.crt"
KEY = "tls.key"
CA = "ca.crt"
SDS = "sds.json"
CA_SDS = "ca-sds.json"
SDS_NAME = "xds_client_certificate"
CA_SDS_NAME = "xds_server_ca"
_DATA = "..data"
_SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def sds_resource(directory: str) -> str:
    """The file-based SDS document naming the certificate and key in `directory`."""
    secret = {
        "@type": _SECRET_TYPE,
        "name": SDS_NAME,
        "tls_certificate": {
            "certificate_chain": {"filename": f"{directory}/{CERT}"},
            "private_key": {"filename": f"{directory}/{KEY}"},
            "watched_directory": {"path": directory},
        },
    }
    return json.dumps({"resources": [secret]}, indent=2, sort_keys=True) + "\n"


def ca_sds_resource(directory: str) -> str:
    """The file-based SDS document naming the CA that signs the server's certificate."""
    secret = {
        "@type": _SECRET_TYPE,
        "name": CA_SDS_NAME,
        "validation_context": {
            "trusted_ca": {"filename": f"{directory}/{CA}"},
            "watched_directory": {"path": directory},
        },
    }
    return json.dumps({"resources": [secret]}, indent=2, sort_keys=True) + "\n"


def leaf_files(leaf: model.Leaf, directory: str) -> dict[str, bytes]:
    """Every file of a certificate directory for `leaf`, seen by Envoy at `directory`."""
    return {CERT: leaf.cert, KEY: leaf.key, CA: leaf.ca, SDS: sds_resource(directory).encode(),
            CA_SDS: ca_sds_resource(directory).encode()}  # fmt: skip


def write_dir(directory: Path, files: Mapping[str, bytes]) -> None:
    """Replace the directory's files at once (see the module docstring). Blocking, small."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    version = directory / f"..{time.time_ns()}"
    version.mkdir(mode=0o700)
    for name, content in files.items():
        path = version / name
        path.write_bytes(content)
        os.chmod(path, 0o600)
    staged = directory / "..data_tmp"
    staged.unlink(missing_ok=True)
    staged.symlink_to(version.name)
    old = (directory / _DATA).resolve() if (directory / _DATA).is_symlink() else None
    os.replace(staged, directory / _DATA)
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(f"{_DATA}/{name}")
    if old is not None and old != version:
        shutil.rmtree(old, ignore_errors=True)


def read(directory: Path, name: str) -> bytes | None:
    try:
        return (directory / name).read_bytes()
    except OSError:
        return None


def load_or_create_authority(directory: Path) -> isolated.IsolatedAuthority:
    """The CA persisted in `directory` (`ca.crt`, `ca.key`), created there when missing."""
    cert, key = read(directory, "ca.crt"), read(directory, "ca.key")
    if cert and key:
        return isolated.IsolatedAuthority.from_pem(cert, key)
    authority = isolated.IsolatedAuthority.create()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    _write_private(directory / "ca.key", authority.key_pem())
    (directory / "ca.crt").write_bytes(authority.cert_pem)
    return authority


def _write_private(path: Path, content: bytes) -> None:
    staged = path.with_name(path.name + ".tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(staged, path)
