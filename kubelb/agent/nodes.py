"""Node controller: the tenant cluster's Ready nodes -> `Addresses/default` in `tenant-<name>`.

Reads: Nodes (tenant cluster; any change to a node's Ready status or addresses, adds and
deletes), Addresses `default` (management cluster, so an edit or deletion there is repaired).
Writes: Addresses `default` (create or replace), only when the list changed. Owns nothing else:
node churn updates this one object, never each LoadBalancer (they reference it).

The list (`desired_addresses`): for each Ready node that is not being deleted, its addresses of
the configured type; IPs as `ip`; other values kept as `hostname` in Hostname mode only (dropped
with a log line otherwise); deduplicated; IPs first in byte order (IPv4 before IPv6), then
hostnames. No usable address at all leaves the object as it is and retries in 10 s (an empty
Addresses is invalid, and a cluster with no Ready node is better served by the last known list).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from kubelb.agent import common
from kubelb.api import addresses as api_addresses, meta
from kubelb.kube import controller, errors, objects, resources, store, watches
from kubelb.observe import agent_metrics

logger = logging.getLogger(__name__)

RETRY_WITHOUT_ADDRESSES = 10.0


class AddressType(StrEnum):
    """Which node address (`status.addresses[].type`) becomes an upstream address."""

    EXTERNAL_IP = "ExternalIP"
    INTERNAL_IP = "InternalIP"
    HOSTNAME = "Hostname"


Address = dict[str, str]  # {"ip": ...} or {"hostname": ...}


def is_ready(node: Mapping[str, Any]) -> bool:
    """Ready is `True`: `False` (NotReady), `Unknown` (the kubelet went silent and the node
    lifecycle controller says so) and no Ready condition at all leave the endpoints."""
    conditions = objects.lookup(node, "status.conditions") or ()
    return any(
        isinstance(c, Mapping)
        and c.get("type") == "Ready"
        and c.get("status") == meta.ConditionStatus.TRUE
        for c in conditions
    )


def node_addresses(node: Mapping[str, Any], address_type: AddressType) -> list[Address]:
    """The node's addresses of `address_type`, as Addresses entries (see the module docstring)."""
    found: list[Address] = []
    for entry in objects.lookup(node, "status.addresses") or ():
        if not isinstance(entry, Mapping) or entry.get("type") != address_type:
            continue
        value = str(entry.get("address") or "").strip()
        if not value:
            continue
        if _ip(value) is not None:
            found.append({"ip": str(_ip(value))})
        elif address_type is AddressType.HOSTNAME:
            found.append({"hostname": value.lower()})
        else:
            logger.warning(
                "node %s: %s address %r is not an IP; ignored",
                objects.name(node),
                address_type,
                value,
            )
    return found


def desired_addresses(
    nodes: Iterable[Mapping[str, Any]], address_type: AddressType
) -> list[Address]:
    """Sorted, deduplicated addresses of the Ready nodes (see the module docstring)."""
    unique: dict[tuple[str, str], Address] = {}
    for node in nodes:
        if not is_ready(node) or objects.is_deleting(node):
            continue
        for address in node_addresses(node, address_type):
            kind, value = next(iter(address.items()))
            unique[(kind, value)] = address
    return sorted(unique.values(), key=_sort_key)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _sort_key(address: Address) -> tuple[int, int, bytes, str]:
    ip = _ip(address.get("ip", ""))
    if ip is not None:
        return (0, ip.version, ip.packed, "")
    return (1, 0, b"", address.get("hostname", ""))


def node_view(node: Mapping[str, Any] | None) -> tuple[object, ...]:
    """What the controller reads from a node: a change elsewhere (heartbeats) is not a reason
    to reconcile."""
    if node is None:
        return ()
    return (
        is_ready(node),
        objects.is_deleting(node),
        repr(objects.lookup(node, "status.addresses")),
    )


