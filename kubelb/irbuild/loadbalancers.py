"""LoadBalancer objects -> IR listeners and clusters. Pure: no I/O, no clock.

Input: LoadBalancers, each with a `Placement` (bind address and listen port per LB port, decided
by the caller: an address pool in standalone mode, the port allocator in manager mode), and the
tenant's `Addresses` objects by name, and optionally the `endpointpolicy.EndpointPolicy` its
endpoints must pass (the manager always gives one). Output: one `proxy.ProxyConfig` plus, per
LoadBalancer, the problems that kept part of it from being served and the endpoints the policy
refused (for status conditions); refused endpoints are left out of their clusters.

Each LB port forwards to the endpoint port `kubelb.api.ports.pair` finds in each endpoints entry
(same name and protocol, or same position when unnamed); every endpoint entry becomes its own
cluster, and the listener spreads connections over those clusters. Names come from identity
(namespace, LB name, port name or number, protocol), never from list positions that a reorder
would change, and are injective (`util.naming.join`): `a-b/c` and `a/b-c` never share a listener
or a cluster.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubelb.api import (
    addresses as api_addresses,
    annotations as api_annotations,
    common as api_common,
    loadbalancer as api_lb,
    ports as api_ports,
)
from kubelb.ir import proxy, tls
from kubelb.irbuild import endpointpolicy
from kubelb.util import naming

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one LoadBalancer's listeners bind. `listen_ports` maps an `api.ports.port_key` to
    the port Envoy binds; a missing key means the LB port number itself (standalone and process
    deployers)."""

    address: str
    listen_ports: Mapping[api_ports.PortKey, int] | None = None

    def listen_port(self, port: api_lb.LoadBalancerPort) -> int:
        if self.listen_ports is None:
            return port.port
        return self.listen_ports.get(api_ports.port_key(port), port.port)


@dataclass(frozen=True, slots=True)
class Built:
    config: proxy.ProxyConfig
    # "namespace/name" -> problems, for every LoadBalancer that was given (empty tuple when fine)
    problems: Mapping[str, tuple[str, ...]]
    # "namespace/name" -> endpoints the policy refused (only LoadBalancers with some)
    refused: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def lb_key(lb: api_lb.LoadBalancer) -> str:
    return f"{lb.metadata.namespace or 'default'}/{lb.metadata.name}"


@dataclass(frozen=True, slots=True)
class Piece:
    """What one LoadBalancer contributes to its node's IR (see `build_load_balancer`)."""

    key: str  # "namespace/name"
    listeners: tuple[proxy.Listener, ...]
    clusters: tuple[proxy.Cluster, ...]
    problems: tuple[str, ...]
    refused: tuple[str, ...] = ()  # endpoints the policy refused, one message each
    # Certificates its TLS listeners name (a tenant's routes piece).
    secrets: tuple[tls.TLSSecret, ...] = ()


def build_proxy_config(
    node_id: str,
    placed: Iterable[tuple[api_lb.LoadBalancer, Placement]],
    addresses: Mapping[str, api_addresses.Addresses],
    policy: endpointpolicy.EndpointPolicy | None = None,
) -> Built:
    """Build the IR for one data-plane node from its placed LoadBalancers.

    `addresses` holds Addresses objects keyed "namespace/name"; a LoadBalancer's reference
    resolves in its own namespace only, so tenants never see each other's addresses. Listeners
    that would bind an address and port another LoadBalancer already has are dropped and reported
    against the LoadBalancer that lost, which never affects the others.
    """
    return assemble(node_id, [build_load_balancer(lb, p, addresses, policy) for lb, p in placed])


def build_load_balancer(
    lb: api_lb.LoadBalancer,
    placement: Placement,
    addresses: Mapping[str, api_addresses.Addresses],
    policy: endpointpolicy.EndpointPolicy | None = None,
) -> Piece:
    """One LoadBalancer's listeners, clusters, problems and refused endpoints. It reads only the
    Addresses of its own namespace, so a caller may keep the result while neither they nor the
    policy change (the manager does)."""
    refused: dict[str, None] = {}  # ordered, each message once
    listeners, clusters, problems = _build_one(lb, placement, addresses, policy, refused)
    return Piece(lb_key(lb), tuple(listeners), tuple(clusters), tuple(problems), tuple(refused))


