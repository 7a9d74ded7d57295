"""Which upstream endpoints a tenant may name. Pure: no I/O, no DNS.

A tenant writes its LoadBalancers' endpoints and its own Addresses, so an endpoint is a request
to connect wherever the hub can reach; node addresses prove nothing. Before an endpoint becomes
part of a cluster, `EndpointPolicy.refusal(address, port)` decides:

1. An address that is not an IP literal is refused. A hostname would be resolved by Envoy, now
   and on every re-resolution, after this check and out of its sight (DNS rebinding), so it
   cannot be checked; an `ip` that does not parse (`127.1`, `0177.0.0.1`) would be resolved the
   same way. IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are checked as the IPv4 address.
2. The hub's own sockets (`HubSocket`: the manager's xDS, probe and metrics servers, Envoy's
   admin and probe ports, the management API server) are always refused; nothing overrides it.
3. The most specific CIDR among `allowed` and `denied` that contains the address decides; on a
   tie deny wins. So `denied: [10.0.0.0/8]` with `allowed: [10.1.0.0/16]` admits 10.1.2.3, and
   `allowed: [10.0.0.0/8]` with `denied: [10.9.0.0/16]` refuses 10.9.0.1.
4. An address no CIDR contains is admitted when `allowed` is empty, refused otherwise.

Refusals are messages for the LoadBalancer's condition; the refused endpoints are left out of
the IR while the rest of the LoadBalancer and of its tenant keeps serving.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# "This host" as a destination: connecting to 0.0.0.0 or :: reaches the local host.
UNSPECIFIED = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; host bits set are an error (`10.0.0.1/8`)."""
    return tuple(ipaddress.ip_network(c.strip()) for c in cidrs)


@dataclass(frozen=True, slots=True)
class HubSocket:
    """A socket of the hub's own: `port` on any address in `networks` (a wildcard bind of the
    manager means every address of its host)."""

    networks: tuple[IPNetwork, ...]
    port: int

    def holds(self, address: IPAddress, port: int) -> bool:
        return port == self.port and any(address in n for n in self.networks)


def hub_socket(host: str, port: int) -> HubSocket:
    """One address (IP literal) and port."""
    return HubSocket((ipaddress.ip_network(host),), port)


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    hub: tuple[HubSocket, ...] = ()
    allowed: tuple[IPNetwork, ...] = ()  # empty: every address no deny names
    denied: tuple[IPNetwork, ...] = ()

    def refusal(self, address: str, port: int) -> str | None:
        """Why the endpoint `address:port` may not be used, or None when it may."""
        ip = parse_ip(address)
        if ip is None:
            return (f"endpoint {address!r} is refused: not an IP address (hostnames cannot be "
                    "checked against the endpoint policy; name the IP)")  # fmt: skip
        shown = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        if any(s.holds(ip, port) for s in self.hub):
            return f"endpoint {shown} is refused: it is one of the hub's own sockets"
        allow = _most_specific(ip, self.allowed)
        deny = _most_specific(ip, self.denied)
        if deny is not None and (allow is None or deny.prefixlen >= allow.prefixlen):
            return f"endpoint {shown} is refused: {ip} is in denied CIDR {deny}"
        if allow is None and self.allowed:
            return f"endpoint {shown} is refused: {ip} is in no allowed CIDR"
        return None


def parse_ip(address: str) -> IPAddress | None:
    """The IP literal `address` names (IPv4-mapped IPv6 as IPv4), None for anything else."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            ip = ipaddress.IPv6Address(address.split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def _most_specific(ip: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    best: IPNetwork | None = None
    for n in networks:
        if ip in n and (best is None or n.prefixlen > best.prefixlen):
            best = n
    return best