def node_changed(old: objects.RawObject | None, new: objects.RawObject | None) -> bool:
    if old is None or new is None:
        return True
    return node_view(old) != node_view(new)


class NodeReconciler:
    """Keeps `Addresses/default` equal to `desired_addresses(nodes)`. Its home is the management
    cluster (primary: that one Addresses object); Nodes come from the tenant cluster's store,
    linked with `node_changed` and `addresses_key` (see `kubelb.agent.common.link`)."""

    name = "nodes"

    def __init__(
        self,
        *,
        tenant: common.Tenant,
        nodes: store.Reader,
        addresses: store.Reader,
        management: common.Management,
        address_type: AddressType,
        retry_without_addresses: float = RETRY_WITHOUT_ADDRESSES,
    ) -> None:
        self.tenant = tenant
        self.key = objects.ObjectKey(tenant.namespace, api_addresses.DEFAULT_NAME)
        self.nodes = nodes
        self.addresses = addresses
        self.management = management
        self.address_type = address_type
        self.retry_without_addresses = retry_without_addresses
        self.primary = addresses_watch(tenant)
        self.watches: Sequence[watches.Watch] = ()
        self.writes = 0  # Addresses created or replaced
        self._without_addresses = False

    def addresses_key(self, _: objects.RawObject) -> Iterable[objects.ObjectKey]:
        """Mapper for the linked Node informer: every node maps to the one Addresses key."""
        return (self.key,)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        started = time.monotonic()
        try:
            result = await self._reconcile()
        except Exception:
            agent_metrics.NODE_RECONCILES.labels(agent_metrics.RESULT_ERROR).inc()
            raise
        finally:
            agent_metrics.NODE_RECONCILE_SECONDS.observe(time.monotonic() - started)
        agent_metrics.NODE_RECONCILES.labels(agent_metrics.RESULT_SUCCESS).inc()
        return result

    async def _reconcile(self) -> controller.Result:
        nodes = self.nodes.list()
        agent_metrics.NODES.set(len(nodes))
        wanted = desired_addresses(nodes, self.address_type)
        if not wanted:
            # Warn once per episode; the 10 s retries after that log at debug.
            log = logger.debug if self._without_addresses else logger.warning
            self._without_addresses = True
            log(
                "no Ready node has a usable %s address (%d nodes); Addresses %s left "
                "as it is, retrying in %.0fs",
                self.address_type,
                len(nodes),
                self.key,
                self.retry_without_addresses,
            )
            return controller.Result(requeue_after=self.retry_without_addresses)
        self._without_addresses = False
        live = self.addresses.get(self.key)
        if live is None:
            body = {
                "metadata": {"name": self.key.name, "namespace": self.key.namespace},
                "spec": {"addresses": wanted},
            }
            try:
                await self.management.create(resources.ADDRESSES, body)
            except errors.AlreadyExistsError:
                live = await self.management.get(resources.ADDRESSES, self.key)
            else:
                self._written(wanted, "created")
                return controller.DONE
        if objects.lookup(live, "spec.addresses") == wanted:
            return controller.DONE
        # resourceVersion from `live` makes this fail (and retry) if the cache was stale.
        await self.management.replace(
            resources.ADDRESSES, {**live, "spec": {**(live.get("spec") or {}), "addresses": wanted}}
        )
        self._written(wanted, "updated")
        return controller.DONE

    def _written(self, wanted: list[Address], verb: str) -> None:
        self.writes += 1
        shown = ", ".join(a.get("ip") or a.get("hostname", "") for a in wanted)
        logger.info("Addresses %s %s: %s", self.key, verb, shown)


def addresses_watch(tenant: common.Tenant) -> watches.Watch:
    """The management-cluster watch of the one Addresses object the node controller writes."""
    return watches.Watch(
        resource=resources.ADDRESSES,
        namespace=tenant.namespace,
        field_selector=f"metadata.name={api_addresses.DEFAULT_NAME}",
        predicate=watches.fields_changed("spec", "metadata.deletionTimestamp"),
    )
