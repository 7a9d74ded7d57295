"""The agent's --enable-secret-synchronizer: upstream's name and default (off)."""

from __future__ import annotations

import argparse

from kubelb.app import agent, agent_settings


def parse(*argv):
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    return agent_settings.settings_from_args(parser.parse_args(["--cluster-name=a", *argv]))


def test_secret_synchronizer_is_off_by_default_and_go_style():
    assert parse().enable_secret_synchronizer is False
    assert parse("--enable-secret-synchronizer").enable_secret_synchronizer is True
    assert parse("--enable-secret-synchronizer=true").enable_secret_synchronizer is True
    assert parse("--enable-secret-synchronizer=false").enable_secret_synchronizer is False
