"""Who an xDS certificate names: an Envoy's node id, or the xDS server itself.

An Envoy's leaf certificate carries the URI SAN `spiffe://kubelb/node/<node-id>` (node id = the
tenant namespace, or `standalone`); the server's carries `spiffe://kubelb/xds-server`. The xDS
server serves a stream only the node its peer's certificate names (`node_of`).
"""

from __future__ import annotations

from collections.abc import Iterable

TRUST_DOMAIN = "kubelb"
NODE_PREFIX = f"spiffe://{TRUST_DOMAIN}/node/"
SERVER_URI = f"spiffe://{TRUST_DOMAIN}/xds-server"


def node_uri(node_id: str) -> str:
    if not node_id or "/" in node_id:
        raise ValueError(f"{node_id!r} is not a node id")
    return NODE_PREFIX + node_id


def node_of(uris: Iterable[str]) -> str | None:
    """The node id named by a certificate's URI SANs; None when none (or more than one) does."""
    nodes = {u[len(NODE_PREFIX) :] for u in uris if u.startswith(NODE_PREFIX)}
    nodes.discard("")
    return nodes.pop() if len(nodes) == 1 else None
