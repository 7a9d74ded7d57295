"""Process mode's xDS certificate files: issued once, re-issued when due or from another CA,
removed with the node; how often rotation looks."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from kubelb.infra import xdscerts
from kubelb.pki import ca, files, identity


async def test_issued_once_then_kept(tmp_path: Path) -> None:
    certs = xdscerts.FileCerts(tmp_path, authority=ca.Authority.create())
    directory = await certs.ensure("tenant-a")
    cert = (directory / files.CERT).read_bytes()
    assert await certs.ensure("tenant-a") == directory
    assert (directory / files.CERT).read_bytes() == cert
    assert certs.issued == 1
    leaf = ca.Leaf(cert, b"", b"")
    assert ca.uris(leaf.certificate) == [identity.node_uri("tenant-a")]


async def test_due_certificates_are_reissued(tmp_path: Path) -> None:
    authority = ca.Authority.create()
    certs = xdscerts.FileCerts(tmp_path, authority=authority, validity=datetime.timedelta(0))
    await certs.ensure("a")
    assert await certs.rotate() == 1  # a zero lifetime is always due
    fresh = xdscerts.FileCerts(tmp_path, authority=authority)
    assert await fresh.rotate() == 0  # knows no node yet
    await fresh.ensure("a")
    assert fresh.issued == 1  # the zero-lifetime certificate there was due


async def test_another_ca_means_a_new_certificate(tmp_path: Path) -> None:
    await xdscerts.FileCerts(tmp_path, authority=ca.Authority.create()).ensure("a")
    replacement = ca.Authority.create()
    certs = xdscerts.FileCerts(tmp_path, authority=replacement)
    directory = await certs.ensure("a")
    assert certs.issued == 1
    assert (directory / files.CA).read_bytes() == replacement.cert_pem


async def test_forget_removes_the_directory(tmp_path: Path) -> None:
    certs = xdscerts.FileCerts(tmp_path, authority=ca.Authority.create())
    directory = await certs.ensure("a")
    await certs.forget("a")
    assert not directory.exists()
    assert certs.nodes == set()


async def test_the_ca_persists_under_the_root(tmp_path: Path) -> None:
    first = await xdscerts.FileCerts(tmp_path).load_authority()
    again = await xdscerts.FileCerts(tmp_path).load_authority()
    assert first.cert_pem == again.cert_pem
    with pytest.raises(RuntimeError, match="not loaded"):
        await xdscerts.FileCerts(tmp_path).ensure("a")


@pytest.mark.parametrize(
    ("validity", "period"),
    [(datetime.timedelta(days=1), 60.0), (datetime.timedelta(seconds=6), 0.5),
     (datetime.timedelta(seconds=1), 0.2)],
)  # fmt: skip
def test_check_period(validity: datetime.timedelta, period: float) -> None:
    assert xdscerts.check_period(validity) == pytest.approx(period)
