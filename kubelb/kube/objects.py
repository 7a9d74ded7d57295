"""Raw Kubernetes objects as this package hands them out: plain JSON dicts, never models.

Inputs: decoded JSON from the API server. Outputs: `ObjectKey` (namespace, name) identities and
small read accessors for metadata. Objects from a store are shared with the cache: treat them as
read-only, and `copy.deepcopy` one before changing it.
"""

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, TypedDict

RawObject = dict[str, Any]

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


class WatchEvent(TypedDict):
    """One line of a watch stream."""

    type: EventType
    object: RawObject


class ObjectKey(NamedTuple):
    """Identity of an object: `namespace` is "" for cluster-scoped kinds."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    meta = metadata(obj)
    return ObjectKey(meta.get("namespace") or "", meta.get("name") or "")


def name(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name") or "")


def namespace(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("namespace") or "")


def uid(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("uid") or "")


def resource_version(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("resourceVersion") or "")


def generation(obj: Mapping[str, Any]) -> int | None:
    value = metadata(obj).get("generation")
    return value if isinstance(value, int) else None


def labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    value = metadata(obj).get("labels")
    return value if isinstance(value, Mapping) else {}


def annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    value = metadata(obj).get("annotations")
    return value if isinstance(value, Mapping) else {}


# kubectl's copy of the object it applied: never carried into an object derived from another.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def embedded_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata an object embedded in another keeps: name, namespace, labels, annotations
    (without kubectl's last-applied copy) and uid; nothing volatile (resourceVersion, managed
    fields, owners), so the embedding changes only when the object really does."""
    meta = metadata(obj)
    out: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if kept:
        out["annotations"] = kept
    if meta.get("uid"):
        out["uid"] = meta["uid"]
    return out


def finalizers(obj: Mapping[str, Any]) -> list[str]:
    value = metadata(obj).get("finalizers")
    return [str(f) for f in value] if isinstance(value, list) else []


def owner_references(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = metadata(obj).get("ownerReferences")
    return [o for o in value if isinstance(o, Mapping)] if isinstance(value, list) else []


def is_deleting(obj: Mapping[str, Any]) -> bool:
    """True once deletion was requested (finalizers may still hold the object)."""
    return bool(metadata(obj).get("deletionTimestamp"))


def owner_reference(
    owner: Mapping[str, Any], *, controller: bool = True, block_owner_deletion: bool = True
) -> RawObject:
    """An ownerReference pointing at `owner` (which must carry apiVersion and kind)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name(owner),
        "uid": uid(owner),
        "controller": controller,
        "blockOwnerDeletion": block_owner_deletion,
    }


def lookup(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`"status.loadBalancer"`), or None when any step is missing."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
