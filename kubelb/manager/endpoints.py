"""The endpoint policy a tenant's LoadBalancers are built with (`irbuild.endpointpolicy`).

Input: a `Base` the composition root decides once the manager has bound its sockets (the hub's
own sockets: the manager's xDS, probe and metrics servers, Envoy's admin and probe ports, the
management API server; and the built-in denied CIDRs of the way Envoy runs), and the tenant's
effective CIDR lists from Config and Tenant. Output: one `EndpointPolicy`. The built-in denies
always apply; the operator's allowed CIDRs may carve exceptions out of them (the most specific
CIDR decides), never out of the hub's sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubelb.irbuild import endpointpolicy
from kubelb.manager import effective as tenant_effective


@dataclass(frozen=True, slots=True)
class Base:
    hub: tuple[endpointpolicy.HubSocket, ...] = ()
    denied: tuple[endpointpolicy.IPNetwork, ...] = ()

    def with_hub(self, sockets: Iterable[endpointpolicy.HubSocket]) -> Base:
        return Base(hub=(*self.hub, *sockets), denied=self.denied)

    def with_denied(self, networks: Iterable[endpointpolicy.IPNetwork]) -> Base:
        return Base(hub=self.hub, denied=(*self.denied, *networks))


def policy(base: Base, cidrs: tenant_effective.EndpointCIDRs) -> endpointpolicy.EndpointPolicy:
    """The Config and Tenant were validated, so their CIDRs parse."""
    return endpointpolicy.EndpointPolicy(
        hub=base.hub,
        allowed=endpointpolicy.parse_networks(cidrs.allowed),
        denied=(*base.denied, *endpointpolicy.parse_networks(cidrs.denied)),
    )
