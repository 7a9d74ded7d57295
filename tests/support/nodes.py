"""Node objects for clusters that have no kubelet: created with chosen addresses and a Ready
condition, flipped NotReady (or Unknown, as the node lifecycle controller writes when a kubelet
goes silent), re-addressed.

Inputs: an admin `kubernetes_asyncio` ApiClient. Outputs: the Node (a `V1Node`) after the write.
Status is written through the `status` subresource, as a kubelet would, so that watchers of
Nodes (the kubelb agent) see the same events as in a real cluster. The control plane does not
run the node lifecycle controller, so nothing overrides what these helpers set.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence

from kubernetes_asyncio import client

logger = logging.getLogger(__name__)

# (type, address): type is one of InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS.
NodeAddress = tuple[str, str]
# The Ready status the node lifecycle controller sets when the kubelet stops posting.
UNKNOWN = "Unknown"

_CONFLICT_RETRIES = 10


async def create_node(
    api: client.ApiClient,
    name: str,
    *,
    addresses: Sequence[NodeAddress],
    ready: bool = True,
    labels: Mapping[str, str] | None = None,
) -> client.V1Node:
    """Create Node `name` and set its addresses and Ready condition through `status`."""
    core = client.CoreV1Api(api)
    body = client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
    await core.create_node(body)
    return await _update_status(core, name, addresses=addresses, ready=ready)


async def set_node_ready(api: client.ApiClient, name: str, ready: bool | str) -> client.V1Node:
    """Set Node `name`'s Ready condition to True, False (NotReady) or `UNKNOWN`, keeping its
    addresses."""
    return await _update_status(client.CoreV1Api(api), name, ready=ready)


async def set_node_addresses(
    api: client.ApiClient, name: str, addresses: Sequence[NodeAddress]
) -> client.V1Node:
    """Replace Node `name`'s status addresses, keeping its conditions."""
    return await _update_status(client.CoreV1Api(api), name, addresses=addresses)


async def delete_node(api: client.ApiClient, name: str) -> None:
    """Delete Node `name`; absent already is fine."""
    try:
        await client.CoreV1Api(api).delete_node(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def ready_condition(
    ready: bool | str, now: datetime.datetime, previous: client.V1NodeCondition | None
) -> client.V1NodeCondition:
    """The Ready condition a kubelet would post (`UNKNOWN`: the one the node lifecycle
    controller writes for a silent kubelet); the transition time moves only on a change."""
    if ready == UNKNOWN:
        status, reason, message = (
            UNKNOWN,
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    elif ready:
        status, reason, message = "True", "KubeletReady", "kubelet is posting ready status"
    else:
        status, reason, message = "False", "KubeletNotReady", "node set NotReady by a test"
    changed = previous is None or previous.status != status
    return client.V1NodeCondition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_heartbeat_time=now,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
    )


async def _update_status(
    core: client.CoreV1Api,
    name: str,
    *,
    addresses: Sequence[NodeAddress] | None = None,
    ready: bool | str | None = None,
) -> client.V1Node:
    for _ in range(_CONFLICT_RETRIES):
        node = await core.read_node(name)
        if addresses is not None:
            node.status.addresses = [client.V1NodeAddress(type=t, address=a) for t, a in addresses]
        if ready is not None:
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            conditions = node.status.conditions or []
            previous = next((c for c in conditions if c.type == "Ready"), None)
            others = [c for c in conditions if c.type != "Ready"]
            node.status.conditions = [*others, ready_condition(ready, now, previous)]
        try:
            return await core.replace_node_status(name, node)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"Node {name}: status update kept conflicting")
