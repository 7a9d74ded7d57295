"""The charts on real API servers: every rendered document (CRDs included) is accepted by
server-side apply, and the manager and the agent run with exactly the args the chart renders,
as the chart's own ServiceAccounts with the chart's RBAC, and become ready.

Besides the rendered args each process gets only what a pod's environment would give it:
kubeconfigs (in a pod: in-cluster config and the mounted Secret), loopback xDS, probe and
metrics ports (so parallel runs do not collide), and the server URL for tenant kubeconfigs."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

import pytest

from kubelb.app import agent as agent_app, manager as manager_app
from kubelb.kube import client, errors, resources
from kubelb.manager import kubeconfigs, tenantobjects
from tests.integration.agent.helpers import find, wait_for
from tests.integration.charts import apply, dashboards, helm
from tests.integration.startup.test_upstream_chart_flags import Running, free_port, holder
from tests.support import cluster

pytestmark = pytest.mark.integration

MONITOR_CRDS = ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com")
# name -> (manager values, ccm values) applied together.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults": ({}, {}),
    "everything": (
        {"kubelb": {"skipConfigGeneration": False, "enableGatewayAPI": True,
                    "envoyProxy": {"useDaemonset": True, "nodeSelector": {"edge": "true"},
                                   "podMonitor": {"enabled": True}},
                    "propagatedAnnotations": {"a": "b"}},
         "kkpintegration": {"rbac": True}, "autoscaling": {"enabled": True},
         "grafana": {"dashboards": {"enabled": True}}},
        {"kubelb": {"enableSecretSynchronizer": True, "installGatewayAPICRDs": True,
                    "ingressConversion": {"enabled": True}},
         "extraVolumes": [{"name": "extra", "emptyDir": {}}],
         "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}]},
    ),
    "monitors": (
        {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
async def test_rendered_manifests_apply(
    case: str,
    management: cluster.Cluster,
    tenant: cluster.Cluster,
    management_namespace: str,
    tenant_namespace: str,
    management_api: Any,
    tenant_api: Any,
    tmp_path: Path,
) -> None:
    mgmt = client.Client(management_api, field_manager="kubelb-chart-test")
    tkube = client.Client(tenant_api, field_manager="kubelb-chart-test")
    manager_values, ccm_values = CASES[case]
    # The monitor kinds exist only where the prometheus-operator CRDs are installed: a chart
    # whose cluster lacks them renders without monitors, and the case skips after the rest.
    missing = {}
    if case == "monitors":
        for where, kube in (("management", mgmt), ("tenant", tkube)):
            if names := await apply.missing_crds(kube, *MONITOR_CRDS):
                missing[where] = names
        if len(missing) == 2:
            pytest.skip(f"the prometheus-operator CRDs are not installed: {missing}")
        manager_values = {} if "management" in missing else manager_values
        ccm_values = {} if "tenant" in missing else ccm_values
    release = f"t{secrets.token_hex(3)}"
    ccm_values = {**ccm_values, "kubelb": {**ccm_values.get("kubelb", {}), "tenantName": release}}
    manager_docs = helm.render(helm.MANAGER, manager_values, tmp_path, release=release,
                               namespace=management_namespace, include_crds=True)  # fmt: skip
    ccm_docs = helm.render(helm.CCM, ccm_values, tmp_path, release=release,
                           namespace=tenant_namespace, include_crds=True)  # fmt: skip
    try:
        stored = await apply.apply_all(mgmt, manager_docs)
        stored += await apply.apply_all(tkube, ccm_docs)
    finally:
        await apply.remove_cluster_scoped(mgmt, manager_docs)
        await apply.remove_cluster_scoped(tkube, ccm_docs)
    assert len(stored) == len(manager_docs) + len(ccm_docs)
    kinds = {d["kind"] for d in stored}
    if case == "monitors":
        for where, docs in (("management", manager_docs), ("tenant", ccm_docs)):
            monitors = {d["kind"] for d in docs} & {"ServiceMonitor", "PodMonitor"}
            assert monitors == (set() if where in missing else {"ServiceMonitor", "PodMonitor"})
        if missing:
            pytest.skip(f"applied without monitors where the CRDs are missing: {missing}")
    if case == "everything":
        assert {"Config", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds


async def test_manager_and_agent_run_with_the_rendered_args(
    management: cluster.Cluster,
    tenant: cluster.Cluster,
    management_namespace: str,
    tenant_namespace: str,
    management_api: Any,
    tenant_api: Any,
    tmp_path: Path,
) -> None:
    """Also scrapes both: every metric the dashboards query is exported (registered with HELP and
    TYPE from the start, before any event gives it samples)."""
    mgmt = client.Client(management_api, field_manager="kubelb-chart-test")
    tkube = client.Client(tenant_api, field_manager="kubelb-chart-test")
    release = f"r{secrets.token_hex(3)}"
    manager_docs = helm.render(helm.MANAGER, {}, tmp_path, release=release,
                               namespace=management_namespace)  # fmt: skip
    ccm_docs = helm.render(helm.CCM, {"kubelb": {"tenantName": release}}, tmp_path,
                           release=release, namespace=tenant_namespace)  # fmt: skip
    manager: Running | None = None
    agent: Running | None = None
    try:
        await apply.apply_all(mgmt, manager_docs)
        await apply.apply_all(tkube, ccm_docs)
        identity = await management.service_account_kubeconfig(
            management_namespace, account(manager_docs), tmp_path / "manager", create=False
        )
        manager = Running(
            "manager",
            [*helm.container_args(manager_docs), f"--kubeconfig={identity}",
             f"--listen-address=127.0.0.1:{free_port()}",
             f"--tenant-api-server={management.server}"],
            management_namespace,
            tmp_path / "manager.log",
        )  # fmt: skip
        await manager.start()

        async def leads() -> str | None:
            return await holder(mgmt, management_namespace, manager_app.LEASE_NAME)

        await wait_for(leads, what="the manager's Lease, taken with the chart's Role")
        await mgmt.create(resources.TENANTS, {"metadata": {"name": release}, "spec": {}})

        async def issued() -> str | None:
            secret = await find(mgmt, resources.SECRETS, f"tenant-{release}",
                                kubeconfigs.SECRET_NAME)  # fmt: skip
            return tenantobjects.secret_value(secret, kubeconfigs.SECRET_KEY) if secret else None

        text = await wait_for(issued, what="the tenant's kubeconfig") or ""
        # As the install docs say: the issued kubeconfig as Secret kubelb-cluster, key kubelb.
        mounted = tmp_path / "kubelb"
        mounted.write_text(text)
        await tkube.create(resources.SECRETS,
                           {"metadata": {"name": "kubelb-cluster"}, "stringData": {"kubelb": text}},
                           namespace=tenant_namespace)  # fmt: skip
        agent_identity = await tenant.service_account_kubeconfig(
            tenant_namespace, account(ccm_docs), tmp_path / "agent", create=False
        )
        agent = Running(
            "agent",
            [*helm.container_args(ccm_docs), f"--kubeconfig={agent_identity}",
             f"--kubelb-kubeconfig={mounted}"],
            tenant_namespace,
            tmp_path / "agent.log",
        )  # fmt: skip
        await agent.start()

        async def agent_leads() -> str | None:
            return await holder(tkube, tenant_namespace, agent_app.LEADER_ELECTION_ID)

        await wait_for(agent_leads, what="the agent's Lease, taken with the chart's Role")
        exported = {
            "manager": await dashboards.scrape(metrics_port(manager)),
            "agent": await dashboards.scrape(metrics_port(agent)),
        }
        for path, process in dashboards.SOURCES.items():
            queried = dashboards.queried(path)
            assert queried, f"{path.name} queries no kubelb metric"
            missing = sorted(queried - exported[process])
            assert not missing, f"{path.name}: the {process} does not export {missing}"
        assert await agent.stop() == 0, agent.text()
    finally:
        if agent is not None:
            await agent.stop()
        with contextlib.suppress(errors.NotFoundError):
            await mgmt.delete(resources.TENANTS, release)

        async def tenant_gone() -> bool:
            return await find(mgmt, resources.TENANTS, "", release) is None

        try:
            if manager is not None:
                await wait_for(tenant_gone, what="the Tenant removed by the manager")
        finally:
            code = await manager.stop() if manager is not None else 0
            await apply.remove_cluster_scoped(mgmt, manager_docs)
            await apply.remove_cluster_scoped(tkube, ccm_docs)
    assert code == 0, manager.text()


def account(docs: list[dict[str, Any]]) -> str:
    name: str = helm.only(docs, "ServiceAccount")["metadata"]["name"]
    return name


def metrics_port(process: Running) -> int:
    """The --metrics-addr `Running` appends last (it wins over the chart's :9443/:9445)."""
    flag = next(a for a in reversed(process.argv) if a.startswith("--metrics-addr="))
    return int(flag.rsplit(":", 1)[1])
