"""Which tenant Secrets the objects kubelb serves name, so they are synced without a label.

An Ingress names Secrets by `spec.tls[].secretName` (its own namespace). A Service that a served
source references names its HTTPS backend CA by `kubelb.k8c.io/backend-tls-ca-secret`. A Gateway
names them by `spec.listeners[].tls.certificateRefs[]` of kind Secret in the core group (the
defaults), in the ref's namespace, else the Gateway's. A reference into another namespace counts
only when a ReferenceGrant there lets Gateways of the Gateway's namespace refer to that Secret
(Gateway API's rule); otherwise it is refused (the Gateway gets a `RefNotPermitted` Warning Event)
and the Secret stays unsynced. Only objects in scope (the agent's ingress and gateway class
filters) and not being deleted count: a Secret stops being synced once no such object names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelb.api import annotations as keys
from kubelb.kube import objects, resources, store

# Served as v1beta1 by every Gateway API release that has it (v1 only from v1.5).
REFERENCE_GRANTS = resources.Resource(
    "gateway.networking.k8s.io", "v1beta1", "referencegrants", "ReferenceGrant"
)
GATEWAY_GROUP = "gateway.networking.k8s.io"
SECRET_REFS_INDEX = "secret-refs"
REF_NOT_PERMITTED = "RefNotPermitted"


@dataclass(frozen=True, slots=True)
class SecretRef:
    secret: objects.ObjectKey
    # Into another namespace than the naming object's: needs a ReferenceGrant.
    cross_namespace: bool = False


def ingress_refs(obj: Mapping[str, Any]) -> list[SecretRef]:
    namespace = objects.namespace(obj)
    names = (
        str(t["secretName"])
        for t in objects.lookup(obj, "spec.tls") or ()
        if isinstance(t, Mapping) and t.get("secretName")
    )
    return [SecretRef(objects.ObjectKey(namespace, n)) for n in dict.fromkeys(names)]


def gateway_refs(obj: Mapping[str, Any]) -> list[SecretRef]:
    namespace = objects.namespace(obj)
    found: dict[objects.ObjectKey, SecretRef] = {}
    for listener in objects.lookup(obj, "spec.listeners") or ():
        refs = (
            objects.lookup(listener, "tls.certificateRefs")
            if isinstance(listener, Mapping)
            else None
        )
        for ref in refs or ():
            if not isinstance(ref, Mapping) or not ref.get("name"):
                continue
            if (ref.get("group") or "") != "" or (ref.get("kind") or "Secret") != "Secret":
                continue
            ns = str(ref.get("namespace") or namespace)
            key = objects.ObjectKey(ns, str(ref["name"]))
            found.setdefault(key, SecretRef(key, cross_namespace=ns != namespace))
    return list(found.values())


def service_ca_refs(obj: Mapping[str, Any]) -> list[SecretRef]:
    """The CA Secret an HTTPS backend Service verifies with (`backend-tls-ca-secret`)."""
    name = objects.annotations(obj).get(keys.BACKEND_TLS_CA_SECRET)
    return [SecretRef(objects.ObjectKey(objects.namespace(obj), name))] if name else []


def granted(
    grants: Iterable[Mapping[str, Any]], from_namespace: str, secret: objects.ObjectKey
) -> bool:
    """A ReferenceGrant in the Secret's namespace lets Gateways of `from_namespace` name it."""
    for grant in grants:
        if objects.namespace(grant) != secret.namespace:
            continue
        spec = grant.get("spec") or {}
        from_ok = any(
            isinstance(f, Mapping) and f.get("group") == GATEWAY_GROUP
            and f.get("kind") == "Gateway" and f.get("namespace") == from_namespace
            for f in spec.get("from") or ()
        )  # fmt: skip
        to_ok = any(
            isinstance(t, Mapping) and (t.get("group") or "") == "" and t.get("kind") == "Secret"
            and t.get("name") in (None, "", secret.name)
            for t in spec.get("to") or ()
        )  # fmt: skip
        if from_ok and to_ok:
            return True
    return False


Refs = Callable[[Mapping[str, Any]], list[SecretRef]]


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of naming object: its store (indexed by SECRET_REFS_INDEX), scope and refs."""

    resource: resources.Resource
    reader: store.Reader
    in_scope: Callable[[objects.RawObject], bool]
    refs: Refs


def indexer(refs: Refs) -> store.Indexer:
    return lambda obj: [str(r.secret) for r in refs(obj)]


class SecretReferences:
    """Answers "is this Secret named by a served object?" from the informers' caches."""

    def __init__(self, grants: store.Reader | None = None) -> None:
        self.sources: list[Source] = []
        # None: ReferenceGrants are not served (or not watched), so no cross-namespace grant.
        self.grants = grants
        # Other kinds whose change may change what is named (a source's backend Services).
        self.triggers: list[
            tuple[resources.Resource, Callable[[objects.RawObject], list[objects.ObjectKey]]]
        ] = []

    def add(self, source: Source) -> None:
        self.sources.append(source)

    def add_trigger(
        self,
        resource: resources.Resource,
        mapper: Callable[[objects.RawObject], list[objects.ObjectKey]],
    ) -> None:
        self.triggers.append((resource, mapper))

    def _naming(
        self, secret: objects.ObjectKey
    ) -> Iterable[tuple[Source, objects.RawObject, SecretRef]]:
        for source in self.sources:
            for obj in source.reader.by_index(SECRET_REFS_INDEX, str(secret)):
                if objects.is_deleting(obj) or not source.in_scope(obj):
                    continue
                for ref in source.refs(obj):
                    if ref.secret == secret:
                        yield source, obj, ref

    def _allowed(self, obj: objects.RawObject, ref: SecretRef) -> bool:
        if not ref.cross_namespace:
            return True
        grants = self.grants.list(ref.secret.namespace) if self.grants is not None else ()
        return granted(grants, objects.namespace(obj), ref.secret)

    def referenced(self, secret: objects.ObjectKey) -> bool:
        return any(self._allowed(obj, ref) for _, obj, ref in self._naming(secret))

    def refused(self, secret: objects.ObjectKey) -> list[objects.RawObject]:
        """The served objects naming `secret` across namespaces without a ReferenceGrant."""
        return [obj for _, obj, ref in self._naming(secret) if not self._allowed(obj, ref)]

    @staticmethod
    def secrets_of(refs: Refs) -> Callable[[objects.RawObject], list[objects.ObjectKey]]:
        """Mapper from a naming object to the Secrets it names (old and new: both reconciled)."""
        return lambda obj: [r.secret for r in refs(obj)]

    def secrets_of_grant(self, grant: objects.RawObject) -> list[objects.ObjectKey]:
        """Mapper: the Secrets in the grant's namespace any object names across namespaces."""
        namespace = objects.namespace(grant)
        return [
            ref.secret
            for source in self.sources
            for obj in source.reader.list()
            for ref in source.refs(obj)
            if ref.cross_namespace and ref.secret.namespace == namespace
        ]
