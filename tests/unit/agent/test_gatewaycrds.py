"""`--install-gateway-api-crds` and `--gateway-api-crds-channel`: flags, the CRDs as the agent
writes them, and the reconciler's writes on an in-memory API server."""

from __future__ import annotations

import argparse

import pytest

from kubelb.agent import gatewaycrds
from kubelb.api import gatewayapi, labels
from kubelb.app import agent, agent_settings
from kubelb.kube import memory, objects, store

GATEWAYS = objects.ObjectKey("", "gateways.gateway.networking.k8s.io")


def parse(*argv):
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    return agent_settings.settings_from_args(parser.parse_args(["--cluster-name=a", *argv]))


def test_flags_default_to_off_and_standard():
    settings = parse()
    assert settings.install_gateway_api_crds is False
    assert settings.gateway_api_crds_channel == "standard"


@pytest.mark.parametrize("argv", [["--install-gateway-api-crds"],
                                  ["--install-gateway-api-crds=true"]])  # fmt: skip
def test_install_flag_is_a_go_style_boolean(argv):
    assert parse(*argv).install_gateway_api_crds is True


def test_channel_flag():
    assert parse("--gateway-api-crds-channel=experimental").gateway_api_crds_channel == (
        "experimental"
    )
    with pytest.raises(SystemExit):
        parse("--gateway-api-crds-channel=beta")


def test_help_names_the_shipped_version_and_the_rbac_it_needs():
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert f"({gatewayapi.version()})" in text
    assert "customresourcedefinitions" in text


@pytest.mark.parametrize("channel", gatewayapi.CHANNELS)
def test_desired_crds_carry_the_label_and_conversion_none(channel):
    desired = gatewaycrds.desired(channel)
    shipped = gatewayapi.crds(channel)
    assert [c["metadata"]["name"] for c in desired] == [c["metadata"]["name"] for c in shipped]
    for crd, vendored in zip(desired, shipped, strict=True):
        own = vendored["metadata"].get("labels", {})
        assert crd["metadata"]["labels"] == {**own, labels.MANAGED_BY: labels.MANAGED_BY_VALUE}
        assert crd["spec"]["conversion"] == {"strategy": "None"}
        assert crd["metadata"]["annotations"][gatewayapi.CHANNEL_ANNOTATION] == channel
        # The shipped documents themselves stay as vendored.
        assert labels.MANAGED_BY not in own
    assert any(c["metadata"].get("labels") for c in shipped)  # e.g. the policy label


async def test_reconciler_creates_skips_and_restores():
    kube = memory.MemoryClient(field_manager="kubelb-agent")
    cache = store.Store()
    reconciler = gatewaycrds.GatewayCRDReconciler(kube, gatewaycrds.desired("standard"), cache)
    assert GATEWAYS in reconciler.keys
    crds = gatewaycrds.CUSTOM_RESOURCE_DEFINITIONS

    await reconciler.reconcile(GATEWAYS)  # absent: created
    live = await kube.get(crds, GATEWAYS.name)
    assert objects.labels(live)[labels.MANAGED_BY] == labels.MANAGED_BY_VALUE
    assert reconciler.writer.writes == 1

    cache.replace([live])
    await reconciler.reconcile(GATEWAYS)  # unchanged: no write
    assert reconciler.writer.writes == 1

    edited = await kube.patch(crds, GATEWAYS.name, {"spec": {"names": {"shortNames": ["x"]}}})
    cache.replace([edited])
    await reconciler.reconcile(GATEWAYS)
    restored = await kube.get(crds, GATEWAYS.name)
    assert restored["spec"]["names"]["shortNames"] == ["gtw"]
    assert reconciler.writer.writes == 2

    await reconciler.reconcile(objects.ObjectKey("", "widgets.example.com"))  # not shipped
    assert reconciler.writer.writes == 2
