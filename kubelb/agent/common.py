"""What the agent's controllers share: the tenant identity, instrumented management-cluster calls,
and watches of one cluster feeding a controller that runs on the other.

Inputs: `--cluster-name`, a management-cluster `Client`. Outputs: `Tenant` (name, namespace),
`Management` (get/create/replace/delete/list on the management cluster, each counted in
`kubelb_ccm_kubelb_cluster_operations_total` and timed), `link()` (an informer of another
cluster enqueues a controller's keys).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from kubelb.api import tenant as api_tenant
from kubelb.kube import client, controller, errors, informer, objects, resources, watches
from kubelb.observe import agent_metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

# Events and managedFields name this component.
COMPONENT = "kubelb-agent"


@dataclass(frozen=True, slots=True)
class Tenant:
    """The tenant this agent serves: `name` without and `namespace` with the `tenant-` prefix."""

    name: str
    namespace: str

    @classmethod
    def from_cluster_name(cls, cluster_name: str) -> Tenant:
        name = api_tenant.tenant_name_for(cluster_name.strip())
        namespace = api_tenant.namespace_for(name)
        if not name or not _DNS_LABEL.fullmatch(namespace):
            raise ValueError(
                f"{cluster_name!r} does not name a tenant: tenant-<name> must be a DNS label "
                "(lower-case letters, digits and '-', at most 63 characters)"
            )
        return cls(name=name, namespace=namespace)


class Management:
    """Calls to the management cluster, as upstream's CCM records them: every call counts as
    success or error per operation; the connected gauge drops to 0 only when no answer came
    (transport failure, 5xx, 401), since a 404 or 409 is an answer from a healthy cluster."""

    def __init__(self, kube: client.Client) -> None:
        self.client = kube

    async def get(self, resource: resources.Resource, key: objects.ObjectKey) -> objects.RawObject:
        return await self._call(
            "get", lambda: self.client.get(resource, key.name, namespace=key.namespace)
        )

    async def find(
        self, resource: resources.Resource, key: objects.ObjectKey
    ) -> objects.RawObject | None:
        try:
            return await self.get(resource, key)
        except errors.NotFoundError:
            return None

    async def create(
        self, resource: resources.Resource, obj: objects.RawObject
    ) -> objects.RawObject:
        return await self._call("create", lambda: self.client.create(resource, obj))

    async def replace(
        self, resource: resources.Resource, obj: objects.RawObject
    ) -> objects.RawObject:
        return await self._call("update", lambda: self.client.replace(resource, obj))

    async def delete(self, resource: resources.Resource, key: objects.ObjectKey) -> bool:
        """Delete `key`; False when it was already gone."""
        try:
            await self._call(
                "delete", lambda: self.client.delete(resource, key.name, namespace=key.namespace)
            )
        except errors.NotFoundError:
            return False
        return True

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        try:
            result = await call()
        except errors.ApiError as exc:
            agent_metrics.CLUSTER_OPERATIONS.labels(operation, agent_metrics.RESULT_ERROR).inc()
            if isinstance(
                exc, errors.TransportError | errors.ServerError | errors.UnauthorizedError
            ):
                agent_metrics.CLUSTER_CONNECTED.set(0)
            else:
                agent_metrics.CLUSTER_CONNECTED.set(1)
            raise
        finally:
            agent_metrics.CLUSTER_LATENCY.labels(operation).observe(time.monotonic() - started)
        agent_metrics.CLUSTER_OPERATIONS.labels(operation, agent_metrics.RESULT_SUCCESS).inc()
        agent_metrics.CLUSTER_CONNECTED.set(1)
        return result


def link(
    target: controller.Controller,
    source: informer.Informer,
    *,
    mapper: watches.Mapper,
    predicate: watches.Predicate = watches.always,
) -> None:
    """Feed `target` from an informer of another cluster (a `Controller` subscribes only to the
    informers of its own `Informers`). The caller waits for `source` to sync before running
    `target`."""

    def handle(change: informer.Change) -> None:
        if not predicate(change.old, change.new):
            return
        keys = set(mapper(change.obj))
        if change.old is not None and change.new is not None:
            keys.update(mapper(change.old))
        for key in keys:
            target.enqueue(key)

    source.add_handler(handle)
