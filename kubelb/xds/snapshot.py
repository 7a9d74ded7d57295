"""Immutable xDS snapshots: what one node id should run, per resource type, with content versions.

Input: `kubelb.xds.translate.Resources` (protobuf messages). Output: a frozen `Snapshot` holding,
per type URL, every resource packed once into `google.protobuf.Any` with a digest of its bytes, and
a type version that is a hash of the (name, digest) pairs. Versions depend only on content, never on
order or time, so an unchanged type keeps its version and is never re-sent, and a control plane
restart produces the same versions for the same config.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from google.protobuf import any_pb2

from kubelb.xds import translate

logger = logging.getLogger(__name__)

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"

# Make-before-break: a resource is always sent after the resources it refers to (xDS protocol,
# "eventual consistency considerations"). Removals of clusters happen after this sequence, once the
# listeners that used them are gone (see `kubelb.xds.sotw`).
PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE)

# Types Envoy subscribes to as a whole ("wildcard"); the others are requested by name.
WILDCARD_TYPES: frozenset[str] = frozenset({CLUSTER, LISTENER})

SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {CLUSTER: "clusters", ENDPOINT: "endpoints", LISTENER: "listeners", ROUTE: "routes"}
)

_EDS = 3  # envoy.config.cluster.v3.Cluster.DiscoveryType.EDS


class InconsistentSnapshotError(ValueError):
    """A snapshot refers to resources it does not contain (or contains unreferenced ones)."""


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource, packed once: `packed` goes on the wire as is, `digest` identifies content."""

    name: str
    message: Any
    packed: any_pb2.Any
    digest: str


@dataclass(frozen=True, slots=True)
class TypeResources:
    """All resources of one type URL, by name, and their content version."""

    type_url: str
    items: Mapping[str, Resource]
    version: str

    @classmethod
    def build(
        cls, type_url: str, messages: Iterable[Any], previous: TypeResources | None = None
    ) -> TypeResources:
        """`previous`: resources of the same type whose packing may be reused for messages that
        are the very same objects (a memoizing translator hands those out again)."""
        items: dict[str, Resource] = {}
        known = previous.items if previous is not None else {}
        for message in messages:
            name = _resource_name(message)
            if name in items:
                raise InconsistentSnapshotError(
                    f"duplicate {SHORT_NAMES.get(type_url, type_url)} name {name!r}"
                )
            reuse = known.get(name)
            if reuse is not None and reuse.message is message:
                items[name] = reuse
                continue
            packed = any_pb2.Any()
            packed.Pack(message, deterministic=True)
            if packed.type_url != type_url:
                raise InconsistentSnapshotError(
                    f"resource {name!r} is a {packed.type_url}, expected {type_url}"
                )
            digest = hashlib.sha256(packed.value).hexdigest()[:16]
            items[name] = Resource(name=name, message=message, packed=packed, digest=digest)
        return cls(
            type_url=type_url,
            items=MappingProxyType(items),
            version=content_version(items.values()),
        )


def content_version(resources: Iterable[Resource]) -> str:
    """Order-independent hash of resources; the empty set has a fixed version too."""
    h = hashlib.sha256()
    for name, digest in sorted((r.name, r.digest) for r in resources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _empty(type_url: str) -> TypeResources:
    return TypeResources(type_url=type_url, items=MappingProxyType({}), version=content_version(()))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one node id should run. Build with `Snapshot.build` or `from_resources`."""

    types: Mapping[str, TypeResources] = field(
        default_factory=lambda: MappingProxyType({t: _empty(t) for t in PUSH_ORDER})
    )

    @classmethod
    def build(
        cls,
        *,
        clusters: Iterable[Any] = (),
        endpoints: Iterable[Any] = (),
        listeners: Iterable[Any] = (),
        routes: Iterable[Any] = (),
        previous: Snapshot | None = None,
    ) -> Snapshot:
        """`previous`: the node's last snapshot; resources given as the same message objects
        keep their packing and digest instead of being serialized and hashed again."""

        def typed(type_url: str, messages: Iterable[Any]) -> TypeResources:
            before = previous.types.get(type_url) if previous is not None else None
            return TypeResources.build(type_url, messages, before)

        by_type = {
            CLUSTER: typed(CLUSTER, clusters),
            ENDPOINT: typed(ENDPOINT, endpoints),
            LISTENER: typed(LISTENER, listeners),
            ROUTE: typed(ROUTE, routes),
        }
        return cls(types=MappingProxyType(by_type))

    @classmethod
    def from_resources(
        cls, resources: translate.Resources, *, previous: Snapshot | None = None
    ) -> Snapshot:
        """The usual entry point: `Snapshot.from_resources(translate.translate(config))`."""
        return cls.build(
            clusters=resources.clusters,
            endpoints=resources.endpoints,
            listeners=resources.listeners,
            routes=resources.routes,
            previous=previous,
        )

    def __getitem__(self, type_url: str) -> TypeResources:
        return self.types[type_url]

    def version(self, type_url: str) -> str:
        return self.types[type_url].version

    @property
    def versions(self) -> dict[str, str]:
        return {t: r.version for t, r in self.types.items()}

    def counts(self) -> dict[str, int]:
        """Resources per short type name, e.g. {"clusters": 2, ...}, for metrics and logs."""
        return {SHORT_NAMES[t]: len(r.items) for t, r in self.types.items()}

    def eds_names(self) -> frozenset[str]:
        """The ClusterLoadAssignment names the EDS clusters of this snapshot subscribe to."""
        names = (eds_name(r.message) for r in self.types[CLUSTER].items.values())
        return frozenset(n for n in names if n is not None)

    def consistent(self) -> None:
        """Raise `InconsistentSnapshotError` unless EDS clusters and endpoints match one to one.

        A dangling EDS name would leave a cluster warming forever (Envoy waits for its endpoints);
        an unreferenced assignment is a translator bug. Listener -> cluster references are the
        translator's to check (`ProxyConfig.validate`): they live inside opaque filter configs.
        """
        wanted = self.eds_names()
        have = frozenset(self.types[ENDPOINT].items)
        errors = [f"EDS cluster {n!r} has no ClusterLoadAssignment" for n in sorted(wanted - have)]
        errors += [
            f"ClusterLoadAssignment {n!r} belongs to no EDS cluster" for n in sorted(have - wanted)
        ]
        if errors:
            raise InconsistentSnapshotError("; ".join(errors))


def eds_name(cluster: Any) -> str | None:
    """The ClusterLoadAssignment an EDS cluster subscribes to; None for other clusters."""
    if cluster.type != _EDS:
        return None
    return str(cluster.eds_cluster_config.service_name or cluster.name)


def _resource_name(message: Any) -> str:
    # ClusterLoadAssignment is named by `cluster_name`, everything else by `name`.
    name = (
        message.cluster_name if hasattr(message, "cluster_name") else getattr(message, "name", "")
    )
    if not isinstance(name, str) or not name:
        raise InconsistentSnapshotError(f"{type(message).__name__} without a name")
    return name
