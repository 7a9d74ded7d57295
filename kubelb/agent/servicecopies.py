"""Service replication for L7 sources: what a Route carries of each Service a
source references.

A Service of type NodePort or LoadBalancer is sent as it is, cleansed of what only means
something inside the tenant cluster (cluster IPs, IP families, session affinity, traffic
policies, kubectl's last-applied copy). A ClusterIP Service has no port on the nodes, so a twin
`<name>-nodeport` of type NodePort is kept beside it (same selector, ports, labels and
annotations; owned by the original, so it goes when the original goes; labelled
origin-name/origin-ns and managed-by) and
the twin, with its allocated NodePorts, is sent instead. A referenced Service that does not exist
is reported as missing, one whose twin's name a user's Service already has as blocked; the
source is served without them.

Twins are written only when they differ (`Writer.ensure`), and deleted by `release()` once no
source references their original any more.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping as MappingABC, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import labels
from kubelb.kube import objects, resources, store, writer
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

TWIN_SUFFIX = "-nodeport"
# Fields of a Service spec that mean something only inside the tenant cluster.
_TENANT_ONLY_SPEC = (
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "healthCheckNodePort",
    "allocateLoadBalancerNodePorts",
)
_PORT_FIELDS = ("name", "protocol", "port", "targetPort", "appProtocol")

# Tells whether any source still references a Service (key of the original).
Referenced = Callable[[objects.ObjectKey], bool]


def twin_name(name: str) -> str:
    return f"{name}{TWIN_SUFFIX}"


def is_twin(service: MappingABC[str, Any]) -> bool:
    """A twin the agent made (not a user's Service whose name happens to end in -nodeport)."""
    service_labels = objects.labels(service)
    return (service_labels.get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE
            and bool(service_labels.get(labels.ORIGIN_NAME))
            and objects.name(service) == twin_name(service_labels[labels.ORIGIN_NAME]))  # fmt: skip


def original_key(service: MappingABC[str, Any]) -> objects.ObjectKey:
    """The Service a source names: the twin's original, or the Service itself."""
    if is_twin(service):
        return objects.ObjectKey(objects.namespace(service),
                                 objects.labels(service)[labels.ORIGIN_NAME])  # fmt: skip
    return objects.key_of(service)


def needs_twin(service: MappingABC[str, Any]) -> bool:
    return (objects.lookup(service, "spec.type") or "ClusterIP") == "ClusterIP"


def desired_twin(service: MappingABC[str, Any]) -> objects.RawObject:
    spec = service.get("spec") or {}
    ports = [{k: p[k] for k in _PORT_FIELDS if k in p} for p in spec.get("ports") or ()]
    twin_spec: dict[str, Any] = {"type": "NodePort", "ports": ports}
    if spec.get("selector"):
        twin_spec["selector"] = dict(spec["selector"])
    metadata: dict[str, Any] = {
        "name": twin_name(objects.name(service)),
        "namespace": objects.namespace(service),
        # The original's labels and annotations travel with it, as upstream's twins carry them.
        "labels": {
            **objects.labels(service),
            labels.ORIGIN_NAME: objects.name(service),
            labels.ORIGIN_NAMESPACE: objects.namespace(service),
            labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        },
        "ownerReferences": [
            objects.owner_reference(
                {"apiVersion": "v1", "kind": "Service", **service}, block_owner_deletion=False
            )
        ],
    }
    annotations = {
        k: v for k, v in objects.annotations(service).items() if k != objects.LAST_APPLIED
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": twin_spec}


def cleansed(service: MappingABC[str, Any]) -> objects.RawObject:
    """The copy a Route carries: type meta, name, namespace, labels, annotations, uid, spec
    without the tenant-only fields; no status or volatile metadata."""
    out_meta = objects.embedded_metadata(service)
    spec = {k: copy.deepcopy(v) for k, v in (service.get("spec") or {}).items()
            if k not in _TENANT_ONLY_SPEC}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Service", "metadata": out_meta, "spec": spec}


@dataclass(slots=True)
class Copies:
    """The Service copies for one source, the referenced Services that do not exist, and the
    ClusterIP ones whose twin's name is taken by a Service that is not ours."""

    services: list[objects.RawObject] = field(default_factory=list)
    missing: list[objects.ObjectKey] = field(default_factory=list)
    blocked: list[objects.ObjectKey] = field(default_factory=list)


class ServiceCopies:
    def __init__(
        self,
        *,
        services: store.Reader,
        tenant_writer: writer.Writer,
        referenced: Referenced,
    ) -> None:
        self.services = services
        self.writer = tenant_writer
        self.referenced = referenced

    async def replicate(self, keys: Iterable[objects.ObjectKey]) -> Copies:
        """Copies of the Services `keys` name, twins made or updated where needed."""
        out = Copies()
        for key in keys:
            service = self.services.get(key)
            if service is None or objects.is_deleting(service):
                out.missing.append(key)
                continue
            if not needs_twin(service):
                out.services.append(cleansed(service))
                continue
            desired = desired_twin(service)
            twin_key = objects.key_of(desired)
            current = self.services.get(twin_key)
            if current is not None and not is_twin(current):
                out.blocked.append(key)  # never take over a user's Service
                continue
            written = await self.writer.ensure(resources.SERVICES, desired, current=current)
            if written.changed:
                logger.info("service %s: twin %s written", logsafe.shown(key), twin_key)
            live = written.obj if written.obj is not None else desired
            out.services.append(cleansed(live))
        return out

    async def release(self, originals: Sequence[objects.ObjectKey]) -> None:
        """Delete the twins of `originals` that no source references any more."""
        for key in originals:
            if self.referenced(key):
                continue
            twin = self.services.get(objects.ObjectKey(key.namespace, twin_name(key.name)))
            if twin is None or not is_twin(twin) or objects.is_deleting(twin):
                continue
            if await self.writer.delete(resources.SERVICES, objects.key_of(twin),
                                        uid=objects.uid(twin)):  # fmt: skip
                logger.info("service %s: twin %s deleted", logsafe.shown(key),
                            objects.key_of(twin))  # fmt: skip
