"""The hub's own sockets as a tenant endpoint would name them (`endpointpolicy.HubSocket`).

I/O: reads this host's addresses (Linux `/proc/net/fib_trie` and `/proc/net/if_inet6`),
resolves names, and asks the management API server where it is. Output: sockets the endpoint
policy always refuses.

- A server the manager bound on a wildcard (`:8001`, `0.0.0.0`, `::`) answers on every address
  of this host: loopback, the unspecified address (a connection to 0.0.0.0 reaches this host)
  and every interface address. A specific bind answers on that address alone.
- The management API server is found in the kubeconfig's server URL, the `kubernetes`
  EndpointSlice and the `kubernetes` Service (its ClusterIP) in namespace `default`, each read
  once at start-up (a moved API server is picked up by a restart). An API server on an address
  of this host may be bound to a wildcard, so its port is refused on every local address.

`service_cidrs` reads the cluster's Service ranges (ServiceCIDR objects) for the built-in denies
when no `--service-cidr` names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubelb.irbuild import endpointpolicy
from kubelb.kube import client, errors, resources

logger = logging.getLogger(__name__)

WILDCARDS = ("", "0.0.0.0", "::", "*")
_FIB_TRIE = Path("/proc/net/fib_trie")
_IF_INET6 = Path("/proc/net/if_inet6")

Networks = tuple[endpointpolicy.IPNetwork, ...]


def local_networks() -> Networks:
    """Every address a connection to this host may name."""
    found = [ipaddress.ip_network(ip) for ip in _interface_addresses()]
    return tuple(dict.fromkeys((*endpointpolicy.LOOPBACK, *endpointpolicy.UNSPECIFIED, *found)))


def _interface_addresses() -> list[str]:
    out: list[str] = []
    try:  # IPv4: each "|-- a.b.c.d" followed by "/32 host LOCAL"
        previous = ""
        for line in _FIB_TRIE.read_text().splitlines():
            text = line.strip()
            if text.startswith("/32 host LOCAL") and previous.startswith("|-- "):
                out.append(previous[4:])
            previous = text
    except OSError:
        pass
    try:  # IPv6: the first field is the address as 32 hex digits
        for line in _IF_INET6.read_text().splitlines():
            digits = line.split()[0] if line.split() else ""
            if len(digits) == 32:
                out.append(str(ipaddress.IPv6Address(int(digits, 16))))
    except (OSError, ValueError):
        pass
    with contextlib.suppress(OSError):
        out.extend(str(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None))
    return [a for a in out if endpointpolicy.parse_ip(a) is not None]


def bound(host: str, port: int, local: Networks) -> endpointpolicy.HubSocket:
    """A server of ours listening on `host:port` (host as configured)."""
    if host in WILDCARDS:
        return endpointpolicy.HubSocket(local, port)
    return endpointpolicy.HubSocket(_networks(_resolve(host)), port)


async def api_server(kube: client.Client, local: Networks) -> list[endpointpolicy.HubSocket]:
    """The management API server's sockets (see the module docstring); what cannot be read is
    logged and left out."""
    places: list[tuple[str, int]] = []
    url = urlsplit((await kube.connection()).server)
    if url.hostname:
        port = url.port or (80 if url.scheme == "http" else 443)
        places.extend((ip, port) for ip in await asyncio.to_thread(_resolve, url.hostname))
    places.extend(await _from_cluster(kube))
    sockets = []
    for ip, port in dict.fromkeys(places):
        parsed = endpointpolicy.parse_ip(ip)
        if parsed is None:
            continue
        nets = local if any(parsed in n for n in local) else _networks([ip])
        sockets.append(endpointpolicy.HubSocket(nets, port))
    return sockets


async def _from_cluster(kube: client.Client) -> list[tuple[str, int]]:
    places: list[tuple[str, int]] = []
    try:
        svc = await kube.get(resources.SERVICES, "kubernetes", namespace="default")
        spec: dict[str, Any] = svc.get("spec") or {}
        ports = [p["port"] for p in spec.get("ports") or () if isinstance(p.get("port"), int)]
        ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
        places.extend((str(ip), port) for ip in ips if ip and ip != "None" for port in ports)
    except errors.ApiError as exc:
        logger.warning("endpoint policy: Service default/kubernetes not read: %s", exc)
    try:
        selector = "kubernetes.io/service-name=kubernetes"
        slices = await kube.list(resources.ENDPOINT_SLICES, namespace="default",
                                 label_selector=selector)  # fmt: skip
        for item in slices.items:
            ports = [p.get("port") for p in item.get("ports") or ()
                     if isinstance(p.get("port"), int)]  # fmt: skip
            for endpoint in item.get("endpoints") or ():
                places.extend((str(a), port) for a in endpoint.get("addresses") or ()
                              for port in ports)  # fmt: skip
    except errors.ApiError as exc:
        logger.warning("endpoint policy: the kubernetes EndpointSlice not read: %s", exc)
    return places


SERVICE_CIDRS = resources.Resource("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR",
                                   namespaced=False)  # fmt: skip


async def service_cidrs(kube: client.Client) -> tuple[str, ...]:
    """The management cluster's Service ranges from its ServiceCIDR objects (Kubernetes 1.33
    and later); () when they cannot be read."""
    try:
        listed = await kube.list(SERVICE_CIDRS)
    except errors.ApiError as exc:
        logger.warning("endpoint policy: ServiceCIDRs not read (give --service-cidr): %s", exc)
        return ()
    found = []
    for item in listed.items:
        for cidr in (item.get("spec") or {}).get("cidrs") or ():
            with contextlib.suppress(ValueError):
                found.append(str(ipaddress.ip_network(str(cidr), strict=False)))
    return tuple(dict.fromkeys(found))


def _resolve(host: str) -> list[str]:
    if endpointpolicy.parse_ip(host.strip("[]")) is not None:
        return [host.strip("[]")]
    try:
        return sorted({str(i[4][0]) for i in socket.getaddrinfo(host, None)})
    except OSError as exc:
        logger.warning("endpoint policy: %s does not resolve: %s", host, exc)
        return []


def _networks(ips: Iterable[str]) -> Networks:
    out = []
    for ip in ips:
        parsed = endpointpolicy.parse_ip(ip)
        if parsed is not None:
            out.append(ipaddress.ip_network(parsed))
    return tuple(out)
