"""A tenant's Envoy as Deployment (or, with Config `envoyProxy.useDaemonset`, DaemonSet)
`envoy-<tenant-ns>` on the management cluster: what it looks like.

Pure. Input: the tenant namespace (also Envoy's node id), the manager-wide `Options`, the
Config's `spec.envoyProxy` and the effective replicas and resources (Tenant over Config). Output:
the workload as it should be; `kubelb.infra.kubernetes` writes it and reads it back. A
DaemonSet has no replicas (one pod per eligible node); everything else is the same.

The pods match upstream: labels `app.kubernetes.io/{name=kubelb-envoy-proxy, instance=<ns>,
managed-by=kubelb}` on the Deployment and selector/pod label `app.kubernetes.io/name=<ns>` (the
management Services select it); container `envoy-proxy` with the bootstrap inline
(`--config-yaml`, JSON from `kubelb.envoy.bootstrap.render` plus the stats listener on 19001),
ports metrics 19001, readiness 19003, health 19004; startup probe GET /ready:19003, readiness and
liveness GET /healthz:19004; graceful shutdown through the Envoy Gateway shutdown-manager sidecar
(preStop GET /shutdown/ready:19002) and terminationGracePeriodSeconds from the Config.

With `Options.xds_tls` the pod mounts Secret `envoy-<tenant-ns>-xds-cert` (`xds_cert_secret`,
written and rotated by `kubelb.infra.xdscerts`) read-only at `XDS_TLS_MOUNT`, and the bootstrap
dials the xDS server over mTLS with the certificate there. The kubelet swaps a mounted Secret's
files in place, so a rotated certificate needs no new pod.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelb.api import config as api_config, labels, meta
from kubelb.envoy import bootstrap, deployer
from kubelb.util import naming

DEFAULT_IMAGE = "envoyproxy/envoy:distroless-v1.36.4"
DEFAULT_SHUTDOWN_MANAGER_IMAGE = "docker.io/envoyproxy/gateway:v1.3.0"
CONTAINER = "envoy-proxy"
SHUTDOWN_MANAGER = "shutdown-manager"
ADMIN_PORT = 9001
METRICS_PORT = 19001
SHUTDOWN_PORT = 19002
READINESS_PORT = 19003
HEALTH_PORT = 19004
SELECTOR = f"{labels.APP_NAME}={labels.ENVOY_PROXY_APP_NAME}"
DEPLOYMENT = "Deployment"
DAEMON_SET = "DaemonSet"
XDS_TLS_MOUNT = "/etc/kubelb/xds-tls"
XDS_TLS_VOLUME = "xds-tls"


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Manager-wide deployment options (flags)."""

    xds_host: str  # how Envoy reaches the xDS server (upstream: envoycp.<ns>.svc)
    xds_port: int = 8001
    image: str = DEFAULT_IMAGE
    shutdown_manager_image: str = DEFAULT_SHUTDOWN_MANAGER_IMAGE
    admin_on_all_interfaces: bool = False  # upstream --debug
    xds_delta: bool = False  # incremental xDS (--xds-delta)
    xds_tls: bool = False  # mTLS to the xDS server with the mounted certificate (--xds-tls)


def workload_name(namespace: str) -> str:
    return naming.truncate(f"envoy-{namespace}")


def xds_cert_secret(namespace: str) -> str:
    """The Secret holding the tenant Envoy's xDS client certificate."""
    return naming.truncate(f"envoy-{namespace}-xds-cert")


def bootstrap_config(namespace: str, options: Options, proxy: api_config.EnvoyProxy) -> str:
    """The bootstrap JSON passed inline with `--config-yaml`."""
    spec = deployer.EnvoySpec(
        xds_host=options.xds_host, xds_port=options.xds_port, node_cluster=namespace,
        admin_address="0.0.0.0" if options.admin_on_all_interfaces else "127.0.0.1",
        admin_port=ADMIN_PORT, probe_address="0.0.0.0", readiness_port=READINESS_PORT,
        health_port=HEALTH_PORT, xds_delta=options.xds_delta,
        xds_tls_dir=XDS_TLS_MOUNT if options.xds_tls else None,
        max_downstream_connections=None,
    )  # fmt: skip
    spec = deployer.with_overload(spec, proxy.overload_manager)
    rendered = bootstrap.render(namespace, spec)
    rendered["static_resources"]["listeners"].append(_stats_listener())
    return json.dumps(rendered, sort_keys=True, separators=(",", ":"))


def workload_kind(proxy: api_config.EnvoyProxy) -> str:
    return DAEMON_SET if proxy.use_daemonset else DEPLOYMENT


