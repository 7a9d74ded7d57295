"""The agent's flags (issue 5): names, defaults, Go-style booleans, the tenant prefix."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kubelb.agent import nodes, tokens
from kubelb.app import agent, agent_settings


def parse(*argv):
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    return agent_settings.settings_from_args(parser.parse_args(list(argv)))


def test_defaults(monkeypatch):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    settings = parse("--cluster-name", "shop")
    assert settings.tenant.name == "shop"
    assert settings.tenant.namespace == "tenant-shop"
    assert settings.kubeconfig is None
    assert settings.kubelb_kubeconfig == Path.home() / ".kube" / "kubelb"
    assert settings.node_address_type is nodes.AddressType.EXTERNAL_IP
    assert settings.use_loadbalancer_class is False
    assert settings.enable_cloud_provider is True
    assert settings.metrics_addr == ":9445"
    assert settings.health_probe_bind_address == ":8081"
    assert settings.enable_leader_election is True
    assert settings.leader_election_namespace in ("kube-system", agent_settings.pod_namespace())
    assert settings.log_level == "info"
    assert settings.kubelb_kubeconfig_secret is None
    assert settings.token_expiration_seconds == 86400
    assert settings.token_renew_remaining == 0.2


def test_prefix_is_not_doubled():
    assert parse("--cluster-name=tenant-shop").tenant.namespace == "tenant-shop"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--enable-cloud-provider=false"], False),
        (["--enable-cloud-provider=False"], False),
        (["--enable-cloud-provider", "false"], False),
        (["--enable-cloud-provider"], True),
        (["--enable-cloud-provider=true"], True),
    ],
)
def test_go_style_booleans(argv, expected):
    assert parse("--cluster-name=a", *argv).enable_cloud_provider is expected


def test_all_flags():
    settings = parse(
        "--cluster-name=a",
        "--kubeconfig=/tmp/tenant",
        "--kubelb-kubeconfig=/tmp/kubelb",
        "--node-address-type=Hostname",
        "--use-loadbalancer-class",
        "--metrics-addr=127.0.0.1:9999",
        "--health-probe-bind-address=127.0.0.1:9998",
        "--enable-leader-election=false",
        "--leader-election-namespace=kubelb",
        "--log-level=debug",
    )
    assert settings.kubeconfig == Path("/tmp/tenant")
    assert settings.kubelb_kubeconfig == Path("/tmp/kubelb")
    assert settings.node_address_type is nodes.AddressType.HOSTNAME
    assert settings.use_loadbalancer_class is True
    assert settings.metrics_addr == "127.0.0.1:9999"
    assert settings.enable_leader_election is False
    assert settings.leader_election_namespace == "kubelb"


def test_pod_namespace_from_environment(monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "kubelb-system")
    assert parse("--cluster-name=a").leader_election_namespace == "kubelb-system"


@pytest.mark.parametrize(
    "argv",
    [
        ["--cluster-name=a", "--node-address-type=InternalDNS"],
        ["--cluster-name=a", "--enable-cloud-provider=maybe"],
        ["--cluster-name=a", "--metrics-addr=9445"],
        ["--cluster-name=  "],
        ["--cluster-name=tenant-"],
        ["--cluster-name=Not_A_Label"],
        [],
    ],
)
def test_bad_flags_exit(argv):
    with pytest.raises(SystemExit):
        parse(*argv)


def test_token_flags(monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "kubelb")
    settings = parse(
        "--cluster-name=a",
        "--kubelb-kubeconfig-secret=kubelb-cluster",
        "--kubelb-token-expiration=3600",
        "--kubelb-token-renew-remaining=0.5",
    )
    assert settings.kubelb_kubeconfig_secret == tokens.SecretRef("kubelb", "kubelb-cluster")
    assert (settings.token_expiration_seconds, settings.token_renew_remaining) == (3600, 0.5)
    assert parse("--cluster-name=a", "--kubelb-kubeconfig-secret=x/y").kubelb_kubeconfig_secret == (
        tokens.SecretRef("x", "y"))  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["--kubelb-kubeconfig-secret=a/b/c"], ["--kubelb-token-expiration=60"],
     ["--kubelb-token-renew-remaining=1.5"]],
)  # fmt: skip
def test_bad_token_flags_exit_with_a_message(argv):
    with pytest.raises(SystemExit, match="kubelb: --kubelb-"):
        parse("--cluster-name=a", *argv)
