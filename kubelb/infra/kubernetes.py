"""Envoys as Deployments or DaemonSets on the management cluster (`--envoy-deployer=kubernetes`,
the default).

A tenant's Envoy is Deployment `envoy-<tenant-ns>`, or DaemonSet with Config
`envoyProxy.useDaemonset` (rendered by `kubelb.envoy.kubernetes`), written only when the live one
differs on the fields we set and deleted when the tenant has nothing to serve; switching the setting
deletes the other kind once the new one is written. With `envoyProxy.podMonitor.enabled` a
PodMonitor scrapes its pods (`kubelb.infra.podmonitors`). Its pods bind every interface, each
LoadBalancer port on the listener port the LoadBalancer controller allocated; the management Service
selects those pods and has NodePorts, and its external address comes from whatever serves Services
of type LoadBalancer (MetalLB, a cloud). A tenant's Envoy is ready when its workload reports a ready
pod; a change of that count reconciles the tenant's LoadBalancers, and any change of a workload of
ours reconciles its tenant's Envoy. The Envoy proxy metrics
(`kubelb_envoy_control_plane_envoy_proxies`, `..._envoy_proxy_create_total`, `..._delete_total`)
count workloads here as the supervisor counts processes.

With `certs` (--xds-tls, the default) the tenant's Envoy takes its configuration over mTLS: its
certificate Secret (`xdscerts.SecretCerts`) is written before the Deployment that mounts it,
rotated by a runner while this replica leads, re-created when deleted (a change of it reconciles
its tenant's Envoy) and deleted with the Deployment.

Endpoints: tenants may never name Envoy's fixed admin and probe ports (admin 9001 on the pod's
loopback, or every interface with --debug; metrics, shutdown, readiness and health on every
interface), on any address, since any Envoy pod's IP is reachable from any other; by default
they may not name loopback, link-local, unspecified addresses or the management cluster's
Service and Pod CIDRs (`service_cidrs`, `pod_cidrs`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from kubelb.api import config as api_config, loadbalancer as api_lb, ports as api_ports
from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.infra import podmonitors, routeentry, xdscerts
from kubelb.irbuild import endpointpolicy, loadbalancers as irbuild
from kubelb.kube import informer, objects, resources, watches, writer as kwriter
from kubelb.manager import (
    common,
    effective as tenant_effective,
    endpoints,
    infrastructure,
    lbservice,
)
from kubelb.observe import metrics
from kubelb.placement import pool

logger = logging.getLogger(__name__)


def placement(
    lb: api_lb.LoadBalancer, allocated: Mapping[api_ports.PortKey, int] | None = None
) -> irbuild.Placement | None:
    """All interfaces, on the allocated ports (None: those recorded in the LoadBalancer's
    status); None until every LoadBalancer port has one."""
    ports = lbservice.recorded_ports(lb) if allocated is None else allocated
    keys = {api_ports.port_key(p) for p in lb.spec.ports}
    if not keys or not keys <= ports.keys():
        return None
    return irbuild.Placement("0.0.0.0", {k: ports[k] for k in keys})


class KubernetesInfra:
    service_shape = infrastructure.ServiceShape(node_ports=True, selector=True)
    requeue = infrastructure.Requeue()

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        informers: informer.Informers,
        options: envoy_k8s.Options,
        *,
        xds_port: int | None = None,
        certs: xdscerts.SecretCerts | None = None,
        service_cidrs: Sequence[str] = (),
        pod_cidrs: Sequence[str] = (),
    ) -> None:
        """`xds_port`: the port Envoy pods reach the xDS server on (None: the one it binds).
        `certs`: xDS over mTLS with these certificates (None: plaintext).
        `service_cidrs`, `pod_cidrs`: the management cluster's, denied to tenant endpoints."""
        self.writer = writer
        self.certs = certs
        self.endpoint_base = endpoint_base(service_cidrs, pod_cidrs)
        options = dataclasses.replace(options, xds_tls=certs is not None)
        self.options = options
        self.xds_port = xds_port
        self.pod_monitors = podmonitors.PodMonitors(writer)
        self.stores = {
            kind: informers.get(resource, label_selector=envoy_k8s.SELECTOR)
            for kind, resource in WORKLOADS.items()
        }  # fmt: skip
        ours = [watches.Watch(resource=resource, label_selector=envoy_k8s.SELECTOR,
                              mapper=tenant_of_deployment)
                for resource in WORKLOADS.values()]  # fmt: skip
        self.proxy_watches: Sequence[watches.Watch] = tuple(ours)
        if certs is not None:
            cert_secrets = watches.Watch(resource=resources.SECRETS,
                                         label_selector=xdscerts.SECRET_SELECTOR,
                                         mapper=tenant_of_deployment)  # fmt: skip
            self.proxy_watches = (*ours, cert_secrets)
        self.lb_watches: Sequence[watches.Watch] = tuple(
            dataclasses.replace(watch, mapper=inputs.lbs_of_namespace,
                                predicate=watches.fields_changed(READY_FIELDS[kind]))
            for kind, watch in zip(WORKLOADS, ours, strict=True)
        )  # fmt: skip

    def placement(
        self,
        lb: api_lb.LoadBalancer,
        service: Mapping[str, Any] | None,
        allocated: Mapping[api_ports.PortKey, int] | None = None,
    ) -> irbuild.Placement | None:
        return placement(lb, allocated)

    def route_listen_ports(
        self, namespace: str, requested: Collection[int], service: Mapping[str, Any] | None
    ) -> Mapping[int, int]:
        return routeentry.allocated_ports(requested, service)

    def route_entry(
        self, namespace: str, service: Mapping[str, Any] | None
    ) -> infrastructure.RouteEntry | None:
        return routeentry.cluster_entry(service)

    def address_problem(self, namespace: str, service: str) -> tuple[str, str] | None:
        return None  # the address comes from outside: nothing to say about it here

    def not_ready_message(self, namespace: str) -> str | None:
        return None  # the Deployment's status says it

    def not_applicable(self, envoy: api_config.EnvoyProxy) -> Sequence[str]:
        return ()  # pods honour them all

    def ready(self, namespace: str) -> bool:
        """At least one Envoy pod of the tenant is ready (Deployment or DaemonSet)."""
        key = objects.ObjectKey(namespace, envoy_k8s.workload_name(namespace))
        return any(ready_pods(informer_.store.get(key)) > 0 for informer_ in self.stores.values())

    async def ensure(self, namespace: str, tenant: tenant_effective.Effective) -> None:
        if self.certs is not None:
            await self.certs.ensure(namespace)  # before the pods that mount it
        desired = envoy_k8s.desired_workload(namespace, self.options, tenant.envoy,
                                             tenant.envoy_replicas,
                                             tenant.envoy_resources)  # fmt: skip
        key, kind = objects.key_of(desired), desired["kind"]
        current = self.stores[kind].store.get(key)
        written = await self.writer.ensure(WORKLOADS[kind], desired, current=current)
        if written.changed:
            logger.info("tenant %s: %s %s applied", namespace, kind, key.name)
        if current is None and written.changed:
            metrics.ENVOY_PROXY_CREATES.labels(namespace=namespace).inc()
        metrics.ENVOY_PROXIES.labels(namespace=namespace, topology=api_config.TOPOLOGY).set(1)
        # useDaemonset switched: the other kind goes once this one is written.
        await self._delete_workloads(namespace, keep=kind)
        await self.pod_monitors.ensure(namespace, tenant.envoy.pod_monitor.enabled)

    async def remove(self, namespace: str) -> None:
        if await self._delete_workloads(namespace, keep=None):
            metrics.ENVOY_PROXY_DELETES.labels(namespace=namespace).inc()
        with contextlib.suppress(KeyError):
            metrics.ENVOY_PROXIES.remove(namespace, api_config.TOPOLOGY)
        await self.pod_monitors.remove(namespace)
        if self.certs is not None:
            await self.certs.remove(namespace)

    async def _delete_workloads(self, namespace: str, *, keep: str | None) -> bool:
        key = objects.ObjectKey(namespace, envoy_k8s.workload_name(namespace))
        deleted = False
        for kind, informer_ in self.stores.items():
            if kind == keep or key not in informer_.store:
                continue
            if await self.writer.delete(WORKLOADS[kind], key):
                logger.info("tenant %s: %s %s deleted", namespace, kind, key.name)
                deleted = True
        return deleted

    def runners(self) -> Sequence[infrastructure.Runner]:
        return () if self.certs is None else (xdscerts.Rotation(self.certs),)

    def bind_xds(self, host: str, port: int) -> None:
        """Envoy pods reach the server at the configured host, on `xds_port` or `port`."""
        self.options = dataclasses.replace(self.options, xds_port=self.xds_port or port)

    def reserve(self, reservations: Iterable[pool.Reservation]) -> None:
        """Envoy runs in pods, apart from the manager's sockets: nothing to keep free."""

    async def close(self) -> None:
        """The Deployments outlive this replica: the next leader keeps them."""