def assemble(node_id: str, pieces: Iterable[Piece]) -> Built:
    """The node's IR from its LoadBalancers' pieces (any order; equal pieces, equal IR)."""
    listeners: list[proxy.Listener] = []
    clusters: dict[str, proxy.Cluster] = {}
    problems: dict[str, list[str]] = {}
    refused: dict[str, tuple[str, ...]] = {}
    secrets: dict[str, tls.TLSSecret] = {}
    for piece in sorted(pieces, key=lambda p: p.key):
        secrets.update((s.name, s) for s in piece.secrets)
        if piece.refused:
            refused[piece.key] = piece.refused
        listeners.extend(piece.listeners)
        for c in piece.clusters:
            clusters[c.name] = c
        problems[piece.key] = list(piece.problems)
    config = proxy.drop_conflicting_listeners(
        proxy.ProxyConfig(
            node_id=node_id,
            listeners=tuple(sorted(listeners, key=lambda li: li.name)),
            clusters=tuple(sorted(clusters.values(), key=lambda c: c.name)),
            secrets=tuple(secrets[n] for n in sorted(secrets)),
        )
    )
    for li in config.dropped_listeners:
        problems.setdefault(li.owner, []).append(
            f"listener {_bind_text(li)} conflicts with another LoadBalancer and is not served"
        )
    return Built(config=config, problems={k: tuple(v) for k, v in problems.items()},
                 refused=refused)  # fmt: skip


def spec_problems(lb: api_lb.LoadBalancer) -> tuple[str, ...]:
    """What makes `lb` invalid wherever it is placed and whatever its Addresses hold: the
    problems its verdict reports as InvalidSpec that depend on nothing but its own spec (a port
    outside 1-65535, an endpoint port that pairs with no LoadBalancer port, an unsupported
    annotation, no ports), and `ip` fields that are no IP address. For checking a version before
    it replaces one that serves."""
    problems: list[str] = []
    _, _, built = _build_one(lb, Placement("0.0.0.0"), None, None, {})
    problems.extend(built)
    if not lb.spec.ports:
        problems.append("spec.ports is empty: nothing to expose")
    for index, entry in enumerate(lb.spec.endpoints):
        if entry.addresses_reference is not None and entry.addresses_reference.name:
            continue
        problems.extend(f"endpoints {_entry_id(entry, index)!r}: ip {a.ip!r} is not an IP "
                        "address" for a in entry.addresses
                        if a.ip and endpointpolicy.parse_ip(a.ip) is None)  # fmt: skip
    return tuple(problems)


def _build_one(
    lb: api_lb.LoadBalancer,
    placement: Placement,
    addresses: Mapping[str, api_addresses.Addresses] | None,
    policy: endpointpolicy.EndpointPolicy | None,
    refused: dict[str, None],
) -> tuple[list[proxy.Listener], list[proxy.Cluster], list[str]]:
    key = lb_key(lb)
    namespace = lb.metadata.namespace or "default"
    name = lb.metadata.name or ""
    problems: list[str] = []
    proxy_protocol = _proxy_protocol(lb, problems)
    entries = [
        (_entry_id(entry, index), entry, _resolve(entry, index, namespace, addresses, problems))
        for index, entry in enumerate(lb.spec.endpoints)
    ]

    listeners: list[proxy.Listener] = []
    clusters: dict[str, proxy.Cluster] = {}
    for position, port in enumerate(lb.spec.ports):
        protocol = proxy.Protocol(str(port.protocol))
        listen_port = placement.listen_port(port)
        if not api_ports.valid_port(listen_port):
            problems.append(f"port {port.port}/{protocol}: {listen_port} is outside 1-65535")
            continue
        names: list[str] = []
        for entry_id, entry, endpoint_addresses in entries:
            target = _target_port(port, position, entry, entry_id, problems)
            if target is None:
                continue
            cluster = "/".join(
                (
                    naming.join(namespace, name, "ep"),
                    _cluster_entry(entry, entry_id),
                    naming.join("port", str(target), protocol.value.lower()),
                )
            )
            names.append(cluster)
            clusters[cluster] = proxy.Cluster(
                name=cluster,
                protocol=protocol,
                endpoints=_endpoints(
                    _admitted(endpoint_addresses, target, policy, refused), target
                ),
                health_check=proxy.HealthCheck() if protocol is proxy.Protocol.TCP else None,
                proxy_protocol=proxy_protocol if protocol is proxy.Protocol.TCP else None,
            )
        if not names:
            problems.append(
                f"port {api_ports.port_key(port)[0]}/{protocol}: no endpoint port to forward to"
            )
            continue
        port_id = port.name or str(port.port)
        listeners.append(
            proxy.Listener(
                name=naming.join(namespace, name, port_id, protocol.value.lower()),
                address=placement.address,
                port=listen_port,
                protocol=protocol,
                clusters=tuple(names),
                source_ip_persistence=lb.spec.source_ip_persistence,
                owner=key,
            )
        )
    return listeners, list(clusters.values()), problems


