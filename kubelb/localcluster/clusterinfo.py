"""What kubeadm and a normal API server publish about a cluster, for the local control plane.

Upstream KubeLB's manager computes the server URL of tenant kubeconfigs from the
`kube-public/cluster-info` ConfigMap (a kubeconfig with the server and CA, which kubeadm writes
and lets anyone read) or else from the `default/kubernetes` EndpointSlice, and refuses to start
without them. The local control plane publishes both:

- cluster-info: `publish_cluster_info` writes it as kubeadm does (with the Role and RoleBinding
  that let `system:unauthenticated` read it), server = the URL clients use.
- the `kubernetes` Service and its EndpointSlice: the API server's own lease endpoint reconciler
  writes them once it advertises an address an EndpointSlice may hold (validation refuses
  loopback). `host_address()` finds the host's own IPv4 address for that. The API server still
  listens on loopback only (a local control plane exposes nothing beyond this host), so the
  slice names the address a cluster would reach it by, not one served here; clients of the local
  clusters (and upstream's manager, which prefers cluster-info) use the loopback URL. On a host
  with no such address there is no EndpointSlice (`endpoint-reconciler-type=none`).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
from typing import Any

import yaml
from kubernetes_asyncio import client

NAMESPACE = "kube-public"
NAME = "cluster-info"
KEY = "kubeconfig"
# kubeadm's names for the Role and RoleBinding that make cluster-info public.
READER = "kubeadm:bootstrap-signer-clusterinfo"
# A documentation address (RFC 5737): routing to it picks the source address, sends nothing.
_PROBE_ADDRESS = ("198.51.100.1", 9)


def host_address() -> str | None:
    """The IPv4 address this host's default route leaves from, if it is one an EndpointSlice
    may name (not loopback, link-local or unspecified); None otherwise."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(_PROBE_ADDRESS)
        except OSError:
            return None
        address = ipaddress.IPv4Address(probe.getsockname()[0])
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        return None
    return str(address)


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig kubeadm puts in cluster-info: one unnamed cluster, no users."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        }}],
        "contexts": None,
        "current-context": "",
        "preferences": {},
        "users": None,
    }  # fmt: skip
    return yaml.safe_dump(config, sort_keys=True)


async def publish_cluster_info(api: client.ApiClient, *, server: str, ca_pem: bytes) -> None:
    """Create or replace `kube-public/cluster-info` and its public read access."""
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": NAME, "namespace": NAMESPACE},
                  "data": {KEY: cluster_info_kubeconfig(server, ca_pem)}}  # fmt: skip
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": READER, "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME],
                       "verbs": ["get"]}]}  # fmt: skip
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": READER, "namespace": NAMESPACE},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": READER},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "system:anonymous"}]}  # fmt: skip
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    await _apply(core.create_namespaced_config_map, core.replace_namespaced_config_map, config_map)
    await _apply(rbac.create_namespaced_role, rbac.replace_namespaced_role, role)
    await _apply(rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding,
                 binding)  # fmt: skip


async def kubernetes_slice_ready(api: client.ApiClient, address: str) -> bool:
    """The `default/kubernetes` EndpointSlice names `address` (the reconciler has run)."""
    slices = await client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes"
    )
    return any(
        address in (endpoint.addresses or ())
        for item in slices.items
        for endpoint in item.endpoints or ()
    )


async def _apply(create: Any, replace: Any, body: dict[str, Any]) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        await create(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        await replace(name, namespace, body)
