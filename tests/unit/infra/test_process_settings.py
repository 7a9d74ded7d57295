"""Config settings for Envoy pods, refused by the process deployer with a reason."""

from __future__ import annotations

from kubelb.api import config as api_config
from kubelb.infra import process


def proxy(**fields: object) -> api_config.EnvoyProxy:
    return api_config.EnvoyProxy.model_validate(fields)


def test_defaults_are_all_applicable():
    assert process.not_applicable(proxy()) == ()


def test_daemonset_and_pod_monitor_say_why_they_do_not_apply():
    ignored = process.not_applicable(proxy(useDaemonset=True, podMonitor={"enabled": True}))
    assert [m.split(" does not apply")[0] for m in ignored] == [
        "envoyProxy.useDaemonset",
        "envoyProxy.podMonitor.enabled",
    ]
    assert all("process Envoy deployer" in m for m in ignored)
