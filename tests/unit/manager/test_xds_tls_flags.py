"""`--xds-tls` and `--xds-cert-validity`: mTLS by default; plaintext only for local Envoy
processes on a loopback xDS address."""

from __future__ import annotations

import argparse

import pytest

from kubelb.app import manager


def parse(*argv):
    parser = argparse.ArgumentParser()
    manager.add_arguments(parser)
    return manager.settings_from_args(parser.parse_args(list(argv)))


def test_mtls_by_default():
    s = parse()
    assert s.xds_tls is True
    assert s.xds_cert_validity == 86400.0
    assert parse("--envoy-deployer=process").xds_tls is True


@pytest.mark.parametrize(
    "address", ["127.0.0.1:8001", "127.0.0.5:0", "[::1]:8001", "localhost:8001"]
)
def test_plaintext_on_loopback_with_local_envoys(address):
    s = parse("--xds-tls=false", "--envoy-deployer=process", f"--listen-address={address}")
    assert s.xds_tls is False


@pytest.mark.parametrize(
    "argv",
    [
        ("--xds-tls=false",),  # Kubernetes deployer: Envoy pods reach xDS over the network
        ("--xds-tls=false", "--listen-address=127.0.0.1:8001"),
        ("--xds-tls=false", "--envoy-deployer=process"),  # the default :8001 is every interface
        ("--xds-tls=false", "--envoy-deployer=process", "--listen-address=10.0.0.1:8001"),
    ],
)
def test_plaintext_refused_elsewhere(argv):
    with pytest.raises(SystemExit, match="--xds-tls=false"):
        parse(*argv)


def test_validity():
    assert parse("--xds-cert-validity=3600").xds_cert_validity == 3600.0
    with pytest.raises(SystemExit, match="at least 1 second"):
        parse("--xds-cert-validity=0")


def test_help_documents_the_flags(capsys):
    parser = argparse.ArgumentParser()
    manager.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--xds-tls" in text
    assert "allowed only with --envoy-deployer=process and a loopback" in text
    assert "--xds-cert-validity" in text
