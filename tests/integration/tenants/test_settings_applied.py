"""A Config setting the Envoy infrastructure in use cannot honour is never ignored silently: the
Tenant's SettingsApplied condition names it and says why (here the process deployer's pod
settings), and turns True once the Config stops asking."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.api import config as api_config
from kubelb.infra import process
from kubelb.kube import resources
from kubelb.manager import tenants
from tests.integration.tenants.conftest import Harness, until

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant_settings(management_namespace: str) -> tenants.TenantControllerOptions:
    return tenants.TenantControllerOptions(
        namespace=management_namespace, drain_interval=0.5, pending_interval=0.5,
        not_applicable=process.not_applicable,
    )  # fmt: skip


def settings_applied(tenant: dict[str, Any] | None) -> dict[str, Any] | None:
    for condition in ((tenant or {}).get("status") or {}).get("conditions") or ():
        if condition.get("type") == "SettingsApplied":
            return dict(condition)
    return None


async def test_pod_settings_on_processes_are_reported_on_the_tenant(
    harness: Harness, management_namespace: str
):
    kube = harness.kube
    envoy = {"useDaemonset": True, "podMonitor": {"enabled": True}}
    await kube.create(resources.CONFIGS, {"metadata": {"name": api_config.CONFIG_NAME},
                                          "spec": {"envoyProxy": envoy}},
                      namespace=management_namespace)  # fmt: skip
    try:
        name = await harness.create_tenant()

        async def not_applicable() -> dict[str, Any] | None:
            condition = settings_applied(await harness.tenant(name))
            return condition if condition and condition["status"] == "False" else None

        condition = await until(not_applicable, what="SettingsApplied False")
        assert condition["reason"] == "NotApplicable"
        assert "envoyProxy.useDaemonset does not apply" in condition["message"]
        assert "envoyProxy.podMonitor.enabled does not apply" in condition["message"]
        await harness.ready(name)  # the tenant itself is served all the same

        await kube.patch(resources.CONFIGS, api_config.CONFIG_NAME,
                         {"spec": {"envoyProxy": {"useDaemonset": False,
                                                  "podMonitor": {"enabled": False}}}},
                         namespace=management_namespace)  # fmt: skip

        async def honoured() -> dict[str, Any] | None:
            condition = settings_applied(await harness.tenant(name))
            return condition if condition and condition["status"] == "True" else None

        condition = await until(honoured, what="SettingsApplied True")
        assert condition["reason"] == "Honoured"
    finally:
        await kube.delete(resources.CONFIGS, api_config.CONFIG_NAME, namespace=management_namespace)
