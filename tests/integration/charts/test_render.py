"""`helm lint` and `helm template` of both charts over their defaults and a matrix of options:
upstream's values keys give upstream's flags, kubelb's extra keys give kubelb's, and each
toggle adds or removes exactly its objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.charts import helm
from tests.integration.startup.test_upstream_chart_flags import CCM_CHART_ARGS, MANAGER_CHART_ARGS

pytestmark = pytest.mark.integration

TENANT = {"kubelb": {"tenantName": "shop"}}
# An upstream kubelb-ccm values file with every option away from its default.
UPSTREAM_CCM_VALUES: dict[str, Any] = {"kubelb": {
    "tenantName": "shop", "clusterSecretName": "kubelb-cluster", "nodeAddressType": "InternalIP",
    "useLoadBalancerClass": True, "enableGatewayAPI": True, "enableSecretSynchronizer": True,
    "installGatewayAPICRDs": False, "gatewayAPICRDsChannel": "standard", "logLevel": "debug",
    "enableLeaderElection": True, "useIngressClass": False, "useGatewayClass": False,
    "disableIngressController": True, "disableGatewayController": True,
    "disableHTTPRouteController": True, "disableGRPCRouteController": True,
    "ingressConversion": {
        "enabled": True, "standaloneMode": False, "gatewayName": "kubelb",
        "gatewayNamespace": "kubelb", "gatewayClass": "kubelb", "ingressClass": "nginx",
        "domainReplace": "example.com", "domainSuffix": "example.org",
        "gatewayAnnotations": "a=b,c=d", "propagateExternalDnsAnnotations": True,
        "disableEnvoyGatewayFeatures": False, "copyTLSSecrets": True}},
    "metrics": {"port": 9445}, "serviceMonitor": {"enabled": False},
    "rbac": {"enabled": True}, "extraVolumes": [], "extraVolumeMounts": [], "priorityClassName": "",
}  # fmt: skip
UPSTREAM_MANAGER_VALUES: dict[str, Any] = {
    "replicaCount": 1, "image": {"repository": "kubelb", "tag": "latest"},
    "kubelb": {"enableLeaderElection": True, "debug": True, "logLevel": "info",
               "enableGatewayAPI": True, "skipConfigGeneration": True,
               "envoyProxy": {"topology": "shared", "replicas": 2, "singlePodPerNode": True,
                              "useDaemonset": False, "podMonitor": {"enabled": False}},
               "propagatedAnnotations": {}, "propagateAllAnnotations": False},
    "kkpintegration": {"rbac": False}, "serviceMonitor": {"enabled": False},
    "metrics": {"port": 9443}, "grafana": {"dashboards": {"enabled": False}},
}  # fmt: skip

# name -> (chart, values): the matrix every chart must lint and render cleanly with.
MATRIX: dict[str, tuple[Path, dict[str, Any]]] = {
    "manager-defaults": (helm.MANAGER, {}),
    "manager-upstream-values": (helm.MANAGER, UPSTREAM_MANAGER_VALUES),
    "manager-monitors": (helm.MANAGER, {"serviceMonitor": {"enabled": True},
                                        "podMonitor": {"enabled": True}}),
    "manager-no-leader-election": (helm.MANAGER, {"kubelb": {"enableLeaderElection": False}}),
    "manager-extra-args": (helm.MANAGER, {"extraArgs": ["--workers=4"],
                                          "kubelb": {"extraArgs": ["--envoy-drain-seconds=2"]}}),
    "manager-kubelb-extras": (helm.MANAGER, {"kubelb": {
        "envoyDeployer": "process", "addressPool": ["127.0.0.16/28", "127.0.0.40"],
        "xdsDelta": True, "xdsTLS": False, "tenantToken": "long-lived",
        "tenantAPIServer": "https://10.0.0.1:6443", "serviceCIDRs": ["10.96.0.0/12"],
        "podCIDRs": ["10.244.0.0/16"]}}),
    "manager-everything": (helm.MANAGER, {
        "kubelb": {"skipConfigGeneration": False}, "kkpintegration": {"rbac": True},
        "autoscaling": {"enabled": True}, "grafana": {"dashboards": {"enabled": True}},
        "service": {"port": 18001}}),
    "ccm-defaults": (helm.CCM, TENANT),
    "ccm-upstream-values": (helm.CCM, UPSTREAM_CCM_VALUES),
    "ccm-monitors": (helm.CCM, {**TENANT, "serviceMonitor": {"enabled": True},
                                "podMonitor": {"enabled": True}}),
    "ccm-no-leader-election": (helm.CCM, {"kubelb": {"tenantName": "shop",
                                                     "enableLeaderElection": False}}),
    "ccm-extra-args": (helm.CCM, {**TENANT, "extraArgs": ["--kubelb-token-renew-remaining=0.5"]}),
    "ccm-kubelb-extras": (helm.CCM, {"kubelb": {
        "tenantName": "shop", "persistRenewedToken": False, "installGatewayAPICRDs": True,
        "nodeAddressLabelSelector": "role=edge", "tokenExpirationSeconds": 3600}}),
}  # fmt: skip


@pytest.mark.parametrize("case", MATRIX)
def test_lint_and_template(case: str, tmp_path: Path) -> None:
    chart, values = MATRIX[case]
    linted = helm.lint(chart, values, tmp_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    docs = helm.render(chart, values, tmp_path, include_crds=True)
    args = helm.container_args(docs)
    assert args[0] == ("--mode=manager" if chart == helm.MANAGER else "--mode=agent")
    assert len(args) == len(set(args)), f"a flag rendered twice: {args}"
    assert all(a.startswith("--") and "=" in a for a in args), args
    for doc in docs:
        assert doc["metadata"]["name"], doc


def args_of(chart: Path, values: dict[str, Any], tmp: Path) -> list[str]:
    return helm.container_args(helm.render(chart, values, tmp))


def test_upstream_values_render_upstreams_flags(tmp_path: Path) -> None:
    """The flags upstream's charts render (the startup test runs exactly these) come out of an
    upstream values file unchanged."""
    manager = args_of(helm.MANAGER, UPSTREAM_MANAGER_VALUES, tmp_path)
    assert set(MANAGER_CHART_ARGS) <= set(manager), set(MANAGER_CHART_ARGS) - set(manager)
    ccm = args_of(helm.CCM, UPSTREAM_CCM_VALUES, tmp_path)
    assert set(CCM_CHART_ARGS) <= set(ccm), set(CCM_CHART_ARGS) - set(ccm)
    assert "--cluster-name=shop" in ccm


def test_defaults_render_only_upstreams_flags(tmp_path: Path) -> None:
    manager = args_of(helm.MANAGER, {}, tmp_path)
    assert manager == ["--mode=manager", "--enable-leader-election=true",
                       "--enable-gateway-api=false", "--enable-tenant-migration=true",
                       "--debug=true", "--zap-log-level=info", "--metrics-addr=:9443",
                       "--health-probe-bind-address=:8081"]  # fmt: skip
    ccm = args_of(helm.CCM, TENANT, tmp_path)
    assert "--kubelb-kubeconfig-secret=kubelb/kubelb-cluster" in ccm
    assert not [a for a in ccm if a.startswith("--conversion-")]


def test_options_become_flags(tmp_path: Path) -> None:
    def manager(values: dict[str, Any]) -> list[str]:
        return args_of(helm.MANAGER, values, tmp_path)

    assert "--enable-leader-election=false" in manager(MATRIX["manager-no-leader-election"][1])
    assert manager(MATRIX["manager-extra-args"][1])[-2:] == ["--envoy-drain-seconds=2",
                                                              "--workers=4"]  # fmt: skip
    extras = manager(MATRIX["manager-kubelb-extras"][1])
    assert {"--envoy-deployer=process", "--address-pool=127.0.0.16/28,127.0.0.40",
            "--xds-delta=true", "--xds-tls=false", "--tenant-token=long-lived",
            "--tenant-api-server=https://10.0.0.1:6443", "--service-cidr=10.96.0.0/12",
            "--pod-cidr=10.244.0.0/16"} <= set(extras)  # fmt: skip
    assert "--envoy-xds-port=18001" in manager(MATRIX["manager-everything"][1])
    ccm = args_of(helm.CCM, MATRIX["ccm-kubelb-extras"][1], tmp_path)
    assert {"--install-gateway-api-crds=true", "--node-address-label-selector=role=edge",
            "--kubelb-token-expiration=3600"} <= set(ccm)  # fmt: skip
    assert not [a for a in ccm if a.startswith("--kubelb-kubeconfig-secret")]
    assert "--enable-leader-election=false" in args_of(
        helm.CCM, MATRIX["ccm-no-leader-election"][1], tmp_path
    )


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


@pytest.mark.parametrize("chart", [helm.MANAGER, helm.CCM], ids=lambda c: c.name)
def test_monitor_toggles(chart: Path, tmp_path: Path) -> None:
    base = {} if chart == helm.MANAGER else TENANT
    off = helm.render(chart, base, tmp_path)
    assert not {"ServiceMonitor", "PodMonitor"} & set(kinds(off))
    pod = helm.only(off, "Deployment")["spec"]["template"]["metadata"]
    assert pod["annotations"]["prometheus.io/scrape"] == "true"
    on = helm.render(chart, {**base, "serviceMonitor": {"enabled": True}}, tmp_path)
    monitor = helm.only(on, "ServiceMonitor")
    metrics_service = next(d for d in on if d["kind"] == "Service"
                           and d["metadata"]["name"].endswith("-metrics"))  # fmt: skip
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= metrics_service["metadata"]["labels"].items()
    others = [d for d in on if d["kind"] == "Service" and d is not metrics_service]
    assert not [d for d in others if selector.items() <= d["metadata"]["labels"].items()]
    assert "annotations" not in helm.only(on, "Deployment")["spec"]["template"]["metadata"]
    pods = helm.render(chart, {**base, "podMonitor": {"enabled": True}}, tmp_path)
    assert helm.only(pods, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_ccm_requires_the_tenant_name(tmp_path: Path) -> None:
    done = helm.run("template", "x", helm.CCM)
    assert done.returncode != 0
    assert "kubelb.tenantName is required" in done.stderr


@pytest.mark.parametrize("chart", [helm.MANAGER, helm.CCM], ids=lambda c: c.name)
def test_dashboards_ship_behind_their_toggle(chart: Path, tmp_path: Path) -> None:
    base = {} if chart == helm.MANAGER else TENANT
    assert "ConfigMap" not in kinds(helm.render(chart, base, tmp_path))
    docs = helm.render(chart, {**base, "grafana": {"dashboards": {"enabled": True}}}, tmp_path)
    shipped = {}
    for doc in (d for d in docs if d["kind"] == "ConfigMap"):
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped.update({name: json.loads(text) for name, text in doc["data"].items()})
    files = sorted((chart / "dashboards").glob("*.json"))
    assert len(files) == (3 if chart == helm.MANAGER else 1)
    assert shipped == {f.name: json.loads(f.read_text()) for f in files}


def test_secret_sync_rbac_follows_its_toggle(tmp_path: Path) -> None:
    def cluster_roles(values: dict[str, Any]) -> set[str]:
        docs = helm.render(helm.CCM, values, tmp_path, release="kubelb-ccm")
        return {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}

    assert "kubelb-ccm-secret-sync" not in cluster_roles(TENANT)
    values = {"kubelb": {"tenantName": "shop", "enableSecretSynchronizer": True}}
    assert "kubelb-ccm-secret-sync" in cluster_roles(values)
