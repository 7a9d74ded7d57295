"""Upstream KubeLB's manager and CCM flags (issue 13): accepted, the NAMESPACE fallback, and a
log line for each flag kubelb takes but cannot honour."""

from __future__ import annotations

import argparse
import logging

import pytest

from kubelb.app import agent, agent_settings, manager


def manager_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    manager.add_arguments(parser)
    return parser.parse_args(list(argv))


def agent_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    return parser.parse_args(["--cluster-name=shop", *argv])


def test_namespace_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("NAMESPACE", "from-env")
    assert manager.settings_from_args(manager_args("--namespace=lb")).namespace == "lb"


@pytest.mark.parametrize("argv", [[], ["--namespace="]])
def test_namespace_falls_back_to_the_environment(monkeypatch, argv):
    monkeypatch.setenv("NAMESPACE", "from-env")
    assert manager.settings_from_args(manager_args(*argv)).namespace == "from-env"


def test_namespace_defaults_to_kubelb(monkeypatch):
    monkeypatch.delenv("NAMESPACE", raising=False)
    assert manager.settings_from_args(manager_args()).namespace == "kubelb"
    monkeypatch.setenv("NAMESPACE", "")
    assert manager.settings_from_args(manager_args()).namespace == "kubelb"
    with pytest.raises(SystemExit, match="--namespace must not be empty"):
        manager.settings_from_args(manager_args("--namespace="))


def test_agent_lease_namespace_from_upstreams_namespace_variable(monkeypatch):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setenv("NAMESPACE", "kubelb")
    assert agent_settings.settings_from_args(agent_args()).leader_election_namespace == "kubelb"
    monkeypatch.setenv("POD_NAMESPACE", "mine")
    assert agent_settings.settings_from_args(agent_args()).leader_election_namespace == "mine"


def test_manager_zap_flags_reach_the_settings():
    s = manager.settings_from_args(
        manager_args("--zap-log-level=debug", "--zap-encoder=json", "--zap-time-encoding=millis")
    )
    assert (s.log.level, s.log.encoder, s.log.time_encoding) == (logging.DEBUG, "json", "millis")
    assert s.log_level == "debug"


def test_agent_zap_flags_reach_the_settings():
    s = agent_settings.settings_from_args(agent_args("--zap-log-level=error", "--zap-devel"))
    assert (s.log.level, s.log_level, s.log.stacktrace_level) == (
        logging.ERROR,
        "error",
        logging.WARNING,
    )


def test_manager_notes_each_unhonoured_flag():
    assert manager.unhonoured(manager_args()) == []
    assert manager.unhonoured(manager_args("--enable-gateway-api=false")) == []
    notes = manager.unhonoured(
        manager_args("--enable-gateway-api=true", "--enable-tenant-migration=true")
    )
    assert [n.split(":")[0] for n in notes] == [
        "--enable-gateway-api",
        "--enable-tenant-migration",
    ]
    # a no-op either way, so false is noted too: the operator asked for something
    assert manager.unhonoured(manager_args("--enable-tenant-migration=false"))


def test_manager_debug_keeps_its_meaning():
    assert manager.settings_from_args(manager_args("--debug=true")).debug is True
    assert manager.settings_from_args(manager_args()).debug is False


def test_agent_notes_each_unhonoured_flag_set_away_from_its_default():
    assert agent_settings.unhonoured(agent_args()) == []
    # upstream's defaults, written out as a chart may: nothing to say
    defaults = [
        f"{flag}={str(default).lower() if isinstance(default, bool) else default}"
        for flag, (default, _) in agent_settings.UNHONOURED.items()
    ]
    assert agent_settings.unhonoured(agent_args(*defaults)) == []
    notes = agent_settings.unhonoured(
        agent_args(
            "--enable-ingress-conversion",
            "--conversion-domain-suffix=example.com",
            "--max-node-address-count=3",
        )
    )
    assert [n.split("=")[0] for n in notes] == [
        "--enable-ingress-conversion",
        "--conversion-domain-suffix",
        "--max-node-address-count",
    ]
    assert all("kubelb" in n for n in notes)  # each says what kubelb does instead


def test_node_address_label_selector_narrows_the_nodes():
    s = agent_settings.settings_from_args(agent_args("--node-address-label-selector=lb=yes"))
    assert s.node_label_selector == "lb=yes"
    assert agent_settings.settings_from_args(agent_args()).node_label_selector is None


@pytest.mark.parametrize("mode", [manager_args, agent_args])
def test_help_names_every_zap_flag(mode, capsys):
    with pytest.raises(SystemExit):
        mode("--help")
    text = capsys.readouterr().out
    for flag in (
        "--zap-log-level",
        "--zap-devel",
        "--zap-encoder",
        "--zap-stacktrace-level",
        "--zap-time-encoding",
    ):
        assert flag in text
