"""The Envoy Deployment as the Kubernetes deployer renders it (pure)."""

from __future__ import annotations

import json

from kubelb.api import config as api_config
from kubelb.envoy import kubernetes

OPTIONS = kubernetes.Options(xds_host="envoycp.kubelb.svc", xds_port=8001)


def render(proxy=None, replicas=3, resources=None):
    proxy = api_config.EnvoyProxy.model_validate(proxy or {})
    return kubernetes.desired_workload("tenant-a", OPTIONS, proxy, replicas, resources)


def containers(deployment):
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_defaults_match_upstream():
    d = render(resources={"limits": {"cpu": "1"}})
    assert d["metadata"]["name"] == "envoy-tenant-a"
    assert d["spec"]["replicas"] == 3
    template = d["spec"]["template"]
    assert template["metadata"]["labels"] == {"app.kubernetes.io/name": "tenant-a"}
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "19001"
    assert template["spec"]["terminationGracePeriodSeconds"] == 300
    envoy = containers(d)["envoy-proxy"]
    assert envoy["resources"] == {"limits": {"cpu": "1"}}
    assert envoy["startupProbe"]["failureThreshold"] == 30
    shutdown = containers(d)["shutdown-manager"]
    assert "--ready-timeout=70s" in shutdown["args"]  # drainTimeout 60s + 10s


def test_bootstrap_is_inline_json_for_the_tenant():
    args = containers(render())["envoy-proxy"]["args"]
    boot = json.loads(args[args.index("--config-yaml") + 1])
    assert boot["node"] == {"id": "tenant-a", "cluster": "tenant-a"}
    ports = {
        li["name"]: li["address"]["socket_address"]["port_value"]
        for li in boot["static_resources"]["listeners"]
    }
    assert ports == {
        "probe_listener": 19003,
        "health_check_listener": 19004,
        "stats_listener": 19001,
    }
    assert boot["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9001,
    }
    assert "overload_manager" not in boot


def test_graceful_shutdown_disabled_drops_the_sidecar():
    d = render({"gracefulShutdown": {"disabled": True}})
    assert list(containers(d)) == ["envoy-proxy"]
    assert "lifecycle" not in containers(d)["envoy-proxy"]
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_scheduling_options_and_pod_monitor():
    d = render(
        {
            "singlePodPerNode": True,
            "nodeSelector": {"role": "lb"},
            "tolerations": [{"key": "lb", "operator": "Exists"}],
            "podMonitor": {"enabled": True},
            "overloadManager": {"enabled": True, "maxActiveDownstreamConnections": 5000},
        }
    )
    pod = d["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"role": "lb"}
    assert pod["tolerations"] == [{"key": "lb", "operator": "Exists"}]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert d["spec"]["template"]["metadata"]["annotations"] == {}
    args = containers(d)["envoy-proxy"]["args"]
    boot = json.loads(args[args.index("--config-yaml") + 1])
    monitor = boot["overload_manager"]["resource_monitors"][0]["typed_config"]
    assert monitor["max_active_downstream_connections"] == 5000


def test_rendering_is_deterministic():
    assert render() == render()


def test_xds_tls_mounts_the_certificate_secret():
    proxy = api_config.EnvoyProxy.model_validate({})
    options = kubernetes.Options(xds_host="envoycp.kubelb.svc", xds_tls=True)
    d = kubernetes.desired_workload("tenant-a", options, proxy, 1, None)
    pod = d["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "xds-tls", "secret": {"secretName": "envoy-tenant-a-xds-cert"}}
    ]
    envoy = containers(d)["envoy-proxy"]
    assert envoy["volumeMounts"] == [
        {"name": "xds-tls", "mountPath": "/etc/kubelb/xds-tls", "readOnly": True}
    ]
    boot = json.loads(envoy["args"][envoy["args"].index("--config-yaml") + 1])
    (xds,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == "xds_cluster"]
    tls = xds["transport_socket"]["typed_config"]
    assert tls["sni"] == "envoycp.kubelb.svc"
    validation = tls["common_tls_context"]["combined_validation_context"]
    sds = validation["validation_context_sds_secret_config"]["sds_config"]["path_config_source"]
    assert sds["path"] == "/etc/kubelb/xds-tls/ca-sds.json"
    plain = render()
    assert "volumes" not in plain["spec"]["template"]["spec"]
    assert "transport_socket" not in containers(plain)["envoy-proxy"]["args"][1]


def test_heap_limit_adds_the_fixed_heap_monitor_and_its_actions():
    overload = {"enabled": True, "maxHeapSizeBytes": 1 << 30}
    args = containers(render({"overloadManager": overload}))["envoy-proxy"]["args"]
    boot = json.loads(args[args.index("--config-yaml") + 1])
    manager = boot["overload_manager"]
    (monitor,) = manager["resource_monitors"]
    assert monitor["name"] == "envoy.resource_monitors.fixed_heap"
    assert monitor["typed_config"]["max_heap_size_bytes"] == 1 << 30
    actions = {a["name"]: a["triggers"][0]["threshold"]["value"] for a in manager["actions"]}
    assert actions == {
        "envoy.overload_actions.shrink_heap": 0.95,
        "envoy.overload_actions.stop_accepting_requests": 0.98,
    }


def test_heap_limit_of_a_disabled_overload_manager_is_not_applied():
    overload = {"enabled": False, "maxHeapSizeBytes": 1 << 30}
    args = containers(render({"overloadManager": overload}))["envoy-proxy"]["args"]
    assert "overload_manager" not in json.loads(args[args.index("--config-yaml") + 1])


def test_daemonset_has_the_same_pods_and_no_replicas():
    deployment = render(replicas=5)
    daemon_set = render({"useDaemonset": True}, replicas=5)
    assert (deployment["kind"], daemon_set["kind"]) == ("Deployment", "DaemonSet")
    assert "replicas" not in daemon_set["spec"]
    assert daemon_set["metadata"] == deployment["metadata"]
    assert daemon_set["spec"]["template"] == deployment["spec"]["template"]
    assert daemon_set["spec"]["selector"] == deployment["spec"]["selector"]


def test_pod_monitor_selects_the_envoy_pods_metrics_port():
    monitor = kubernetes.desired_pod_monitor("tenant-a")
    pods = render()["spec"]["template"]
    assert monitor["metadata"]["name"] == "envoy-tenant-a"
    assert monitor["spec"]["selector"]["matchLabels"] == pods["metadata"]["labels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in containers(render())["envoy-proxy"]["ports"]}
    assert (ports[endpoint["port"]], endpoint["path"]) == (19001, "/stats/prometheus")
