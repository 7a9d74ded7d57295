"""`kubelb --mode=manager` flags: upstream's names and defaults, and clear errors."""

from __future__ import annotations

import argparse

import pytest

from kubelb.app import manager, manager_settings


def parse(*argv):
    parser = argparse.ArgumentParser()
    manager.add_arguments(parser)
    return manager.settings_from_args(parser.parse_args(list(argv)))


def test_every_envoy_deployer_flag_value_has_an_infrastructure():
    assert set(manager_settings.ENVOY_DEPLOYERS) == set(manager.INFRASTRUCTURES)
    assert set(manager.XDS_CERTS) == set(manager.INFRASTRUCTURES)


def test_defaults():
    s = parse()
    assert (s.namespace, s.listen_address, s.health_probe_bind_address, s.metrics_addr) == (
        "kubelb",
        ":8001",
        ":8081",
        ":9443",
    )
    assert s.enable_leader_election is True
    assert s.envoy_deployer == "kubernetes"
    assert s.address_pool == ("127.0.0.1",)


def test_values():
    s = parse(
        "--enable-leader-election=false",
        "--envoy-deployer=process",
        "--address-pool=127.0.0.8/31,127.0.0.20",
        "--namespace=lb",
    )
    assert s.enable_leader_election is False
    assert s.address_pool == ("127.0.0.8", "127.0.0.9", "127.0.0.20")
    assert parse("--enable-leader-election").enable_leader_election is True
    assert parse("--envoy-xds-port=18001").envoy_xds_port == 18001
    assert parse("--tenant-api-server=https://x:6443").tenant_api_server == "https://x:6443"


@pytest.mark.parametrize(
    "argv",
    [["--address-pool=nope"], ["--metrics-addr=9443"], ["--workers=0"], ["--namespace="]],
)
def test_bad_flags_exit_with_a_message(argv):
    with pytest.raises(SystemExit, match="kubelb: --"):
        parse(*argv)


def test_tenant_token_mode():
    assert parse().tenant_token == "bound"
    assert parse("--tenant-token=long-lived").tenant_token == "long-lived"
    with pytest.raises(SystemExit):
        parse("--tenant-token=forever")