def desired_workload(
    namespace: str,
    options: Options,
    proxy: api_config.EnvoyProxy,
    replicas: int,
    resources_: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The Deployment or DaemonSet as it should be. Pure."""
    graceful = not proxy.graceful_shutdown.disabled
    pod_labels = {labels.APP_NAME: namespace}
    annotations = {}
    if not proxy.pod_monitor.enabled:
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                       "prometheus.io/path": "/stats/prometheus"}  # fmt: skip
    envoy = _envoy_container(namespace, options, proxy, resources_, graceful)
    containers = [envoy]
    if graceful:
        containers.append(_shutdown_manager(options, proxy))
    pod_spec: dict[str, Any] = {
        "containers": containers,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": proxy.graceful_shutdown.termination_grace_period_seconds
        if graceful else 30,
    }  # fmt: skip
    if options.xds_tls:
        # The kubelet's default file mode: the Envoy image runs as a non-root user.
        pod_spec["volumes"] = [
            {"name": XDS_TLS_VOLUME, "secret": {"secretName": xds_cert_secret(namespace)}}
        ]
        envoy["volumeMounts"] = [
            {"name": XDS_TLS_VOLUME, "mountPath": XDS_TLS_MOUNT, "readOnly": True}
        ]
    if proxy.node_selector:
        pod_spec["nodeSelector"] = dict(proxy.node_selector)
    if proxy.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in proxy.tolerations]
    if proxy.affinity:
        pod_spec["affinity"] = dict(proxy.affinity)
    if proxy.single_pod_per_node:
        pod_spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": pod_labels},
        }]  # fmt: skip
    spec: dict[str, Any] = {
        "selector": {"matchLabels": pod_labels},
        "template": {"metadata": {"labels": pod_labels, "annotations": annotations},
                     "spec": pod_spec},
    }  # fmt: skip
    kind = workload_kind(proxy)
    if kind == DEPLOYMENT:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": workload_name(namespace),
            "namespace": namespace,
            "labels": _workload_labels(namespace),
        },
        "spec": spec,
    }


def desired_pod_monitor(namespace: str) -> dict[str, Any]:
    """The prometheus-operator PodMonitor scraping the tenant's Envoy pods (Config
    `envoyProxy.podMonitor.enabled`; the scrape annotations are left off then). Pure."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": workload_name(namespace),
            "namespace": namespace,
            "labels": _workload_labels(namespace),
        },
        "spec": {
            "selector": {"matchLabels": {labels.APP_NAME: namespace}},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/stats/prometheus"}],
        },
    }


def _workload_labels(namespace: str) -> dict[str, str]:
    return {
        labels.APP_NAME: labels.ENVOY_PROXY_APP_NAME,
        labels.APP_INSTANCE: namespace,
        labels.APP_MANAGED_BY: labels.MANAGED_BY_VALUE,
    }


def _envoy_container(
    namespace: str,
    options: Options,
    proxy: api_config.EnvoyProxy,
    resources_: Mapping[str, Any] | None,
    graceful: bool,
) -> dict[str, Any]:
    drain = round(meta.duration_seconds(proxy.graceful_shutdown.drain_timeout))
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image,
        "args": [
            "--config-yaml",
            bootstrap_config(namespace, options, proxy),
            "--service-node",
            namespace,
            "--service-cluster",
            namespace,
            "--log-level",
            "info",
            "--drain-time-s",
            str(max(1, drain)),
            "--drain-strategy",
            "immediate",
        ],
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "readiness", "containerPort": READINESS_PORT, "protocol": "TCP"},
            {"name": "healthcheck", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe("/ready", READINESS_PORT, timeout=5, period=10, failures=30),
        "readinessProbe": _probe("/healthz", HEALTH_PORT, timeout=1, period=5, failures=2),
        "livenessProbe": _probe("/healthz", HEALTH_PORT, timeout=1, period=10, failures=3),
    }
    if resources_:
        container["resources"] = dict(resources_)
    if graceful:
        container["lifecycle"] = {
            "preStop": {"httpGet": {"path": "/shutdown/ready", "port": SHUTDOWN_PORT}}
        }
    return container


def _shutdown_manager(options: Options, proxy: api_config.EnvoyProxy) -> dict[str, Any]:
    shutdown = proxy.graceful_shutdown
    drain = round(meta.duration_seconds(shutdown.drain_timeout))
    minimum = round(meta.duration_seconds(shutdown.min_drain_duration))
    return {
        "name": SHUTDOWN_MANAGER,
        "image": options.shutdown_manager_image,
        "command": ["envoy-gateway"],
        "args": ["envoy", "shutdown-manager", f"--ready-timeout={drain + 10}s"],
        "ports": [{"name": "shutdown", "containerPort": SHUTDOWN_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        "readinessProbe": _probe("/healthz", SHUTDOWN_PORT, timeout=1, period=10, failures=3),
        "livenessProbe": _probe("/healthz", SHUTDOWN_PORT, timeout=1, period=10, failures=3),
        "lifecycle": {"preStop": {"exec": {"command": [
            "envoy-gateway", "envoy", "shutdown", f"--drain-timeout={drain}s",
            f"--min-drain-duration={minimum}s", "--exit-at-connections=0",
        ]}}},
    }  # fmt: skip


def _probe(path: str, port: int, *, timeout: int, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"},
            "timeoutSeconds": timeout, "periodSeconds": period,
            "successThreshold": 1, "failureThreshold": failures}  # fmt: skip


def _stats_listener() -> dict[str, Any]:
    """Upstream's `stats_listener`: GET /stats/prometheus on 19001, answered by the admin."""
    route = {"match": {"path": "/stats/prometheus", "headers": [
                 {"name": ":method", "string_match": {"exact": "GET"}}]},
             "route": {"cluster": bootstrap.ADMIN_CLUSTER, "timeout": "5s"}}  # fmt: skip
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "stats_listener",
        "route_config": {"name": "stats_listener", "virtual_hosts": [{
            "name": "stats_listener", "domains": ["*"],
            "routes": [route, {"match": {"prefix": "/"}, "direct_response": {"status": 404}}],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }  # fmt: skip
    return {
        "name": "stats_listener",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": METRICS_PORT}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }  # fmt: skip
