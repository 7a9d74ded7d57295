"""Immutable xDS snapshots: what one node id should run, per resource type, with content versions.

Input: `kubelb.xds.translate.Resources`, of `translate.Sealed` resources (`translate.sealed`) or of
protobuf messages. Output: a frozen `Snapshot` holding, per type URL, every resource serialized
once (a `Sealed`: bytes and their digest, no message) and a type version that is a hash of the
(name, digest) pairs. Versions depend only on content, never on order or time, so an unchanged
type keeps its version and is never re-sent, and a control plane restart produces the same
versions for the same config.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubelb.xds import translate

logger = logging.getLogger(__name__)

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

# Make-before-break: a resource is always sent after the resources it refers to (xDS protocol,
# "eventual consistency considerations"). Removals of clusters happen after this sequence, once the
# listeners that used them are gone (see `kubelb.xds.sotw`).
# Secrets (SDS) come before the listeners that name them; Envoy asks for them by name once it has
# such a listener, which warms until they arrive.
PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)

# Types Envoy subscribes to as a whole ("wildcard"); the others are requested by name.
WILDCARD_TYPES: frozenset[str] = frozenset({CLUSTER, LISTENER})

SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        CLUSTER: "clusters",
        ENDPOINT: "endpoints",
        LISTENER: "listeners",
        ROUTE: "routes",
        SECRET: "secrets",
    }
)


class InconsistentSnapshotError(ValueError):
    """A snapshot refers to resources it does not contain (or contains unreferenced ones)."""


# One resource: its bytes (`packed` makes the `Any` for the wire) and a digest of them. The
# translator's memoized objects, so a tenant's unchanged resources are shared, never copied.
Resource = translate.Sealed


@dataclass(frozen=True, slots=True)
class TypeResources:
    """All resources of one type URL, by name, and their content version."""

    type_url: str
    items: Mapping[str, Resource]
    version: str

    @classmethod
    def build(cls, type_url: str, resources: Iterable[Any]) -> TypeResources:
        """`resources`: `Resource`s (from `translate.sealed`), kept as they are, or messages,
        serialized here."""
        items: dict[str, Resource] = {}
        for given in resources:
            resource = given if isinstance(given, Resource) else _seal(given)
            name = resource.name
            if name in items:
                raise InconsistentSnapshotError(
                    f"duplicate {SHORT_NAMES.get(type_url, type_url)} name {name!r}"
                )
            if resource.type_url != type_url:
                raise InconsistentSnapshotError(
                    f"resource {name!r} is a {resource.type_url}, expected {type_url}"
                )
            items[name] = resource
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
        secrets: Iterable[Any] = (),
    ) -> Snapshot:
        """Each argument: messages or `Resource`s (see `TypeResources.build`)."""
        by_type = {
            CLUSTER: TypeResources.build(CLUSTER, clusters),
            ENDPOINT: TypeResources.build(ENDPOINT, endpoints),
            LISTENER: TypeResources.build(LISTENER, listeners),
            ROUTE: TypeResources.build(ROUTE, routes),
            SECRET: TypeResources.build(SECRET, secrets),
        }
        return cls(types=MappingProxyType(by_type))

    @classmethod
    def from_resources(cls, resources: translate.Resources) -> Snapshot:
        """The usual entry point: `Snapshot.from_resources(translate.sealed(config))`."""
        return cls.build(
            clusters=resources.clusters,
            endpoints=resources.endpoints,
            listeners=resources.listeners,
            routes=resources.routes,
            secrets=resources.secrets,
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
        names = (r.eds_name for r in self.types[CLUSTER].items.values())
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


eds_name = translate.eds_name


def _seal(message: Any) -> Resource:
    try:
        return Resource.of(message)
    except translate.TranslateError as exc:  # a message without a name
        raise InconsistentSnapshotError(str(exc)) from exc
