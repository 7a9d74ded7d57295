"""The state of the in-memory API server (`memory`) and the rules its writes follow.

`Server` holds every object (an `Entry` per object: the stored dict, its kind, the fields each
server-side-apply manager owns), the global resourceVersion, a bounded history of `Change`s
for watches that resume, and the subscribers (open watches) each change is offered to. Its
methods are the server side of each request, checks included; they raise the
`kubelb.kube.errors` the real API server's answers map to. `memory.MemoryClient` turns client
calls into these; `memwatch.MemoryWatch` subscribes.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kubelb.kube import errors, objects, patching, resources, selectors
from kubelb.util import logsafe

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
Rid = tuple[str, str]  # (group, plural): one kind, whatever Resource instance names it

_UNTRACKED_GROUPS = frozenset(
    {"", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io"}
)
_CORE_WITH_STATUS = frozenset({"Service", "Namespace", "Node", "Pod"})
_BUILTIN_GROUPS = _UNTRACKED_GROUPS | {"apps", "batch", "networking.k8s.io", "policy"}
_EVENT_KINDS = (resources.EVENTS, resources.EVENTS_V1)
_INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Metadata the server owns: kept from the stored object whatever a write says.
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation", "managedFields")  # fmt: skip
# Not fields an applier owns: identity and server-owned metadata.
_IDENTITY: frozenset[patching.Path] = frozenset(
    {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"),
     ("metadata", "resourceVersion"), *(("metadata", m) for m in _SERVER_METADATA)}
)  # fmt: skip


def tracks_generation(resource: resources.Resource) -> bool:
    return resource.group not in _UNTRACKED_GROUPS


def has_status(resource: resources.Resource) -> bool:
    if resource.group == "":
        return resource.kind in _CORE_WITH_STATUS
    return resource.group not in _UNTRACKED_GROUPS


def is_custom(resource: resources.Resource) -> bool:
    return resource.group not in _BUILTIN_GROUPS


@dataclass(slots=True)
class Entry:
    obj: objects.RawObject
    resource: resources.Resource
    applied: dict[str, set[patching.Path]] = field(default_factory=dict)  # manager -> fields
    created: float = 0.0  # time.monotonic() at creation (Events expire by it)


@dataclass(frozen=True, slots=True)
class Change:
    rid: Rid
    version: int
    type: ChangeType
    old: objects.RawObject | None  # before the change (None for ADDED)
    new: objects.RawObject  # after it; for DELETED the last state, at the deletion's version


class Subscriber(Protocol):
    """An open watch: offered every change as it is committed."""

    def offer(self, change: Change) -> None: ...

    def end(self) -> None: ...


class Server:
    """One in-memory API server; `history` bounds the changes kept for watches that resume."""

    def __init__(
        self,
        *,
        history: int,
        bookmark_interval: float,
        event_ttl: float = 3600.0,
        namespaces: Iterable[str] = (),
    ) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.history_limit = history
        self.bookmark_interval = bookmark_interval
        self.event_ttl = event_ttl
        self.version = 0
        self.compacted = 0  # newest version dropped from the history
        self.writes = 0  # changes committed
        self.history: collections.deque[Change] = collections.deque()
        self.objects: dict[Rid, dict[objects.ObjectKey, Entry]] = {}
        self.watches: set[Subscriber] = set()
        # owner uid -> (kind, key) of the objects naming it in ownerReferences
        self.owned: dict[str, set[tuple[Rid, objects.ObjectKey]]] = {}
        for name in dict.fromkeys((*_INITIAL_NAMESPACES, *namespaces)):
            self.insert(resources.NAMESPACES, {"metadata": {"name": name}}, "", "kube-apiserver")

    def table(self, resource: resources.Resource) -> dict[objects.ObjectKey, Entry]:
        return self.objects.setdefault((resource.group, resource.plural), {})

    def find(
        self,
        resource: resources.Resource,
        namespace: str | None,
        name: str,
        subresource: str | None = None,
    ) -> Entry:
        if not name:
            raise ValueError(f"{resource}: empty object name")
        if subresource not in (None, "status") or (subresource and not has_status(resource)):
            raise not_found(resource, name, "the server could not find the requested resource")
        entry = self.table(resource).get(objects.ObjectKey(namespace or "", name))
        if entry is None:
            raise not_found(resource, name)
        return entry

    def insert(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        namespace: str,
        manager: str,
        *,
        operation: str = "Update",
    ) -> Entry:
        body = patching.clone(obj)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise invalid("metadata", "must be an object")
        if resource.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise errors.BadRequestError(
                "the namespace of the provided object does not match the namespace sent on "
                "the request", status=400, reason="BadRequest")  # fmt: skip
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        _check_name(resource, name)
        table = self.table(resource)
        key = objects.ObjectKey(namespace if resource.namespaced else "", name)
        if resource.namespaced:
            self.check_namespace(namespace)
        if key in table:
            raise errors.AlreadyExistsError(f'{_what(resource)} "{name}" already exists',
                                            status=409, reason="AlreadyExists")  # fmt: skip
        if meta.get("resourceVersion"):
            raise errors.ServerError("resourceVersion should not be set on objects to be created",
                                     status=500, reason="InternalError")  # fmt: skip
        for server_field in _SERVER_METADATA:
            meta.pop(server_field, None)
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if tracks_generation(resource):
            meta["generation"] = 1
        if has_status(resource):
            body.pop("status", None)
        if resource == resources.NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        body["apiVersion"], body["kind"] = resource.api_version, resource.kind
        _managed(body, resource, manager, operation, None)
        entry = Entry(body, resource, created=time.monotonic())
        if resource in _EVENT_KINDS:
            self._expire_events(table, entry.created)
        table[key] = entry
        self.commit(entry, "ADDED", None)
        return entry

    def _expire_events(self, table: dict[objects.ObjectKey, Entry], now: float) -> None:
        """Delete Events older than `event_ttl`, as the API server's --event-ttl does, so a
        long-running process does not accumulate them. Checked on each new Event; tables keep
        creation order, so the oldest come first."""
        for entry in list(table.values()):
            if now - entry.created < self.event_ttl:
                return
            self.remove(entry, orphan=False)

    def update(
        self,
        entry: Entry,
        body: objects.RawObject,
        *,
        subresource: str | None,
        manager: str,
        operation: str = "Update",
    ) -> objects.RawObject:
        old = entry.obj
        resource = entry.resource
        if subresource == "status":
            new = patching.clone(old)
            new.pop("status", None)
            if body.get("status") is not None:
                new["status"] = patching.clone(body["status"])
        else:
            new = patching.clone(body)
            meta = new.setdefault("metadata", {})
            for server_field in _SERVER_METADATA:
                meta.pop(server_field, None)
                if server_field in old["metadata"]:
                    meta[server_field] = patching.clone(old["metadata"][server_field])
            meta["name"] = old["metadata"]["name"]
            if resource.namespaced:
                meta["namespace"] = old["metadata"]["namespace"]
            if has_status(resource):
                new.pop("status", None)
                if "status" in old:
                    new["status"] = patching.clone(old["status"])
            added = set(objects.finalizers(new)) - set(objects.finalizers(old))
            if objects.is_deleting(old) and added:
                raise invalid(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if _content(new) == _content(old):
            return patching.clone(old)  # a no-op: no write, no new resourceVersion
        if operation != "Apply":
            changed = _changed_fields(old, new)
            for owned in entry.applied.values():
                owned -= changed
        if tracks_generation(resource) and _spec(new) != _spec(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 0) + 1
        _managed(new, resource, manager, operation, subresource)
        if objects.is_deleting(new) and not objects.finalizers(new):
            # The last finalizer went: the object is deleted instead of updated (the DELETED
            # event shows the stored state; the answer, the update at the old version).
            self.remove(entry, orphan=False)
            return patching.clone(new)
        entry.obj = new
        self.commit(entry, "MODIFIED", old)
        return patching.clone(new)

    def delete(self, entry: Entry, *, orphan: bool) -> objects.RawObject:
        obj = entry.obj
        is_namespace = entry.resource == resources.NAMESPACES
        if objects.finalizers(obj) or is_namespace:
            if not objects.is_deleting(obj):
                new = patching.clone(obj)
                new["metadata"]["deletionTimestamp"] = _now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if objects.generation(new) is not None:
                    new["metadata"]["generation"] = int(new["metadata"]["generation"]) + 1
                if is_namespace:
                    new["status"] = {"phase": "Terminating"}
                entry.obj = new
                self.commit(entry, "MODIFIED", obj)
            if is_namespace:
                self.empty_namespace(objects.name(obj))
            return patching.clone(entry.obj)
        self.remove(entry, orphan=orphan)
        return status_success(entry)

    def remove(self, entry: Entry, *, orphan: bool) -> objects.RawObject:
        """Remove the object; returns its last state (at the deletion's resourceVersion)."""
        key = objects.key_of(entry.obj)
        del self.table(entry.resource)[key]
        last = self.commit(entry, "DELETED", entry.obj)
        self.collect(objects.uid(entry.obj), orphan=orphan)
        if key.namespace:
            self.finish_namespace(key.namespace)
        return last

    def collect(self, owner_uid: str, *, orphan: bool) -> None:
        """Delete (or, orphaning, unlink) the objects that `owner_uid` owns."""
        for rid, key in sorted(self.owned.get(owner_uid, ())):
            entry = self.objects.get(rid, {}).get(key)
            if entry is None:
                continue  # gone with an earlier dependent
            if not orphan:
                self.delete(entry, orphan=False)
                continue
            body = patching.clone(entry.obj)
            refs = [r for r in objects.owner_references(body) if r.get("uid") != owner_uid]
            body["metadata"]["ownerReferences"] = refs
            if not refs:
                del body["metadata"]["ownerReferences"]
            self.update(entry, body, subresource=None, manager="kube-controller-manager")

    def empty_namespace(self, namespace: str) -> None:
        for table in list(self.objects.values()):
            for key, entry in list(table.items()):
                if key.namespace == namespace and key in table:
                    self.delete(entry, orphan=False)
        self.finish_namespace(namespace)

    def finish_namespace(self, namespace: str) -> None:
        entry = self.table(resources.NAMESPACES).get(objects.ObjectKey("", namespace))
        if entry is None or not objects.is_deleting(entry.obj):
            return
        if any(key.namespace == namespace for t in self.objects.values() for key in t):
            return
        self.remove(entry, orphan=False)

    def check_namespace(self, namespace: str) -> None:
        entry = self.table(resources.NAMESPACES).get(objects.ObjectKey("", namespace))
        if entry is None:
            raise errors.NotFoundError(f'namespaces "{namespace}" not found', status=404,
                                       reason="NotFound")  # fmt: skip
        if objects.is_deleting(entry.obj):
            raise errors.ForbiddenError(
                f"unable to create new content in namespace {namespace} because it is being "
                f"terminated", status=403, reason="Forbidden")  # fmt: skip

    def commit(
        self, entry: Entry, change: ChangeType, old: objects.RawObject | None
    ) -> objects.RawObject:
        self.version += 1
        self.writes += 1
        if change == "DELETED":
            new = patching.clone(entry.obj)
            new["metadata"]["resourceVersion"] = str(self.version)
        else:
            new = entry.obj
            new["metadata"]["resourceVersion"] = str(self.version)
        rid = (entry.resource.group, entry.resource.plural)
        self._index_owners(rid, old, None if change == "DELETED" else new)
        record = Change(rid, self.version, change, old, new)
        self.history.append(record)
        while len(self.history) > self.history_limit:
            self.compacted = self.history.popleft().version
        for watch in list(self.watches):
            watch.offer(record)
        return new

    def _index_owners(
        self, rid: Rid, old: objects.RawObject | None, new: objects.RawObject | None
    ) -> None:
        before = {str(r.get("uid")) for r in objects.owner_references(old or {})}
        after = {str(r.get("uid")) for r in objects.owner_references(new or {})}
        key = objects.key_of(new or old or {})
        for uid in before - after:
            dependents = self.owned.get(uid)
            if dependents is not None:
                dependents.discard((rid, key))
                if not dependents:
                    del self.owned[uid]
        for uid in after - before:
            self.owned.setdefault(uid, set()).add((rid, key))

    def subscribe(
        self, watch: Subscriber, rid: Rid, since: str
    ) -> builtins.list[Change] | errors.ApiError:
        """Register `watch`; the changes it must see first (or the error it must raise)."""
        if since in ("", "0"):
            table = sorted(self.objects.get(rid, {}).items())
            version = self.version
            backlog = [Change(rid, version, "ADDED", None, e.obj) for _, e in table]
        else:
            try:
                start = int(since)
            except ValueError:
                return errors.BadRequestError(f"invalid resourceVersion {since!r}", status=400,
                                              reason="BadRequest")  # fmt: skip
            if start < self.compacted:
                return errors.GoneError(f"too old resource version: {start} "
                                        f"({self.compacted + 1})", status=410,
                                        reason="Expired")  # fmt: skip
            backlog = [c for c in self.history if c.version > start and c.rid == rid]
        self.watches.add(watch)
        return backlog

    def unsubscribe(self, watch: Subscriber) -> None:
        self.watches.discard(watch)


def applied_fields(
    resource: resources.Resource, obj: objects.RawObject, subresource: str | None
) -> set[patching.Path]:
    paths = set(patching.leaf_paths(obj)) - _IDENTITY
    if subresource == "status":
        return {p for p in paths if p[0] == "status"}
    if has_status(resource):
        return {p for p in paths if p[0] != "status"}
    return paths


def parse_selectors(
    label_selector: str | None, field_selector: str | None
) -> tuple[selectors.Selector, selectors.Selector]:
    try:
        return selectors.parse_labels(label_selector), selectors.parse_fields(field_selector)
    except ValueError as exc:
        raise errors.BadRequestError(str(exc), status=400, reason="BadRequest") from None


def _what(resource: resources.Resource) -> str:
    return str(resource)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(resource: resources.Resource, name: str) -> None:
    if not name:
        raise invalid("metadata.name", "name or generateName is required", "FieldValueRequired")
    pattern = _LABEL if resource == resources.NAMESPACES else _NAME
    limit = 63 if resource == resources.NAMESPACES else 253
    if len(name) > limit or not pattern.fullmatch(name):
        raise invalid(
            "metadata.name",
            f'Invalid value: "{logsafe.shown(name)}": a lowercase RFC 1123 '
            "name must consist of lower case alphanumeric characters, '-' or '.'",
        )


def invalid(path: str, message: str, reason: str = "FieldValueInvalid") -> errors.InvalidError:
    cause = errors.Cause(path, reason, message)
    text = f"{path}: {message}" if path else message
    return errors.InvalidError(text, causes=(cause,), status=422, reason="Invalid")


def conflict(resource: resources.Resource, name: str, detail: str = "") -> errors.ConflictError:
    detail = detail or ("the object has been modified; please apply your changes to the latest "
                        "version and try again")  # fmt: skip
    message = f'Operation cannot be fulfilled on {_what(resource)} "{name}": {detail}'
    return errors.ConflictError(message, status=409, reason="Conflict")


def not_found(resource: resources.Resource, name: str, message: str = "") -> errors.NotFoundError:
    return errors.NotFoundError(message or f'{_what(resource)} "{name}" not found', status=404,
                                reason="NotFound")  # fmt: skip


def _content(obj: objects.RawObject) -> objects.RawObject:
    """What a write must change to count: all but the resourceVersion and managedFields."""
    meta = {k: v for k, v in objects.metadata(obj).items()
            if k not in ("resourceVersion", "managedFields")}  # fmt: skip
    return {**obj, "metadata": meta}


def _spec(obj: objects.RawObject) -> objects.RawObject:
    """What a generation counts: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _changed_fields(old: objects.RawObject, new: objects.RawObject) -> set[patching.Path]:
    paths = set(patching.leaf_paths(old)) | set(patching.leaf_paths(new))
    return {p for p in paths if patching.get_path(old, p) != patching.get_path(new, p)}


def _managed(
    obj: objects.RawObject,
    resource: resources.Resource,
    manager: str,
    operation: str,
    subresource: str | None,
) -> None:
    """Record in metadata.managedFields that `manager` wrote (the entry the server keeps, without
    the field set)."""
    entries: builtins.list[dict[str, Any]] = list(obj["metadata"].get("managedFields") or ())
    entry: dict[str, Any] = {"manager": manager, "operation": operation,
                             "apiVersion": resource.api_version, "time": _now(),
                             "fieldsType": "FieldsV1"}  # fmt: skip
    if subresource:
        entry["subresource"] = subresource
    same = (manager, operation, subresource)
    kept = [e for e in entries
            if (e.get("manager"), e.get("operation"), e.get("subresource")) != same]  # fmt: skip
    obj["metadata"]["managedFields"] = [*kept, entry]


def status_success(entry: Entry) -> objects.RawObject:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": objects.name(entry.obj),
                    **({"group": entry.resource.group} if entry.resource.group else {}),
                    "kind": entry.resource.plural, "uid": objects.uid(entry.obj)},
    }  # fmt: skip