# A tenant's Envoy workload by kind (Config envoyProxy.useDaemonset picks one), and the status
# field that counts its ready pods.
WORKLOADS = {
    envoy_k8s.DEPLOYMENT: resources.DEPLOYMENTS,
    envoy_k8s.DAEMON_SET: resources.DAEMON_SETS,
}
READY_FIELDS = {
    envoy_k8s.DEPLOYMENT: "status.readyReplicas",
    envoy_k8s.DAEMON_SET: "status.numberReady",
}


def ready_pods(workload: Mapping[str, Any] | None) -> int:
    """The ready pods a Deployment or DaemonSet of ours reports (0 for none or another kind)."""
    field = READY_FIELDS.get(str((workload or {}).get("kind")))
    return int(objects.lookup(workload, field) or 0) if workload and field else 0


ENVOY_PORTS = (
    envoy_k8s.ADMIN_PORT,
    envoy_k8s.METRICS_PORT,
    envoy_k8s.SHUTDOWN_PORT,
    envoy_k8s.READINESS_PORT,
    envoy_k8s.HEALTH_PORT,
)


def endpoint_base(service_cidrs: Sequence[str], pod_cidrs: Sequence[str]) -> endpoints.Base:
    """Envoy pods' own ports on every address; loopback, link-local, unspecified and the
    cluster's Service and Pod CIDRs denied."""
    denied = (
        *endpointpolicy.LOOPBACK,
        *endpointpolicy.LINK_LOCAL,
        *endpointpolicy.UNSPECIFIED,
        *endpointpolicy.parse_networks(service_cidrs),
        *endpointpolicy.parse_networks(pod_cidrs),
    )
    hub = tuple(endpointpolicy.HubSocket(endpointpolicy.ANY, p) for p in ENVOY_PORTS)
    return endpoints.Base(hub=hub, denied=denied)


def tenant_of_deployment(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
    """Mapper: a Deployment (or certificate Secret) of ours -> its tenant namespace key."""
    return [common.tenant_key(objects.namespace(obj))]