def _entry_id(entry: api_common.LoadBalancerEndpoints, index: int) -> str:
    return entry.name or str(index)


def _cluster_entry(entry: api_common.LoadBalancerEndpoints, entry_id: str) -> str:
    """An unnamed entry's position as `#0`, an entry's name escaped (never holding `#`): an
    entry named `0` gets a cluster of its own."""
    return naming.escape(entry.name) if entry.name else f"#{entry_id}"


def _target_port(
    port: api_lb.LoadBalancerPort,
    position: int,
    entry: api_common.LoadBalancerEndpoints,
    entry_id: str,
    problems: list[str],
) -> int | None:
    pairing = api_ports.pair(port, position, entry)
    match = pairing.candidate
    if pairing.problem is None:
        return pairing.target
    if match is None:
        wanted = f"named {port.name!r}" if port.name else f"at position {position}"
        problems.append(f"endpoints {entry_id!r} has no port {wanted} for port {port.port}")
    elif pairing.problem is api_ports.Unpaired.OUT_OF_RANGE:
        problems.append(f"endpoints {entry_id!r} port {match.port} is outside 1-65535")
    else:
        problems.append(
            f"endpoints {entry_id!r} port {match.port} is {match.protocol} "
            f"but port {port.port} is {port.protocol}"
        )
    return None


def _resolve(
    entry: api_common.LoadBalancerEndpoints,
    index: int,
    namespace: str,
    addresses: Mapping[str, api_addresses.Addresses] | None,
    problems: list[str],
) -> list[str]:
    """The entry's addresses; none for a reference when `addresses` is None (not resolved)."""
    if entry.addresses_reference is not None and entry.addresses_reference.name:
        if addresses is None:
            return []
        ref = entry.addresses_reference.name
        found = addresses.get(f"{namespace}/{ref}")
        if found is None:
            problems.append(f"endpoints {_entry_id(entry, index)!r}: Addresses {ref!r} not found")
            return []
        source = found.spec.addresses
    else:
        source = entry.addresses
    # When both are set the IP wins, as upstream does.
    return [address for a in source if (address := a.ip or a.hostname)]


def _endpoints(addresses: Iterable[str], port: int) -> tuple[proxy.Endpoint, ...]:
    unique = {proxy.Endpoint(address=a, port=port) for a in addresses}
    return tuple(sorted(unique, key=lambda e: (e.address, e.port)))


def _admitted(
    addresses: Iterable[str],
    port: int,
    policy: endpointpolicy.EndpointPolicy | None,
    refused: dict[str, None],
) -> list[str]:
    if policy is None:
        return list(addresses)
    out = []
    for address in addresses:
        why = policy.refusal(address, port)
        if why is None:
            out.append(address)
        else:
            refused[why] = None
    return out


def _proxy_protocol(lb: api_lb.LoadBalancer, problems: list[str]) -> proxy.ProxyProtocol | None:
    value = (lb.metadata.annotations or {}).get(api_annotations.PROXY_PROTOCOL)
    if value is None:
        return None
    if value == proxy.ProxyProtocol.V2.value:
        return proxy.ProxyProtocol.V2
    problems.append(
        f"annotation {api_annotations.PROXY_PROTOCOL}={value!r} is not supported (use v2)"
    )
    return None


def _bind_text(li: proxy.Listener) -> str:
    host = f"[{li.address}]" if ":" in li.address else li.address
    return f"{host}:{li.port}/{li.bind_key[2]}"
