"""Watch declarations for controllers: which kind, which events matter, which primary keys.

A `Watch` names a resource (and optional namespace and selectors), a `predicate(old, new)` that
drops changes that do not matter, and a `mapper(obj)` from an object to the primary keys to
reconcile. For an update the controller maps both the old and the new object, so a key that an
object stops pointing to is reconciled too. `old` is None for an add, `new` None for a delete.

Predicates filter out our own writes (KubeLB #330): a status write bumps neither `generation`
nor labels, so `spec_changed` ignores it. Mappers: `own_key` (the primary kind itself),
`owner_keys(resource)` (ownerReferences), `label_keys(...)` (labels naming the primary), and
`constant_keys(...)` for singletons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubelb.kube import objects, resources

Mapper = Callable[[objects.RawObject], Iterable[objects.ObjectKey]]
Predicate = Callable[[objects.RawObject | None, objects.RawObject | None], bool]

# Metadata the API server changes on every write; never a reason to reconcile.
_VOLATILE_METADATA = ("resourceVersion", "managedFields")


def own_key(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
    return (objects.key_of(obj),)


def always(old: objects.RawObject | None, new: objects.RawObject | None) -> bool:
    return True


def generation_changed(old: objects.RawObject | None, new: objects.RawObject | None) -> bool:
    """Adds and deletes pass; an update passes when `metadata.generation` changed. Kinds without
    a generation pass when anything but status and volatile metadata changed."""
    if old is None or new is None:
        return True
    before, after = objects.generation(old), objects.generation(new)
    if before is not None and after is not None:
        return before != after
    return _without_status(old) != _without_status(new)


def fields_changed(*paths: str) -> Predicate:
    """Adds and deletes pass; an update passes when a value at one of the dotted `paths`
    (e.g. "metadata.labels", "status.conditions") changed."""

    def predicate(old: objects.RawObject | None, new: objects.RawObject | None) -> bool:
        if old is None or new is None:
            return True
        return any(objects.lookup(old, p) != objects.lookup(new, p) for p in paths)

    return predicate


def any_of(*predicates: Predicate) -> Predicate:
    def predicate(old: objects.RawObject | None, new: objects.RawObject | None) -> bool:
        return any(p(old, new) for p in predicates)

    return predicate


# The usual primary predicate: the spec (generation), labels, annotations, or deletion started.
spec_changed: Predicate = any_of(
    generation_changed,
    fields_changed("metadata.labels", "metadata.annotations", "metadata.deletionTimestamp"),
)


def owner_keys(owner: resources.Resource) -> Mapper:
    """Keys of the `owner` kind listed in the object's ownerReferences (same namespace for a
    namespaced owner)."""

    def mapper(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        namespace = objects.namespace(obj) if owner.namespaced else ""
        return [objects.ObjectKey(namespace, str(ref.get("name")))
                for ref in objects.owner_references(obj)
                if ref.get("kind") == owner.kind
                and ref.get("apiVersion") == owner.api_version and ref.get("name")]  # fmt: skip

    return mapper


def label_keys(name_label: str, *, namespace_label: str | None = None,
               namespace: str | None = None) -> Mapper:  # fmt: skip
    """The key named by the object's labels: name from `name_label`, namespace from
    `namespace_label`, else the fixed `namespace`, else the object's own namespace."""

    def mapper(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        labels = objects.labels(obj)
        name = labels.get(name_label)
        if not name:
            return ()
        if namespace_label is not None:
            ns = labels.get(namespace_label) or ""
        else:
            ns = namespace if namespace is not None else objects.namespace(obj)
        return (objects.ObjectKey(ns, name),)

    return mapper


def constant_keys(*keys: objects.ObjectKey) -> Mapper:
    """Always the same keys (a singleton such as Config `default`)."""

    def mapper(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        return keys

    return mapper


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """One watched kind. Controllers sharing an `Informers` share the informer of an equal
    (resource, namespace, label_selector, field_selector). `cluster` names the cluster the kind
    lives in when it is not the controller's own (the agent watches the management cluster's
    LoadBalancers for tenant Services): the `Controller` gets that cluster's `Informers` under
    the same name."""

    resource: resources.Resource
    mapper: Mapper = own_key
    predicate: Predicate = always
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    cluster: str = ""


def _without_status(obj: objects.RawObject) -> dict[str, Any]:
    meta = {k: v for k, v in objects.metadata(obj).items() if k not in _VOLATILE_METADATA}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}
