"""The xDS CA: what it issues, who a certificate names, and when a leaf is due."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubelb.pki import ca, files, identity

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def authority() -> ca.Authority:
    return ca.Authority.create()


def test_node_certificate_chains_to_the_ca_and_names_the_node(authority: ca.Authority) -> None:
    leaf = authority.issue_node("tenant-a")
    cert = leaf.certificate
    assert authority.signed(cert)
    assert ca.uris(cert) == ["spiffe://kubelb/node/tenant-a"]
    assert identity.node_of(ca.uris(cert)) == "tenant-a"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.ca == authority.cert_pem


def test_a_certificate_of_another_ca_does_not_verify(authority: ca.Authority) -> None:
    stranger = ca.Authority.create().issue_node("tenant-a")
    assert not authority.signed(stranger.certificate)
    assert ca.due(stranger.cert, authority)


def test_openssl_verifies_the_chain(authority: ca.Authority, tmp_path: Path) -> None:
    """An independent TLS stack accepts the server certificate for its names and the CA."""
    leaf = authority.issue_server(["envoycp.kubelb.svc"], ["127.0.0.1"])
    (tmp_path / "ca.crt").write_bytes(authority.cert_pem)
    (tmp_path / "tls.crt").write_bytes(leaf.cert)
    (tmp_path / "tls.key").write_bytes(leaf.key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(incoming, outgoing, server_hostname="envoycp.kubelb.svc")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(outgoing.read())
        incoming.write(s_out.read())
    c.do_handshake()  # raises SSLCertVerificationError when the chain or the name is wrong
    peer = c.getpeercert()
    assert peer is not None
    assert peer["subjectAltName"] == (
        ("URI", identity.SERVER_URI),
        ("DNS", "envoycp.kubelb.svc"),
        ("IP Address", "127.0.0.1"),
    )


def test_server_certificate_names(authority: ca.Authority) -> None:
    cert = authority.issue_server(["envoycp.kubelb.svc", "envoycp.kubelb.svc"], ["::1"]).certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["envoycp.kubelb.svc"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("::1")]
    assert identity.node_of(ca.uris(cert)) is None  # a server certificate is no node's


def test_leaf_is_due_after_two_thirds_of_its_life(authority: ca.Authority) -> None:
    leaf = authority.issue_node("t", validity=datetime.timedelta(hours=3), now=NOW)
    assert not ca.due(leaf.cert, authority, node_id="t", now=NOW)
    assert not ca.due(leaf.cert, authority, now=NOW + datetime.timedelta(minutes=115))
    assert ca.due(leaf.cert, authority, now=NOW + datetime.timedelta(hours=2))
    assert ca.due(leaf.cert, authority, node_id="other", now=NOW)
    assert ca.due(None, authority)
    assert ca.due(b"not a certificate", authority)


def test_leaf_never_outlives_the_ca() -> None:
    short = ca.Authority.create(validity=datetime.timedelta(hours=1), now=NOW)
    leaf = short.issue_node("t", now=NOW)
    assert leaf.certificate.not_valid_after_utc == short.cert.not_valid_after_utc


def test_round_trip_through_pem(authority: ca.Authority) -> None:
    again = ca.Authority.from_pem(authority.cert_pem, authority.key_pem())
    assert again.signed(again.issue_node("t").certificate)
    assert authority.signed(again.issue_node("t").certificate)
    with pytest.raises(ValueError, match="does not match"):
        ca.Authority.from_pem(authority.cert_pem, ca.Authority.create().key_pem())


@pytest.mark.parametrize(
    ("uris", "node"),
    [
        (["spiffe://kubelb/node/a"], "a"),
        ([], None),
        (["spiffe://kubelb/node/"], None),
        (["spiffe://kubelb/node/a", "spiffe://kubelb/node/b"], None),
        (["spiffe://other/node/a", identity.SERVER_URI], None),
    ],
)
def test_node_of(uris: list[str], node: str | None) -> None:
    assert identity.node_of(uris) == node


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_node_uri_refuses_what_is_no_node_id(bad: str) -> None:
    with pytest.raises(ValueError, match="not a node id"):
        identity.node_uri(bad)


def test_authority_persists_in_a_directory(tmp_path: Path) -> None:
    first = files.load_or_create_authority(tmp_path / "pki")
    again = files.load_or_create_authority(tmp_path / "pki")
    assert again.cert_pem == first.cert_pem
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o077 == 0


def test_write_dir_swaps_every_file_at_once(authority: ca.Authority, tmp_path: Path) -> None:
    directory = tmp_path / "xds-tls"
    one, two = authority.issue_node("t"), authority.issue_node("t")
    files.write_dir(directory, files.leaf_files(one, str(directory)))
    assert files.read(directory, files.CERT) == one.cert
    files.write_dir(directory, files.leaf_files(two, str(directory)))
    assert files.read(directory, files.CERT) == two.cert
    assert files.read(directory, files.KEY) == two.key
    versions = [p for p in directory.iterdir() if p.name.startswith("..") and not p.is_symlink()]
    assert len(versions) == 1  # the old version is gone
    assert f'"filename": "{directory}/tls.crt"' in (directory / files.SDS).read_text()
