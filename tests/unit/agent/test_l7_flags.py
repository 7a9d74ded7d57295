"""The agent's L7 flags: upstream's names and defaults, and which kinds they enable."""

from __future__ import annotations

import argparse

from kubelb.app import agent, agent_settings


def parse(*argv):
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    return agent_settings.settings_from_args(parser.parse_args(["--cluster-name=a", *argv]))


def kinds(settings):
    return [k.metric for k in agent.source_kinds(settings)]


def test_defaults_serve_ingresses_of_class_kubelb_only():
    settings = parse()
    assert settings.use_ingress_class is True
    assert settings.use_gateway_class is True
    assert settings.enable_gateway_api is False
    assert kinds(settings) == ["ingress"]
    (ingress,) = agent.source_kinds(settings)
    assert ingress.in_scope({"spec": {"ingressClassName": "kubelb"}})
    assert not ingress.in_scope({"spec": {}})


def test_gateway_api_and_disables():
    assert kinds(parse("--enable-gateway-api")) == ["ingress", "gateway", "httproute", "grpcroute"]
    assert kinds(parse("--enable-gateway-api", "--disable-ingress-controller",
                       "--disable-grpcroute-controller")) == ["gateway", "httproute"]  # fmt: skip
    assert kinds(parse("--enable-gateway-api=true", "--disable-gateway-controller=true",
                       "--disable-httproute-controller")) == ["ingress", "grpcroute"]  # fmt: skip
    # The Gateway API switches mean nothing without --enable-gateway-api.
    assert kinds(parse("--disable-gateway-controller=false")) == ["ingress"]
    assert kinds(parse("--disable-ingress-controller")) == []


def test_class_filters_can_be_turned_off():
    settings = parse("--use-ingress-class=false", "--use-gateway-class=false",
                     "--enable-gateway-api")  # fmt: skip
    ingress, gateway, *_ = agent.source_kinds(settings)
    assert ingress.in_scope({"spec": {"ingressClassName": "nginx"}})
    assert gateway.in_scope({"metadata": {"name": "kubelb"}, "spec": {"gatewayClassName": "x"}})
    assert not gateway.in_scope({"metadata": {"name": "other"}, "spec": {}})
