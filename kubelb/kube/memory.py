"""An API server in memory: `MemoryClient` has `client.Client`'s surface (`interface.KubeApi`)
over a dict, so informers, writers, event recorders, leader election and controllers run
without a cluster (standalone mode, fast tests).

Semantics kept from kube-apiserver, because the controllers rely on them:

- One global resourceVersion, incremented by every write; a list carries the current one. A
  write that changes nothing is no write (the resourceVersion stays).
- `metadata.generation` starts at 1 and grows when anything outside metadata and status changes
  (and when deletion starts), for every kind except the core, discovery, coordination, events
  and RBAC groups, which do not track it (as there).
- Kinds with a status subresource (every kind outside those groups, and core Services,
  Namespaces, Nodes, Pods): writes to the object ignore `status`, writes to `status` ignore the
  rest; `create` drops `status`.
- `replace` with a stale `metadata.resourceVersion` (or a patch that names one) raises
  `ConflictError`; custom resources need one. Errors are the `kubelb.kube.errors` the real
  client raises: 404 `NotFoundError`, 409 `AlreadyExistsError`/`ConflictError`, 422
  `InvalidError` (bad names, a failed JSON-patch test), 400 `BadRequestError`, 410 `GoneError`.
- Namespaced objects need their Namespace (404 otherwise; 403 while it terminates). "default",
  "kube-system", "kube-public" and "kube-node-lease" exist from the start.
- `delete` of an object with finalizers sets `deletionTimestamp` (once); the object goes when
  the last finalizer is removed. Deleting an object deletes what it owns (ownerReferences by
  uid; `propagation_policy="Orphan"` drops the references instead), at once rather than by a
  garbage collector. Deleting a Namespace deletes its content and removes the Namespace when
  it is empty.
- Watches deliver ADDED/MODIFIED/DELETED in resourceVersion order; an object moving into or out
  of a watch's selectors is ADDED or DELETED for it. A watch without a resourceVersion (or "0")
  starts with an ADDED per existing object. The last `history` changes are kept: a watch from
  an older resourceVersion raises `GoneError` (410), and the informer relists. A watch sends a
  BOOKMARK every `bookmark_interval` seconds and just before it ends after `timeout_seconds`.
- Server-side apply keeps, per field manager, the fields it applied (maps descended, lists
  atomic): applying again without a field removes it unless another manager applied it too;
  a write by other means takes over the fields it changes. `force=False` conflicts (409) with
  another applier's different value.
- Strategic merge patches are approximated (`patching.strategic_merge_patch`) and refused with
  415 on custom resources, like there.

Not modelled: schema validation and defaulting (an invalid LoadBalancer is stored as given),
admission, paging (`page_size` is ignored: one page), TokenRequest (`create_token` raises a
501 `ServerError`) and `request`/`open` (no HTTP here).

Every object handed out is a fresh copy: changing it changes nothing stored.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import copy
import datetime
import enum
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from kubelb.kube import client, errors, objects, patching, resources, selectors

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
Rid = tuple[str, str]  # (group, plural): one kind, whatever Resource instance names it

_UNTRACKED_GROUPS = frozenset(
    {"", "discovery.k8s.io", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io"}
)
_CORE_WITH_STATUS = frozenset({"Service", "Namespace", "Node", "Pod"})
_BUILTIN_GROUPS = _UNTRACKED_GROUPS | {"apps", "batch", "networking.k8s.io", "policy"}
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
class _Entry:
    obj: objects.RawObject
    resource: resources.Resource
    applied: dict[str, set[patching.Path]] = field(default_factory=dict)  # manager -> fields


@dataclass(frozen=True, slots=True)
class _Change:
    rid: Rid
    version: int
    type: ChangeType
    old: objects.RawObject | None  # before the change (None for ADDED)
    new: objects.RawObject  # after it; for DELETED the last state, at the deletion's version


class _Mark(enum.Enum):
    INITIAL_END = "initial-events-end"


_INITIAL_END = _Mark.INITIAL_END


@dataclass(slots=True)
class _State:
    """What every client on one in-memory server shares."""

    history_limit: int
    bookmark_interval: float
    version: int = 0
    compacted: int = 0  # newest version dropped from the history
    writes: int = 0
    history: collections.deque[_Change] = field(default_factory=collections.deque)
    objects: dict[Rid, dict[objects.ObjectKey, _Entry]] = field(default_factory=dict)
    watches: set[MemoryWatch] = field(default_factory=set)


class MemoryClient:
    """An in-memory API server with its client. `history` bounds the changes kept for watches
    that resume; `bookmark_interval` is how often an idle watch gets a BOOKMARK; `namespaces`
    exist from the start, besides the four every cluster has."""

    def __init__(
        self,
        *,
        field_manager: str = "kubelb",
        history: int = 10000,
        bookmark_interval: float = 60.0,
        namespaces: Iterable[str] = (),
    ) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.field_manager = field_manager
        self._state = _State(history_limit=history, bookmark_interval=bookmark_interval)
        for name in dict.fromkeys((*_INITIAL_NAMESPACES, *namespaces)):
            self._insert(resources.NAMESPACES, {"metadata": {"name": name}}, "", "kube-apiserver")

    @property
    def resource_version(self) -> str:
        """The current (newest) resourceVersion."""
        return str(self._state.version)

    @property
    def writes(self) -> int:
        """Changes committed so far, by every client of this server."""
        return self._state.writes

    @property
    def bookmark_interval(self) -> float:
        return self._state.bookmark_interval

    def with_manager(self, field_manager: str) -> MemoryClient:
        """Another client of the same server, writing as `field_manager`."""
        other = copy.copy(self)
        other.field_manager = field_manager
        return other

    async def close(self) -> None:
        """End every open watch (their streams stop as if the server timed them out)."""
        for watch in list(self._state.watches):
            watch.end()

    async def connection(self) -> client.Connection:
        return client.Connection("memory://kubelb", b"")

    # --- reads ---
    async def get(
        self, resource: resources.Resource, name: str, *, namespace: str | None = None
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        entry = self._find(resource, _ns(resource, namespace), name)
        return copy.deepcopy(entry.obj)

    async def list(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> client.ObjectList:
        await asyncio.sleep(0)
        labels, fields = _selectors(label_selector, field_selector)
        items = [
            copy.deepcopy(entry.obj)
            for key, entry in sorted(self._table(resource).items())
            if (not namespace or key.namespace == namespace)
            and labels.matches(entry.obj)
            and fields.matches(entry.obj)
        ]
        return client.ObjectList(items, self.resource_version)

    def watch(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> MemoryWatch:
        return MemoryWatch(
            self, resource, namespace=namespace, resource_version=resource_version,
            label_selector=label_selector, field_selector=field_selector,
            timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks,
        )  # fmt: skip

    # --- writes ---
    async def create(
        self, resource: resources.Resource, obj: objects.RawObject, *, namespace: str | None = None
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        ns = _ns(resource, namespace or objects.namespace(obj))
        entry = self._insert(resource, obj, ns or "", self.field_manager)
        return copy.deepcopy(entry.obj)

    async def replace(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        subresource: str | None = None,
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        key = objects.key_of(obj)
        entry = self._find(resource, _ns(resource, key.namespace), key.name, subresource)
        version = objects.resource_version(obj)
        if not version and is_custom(resource):
            raise _invalid("metadata.resourceVersion", "must be specified for an update")
        if version and version != objects.resource_version(entry.obj):
            raise _conflict(resource, key.name)
        if objects.uid(obj) and objects.uid(obj) != objects.uid(entry.obj):
            raise _conflict(resource, key.name, "the UID in the object does not match")
        return self._update(entry, obj, subresource=subresource, manager=self.field_manager)

    async def replace_status(
        self, resource: resources.Resource, obj: objects.RawObject
    ) -> objects.RawObject:
        return await self.replace(resource, obj, subresource="status")

    async def patch(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: client.PatchType = client.PatchType.MERGE,
        subresource: str | None = None,
    ) -> objects.RawObject:
        if patch_type is client.PatchType.APPLY:
            body = {**patch, "metadata": {**objects.metadata(patch), "name": name}}
            if namespace:
                body["metadata"]["namespace"] = namespace
            return await self.apply(resource, body, subresource=subresource)
        await asyncio.sleep(0)
        entry = self._find(resource, _ns(resource, namespace), name, subresource)
        current = entry.obj
        try:
            if patch_type is client.PatchType.JSON:
                patched = patching.json_patch(current, patch)
            elif not isinstance(patch, dict):
                raise errors.BadRequestError("a merge patch is a JSON object", status=400,
                                             reason="BadRequest")  # fmt: skip
            elif patch_type is client.PatchType.STRATEGIC:
                if is_custom(resource):
                    raise errors.ApiError(f"strategic merge patch is not supported for "
                                          f"{resource}", status=415,
                                          reason="UnsupportedMediaType")  # fmt: skip
                patched = patching.strategic_merge_patch(current, patch)
            else:
                patched = patching.merge_patch(current, patch)
        except patching.PatchError as exc:
            raise _invalid("", str(exc)) from None
        if not isinstance(patched, dict):
            raise _invalid("", "the patched object is not an object")
        if objects.resource_version(patched) != objects.resource_version(current):
            raise _conflict(resource, name)  # the patch named another resourceVersion
        if objects.key_of(patched) != objects.key_of(current):
            raise errors.BadRequestError("a patch cannot change the name or namespace",
                                         status=400, reason="BadRequest")  # fmt: skip
        return self._update(entry, patched, subresource=subresource, manager=self.field_manager)

    async def patch_status(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: client.PatchType = client.PatchType.MERGE,
    ) -> objects.RawObject:
        return await self.patch(resource, name, patch, namespace=namespace,
                                patch_type=patch_type, subresource="status")  # fmt: skip

    async def apply(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        force: bool = True,
        subresource: str | None = None,
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        key = objects.key_of(obj)
        ns = _ns(resource, key.namespace) or ""
        manager = self.field_manager
        entry = self._table(resource).get(objects.ObjectKey(ns, key.name))
        if entry is None:
            if subresource:
                raise _not_found(resource, key.name)
            entry = self._insert(resource, obj, ns, manager, operation="Apply")
            entry.applied[manager] = self._applied_fields(entry.resource, obj, subresource)
            return copy.deepcopy(entry.obj)
        version = objects.resource_version(obj)
        if version and version != objects.resource_version(entry.obj):
            raise _conflict(resource, key.name)
        wanted = self._applied_fields(resource, obj, subresource)
        result = copy.deepcopy(entry.obj)
        taken: dict[str, set[patching.Path]] = {}
        for other, owned in entry.applied.items():
            if other == manager:
                continue
            clash = {p for p in owned & wanted
                     if patching.get_path(result, p) != patching.get_path(obj, p)}  # fmt: skip
            if clash and not force:
                fields = ", ".join(".".join(p) for p in sorted(clash))
                raise _conflict(resource, key.name, f"Apply failed with conflicts: conflict "
                                f"with {other!r}: {fields}")  # fmt: skip
            taken[other] = clash
        shared = set().union(*(o for m, o in entry.applied.items() if m != manager))
        for path in entry.applied.get(manager, set()) - wanted - shared:
            patching.delete_path(result, path)
        for path in wanted:
            patching.set_path(result, path, patching.get_path(obj, path))
        for other, clash in taken.items():
            entry.applied[other] -= clash
        entry.applied[manager] = wanted
        return self._update(entry, result, subresource=subresource, manager=manager,
                            operation="Apply")  # fmt: skip

    async def delete(
        self,
        resource: resources.Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        entry = self._find(resource, _ns(resource, namespace), name)
        if uid and uid != objects.uid(entry.obj):
            raise _conflict(resource, name, f"Precondition failed: UID in precondition: {uid}, "
                            f"UID in object meta: {objects.uid(entry.obj)}")  # fmt: skip
        if resource_version and resource_version != objects.resource_version(entry.obj):
            raise _conflict(resource, name, f"Precondition failed: ResourceVersion in "
                            f"precondition: {resource_version}, ResourceVersion in object meta: "
                            f"{objects.resource_version(entry.obj)}")  # fmt: skip
        return self._delete(entry, orphan=propagation_policy == "Orphan")

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        audiences: Iterable[str] = (),
    ) -> client.Token:
        raise errors.ServerError("the in-memory API server issues no tokens", status=501,
                                 reason="NotImplemented")  # fmt: skip

    # --- the store ---
    def _table(self, resource: resources.Resource) -> dict[objects.ObjectKey, _Entry]:
        return self._state.objects.setdefault((resource.group, resource.plural), {})

    def _find(
        self,
        resource: resources.Resource,
        namespace: str | None,
        name: str,
        subresource: str | None = None,
    ) -> _Entry:
        if not name:
            raise ValueError(f"{resource}: empty object name")
        if subresource not in (None, "status") or (subresource and not has_status(resource)):
            raise _not_found(resource, name, "the server could not find the requested resource")
        entry = self._table(resource).get(objects.ObjectKey(namespace or "", name))
        if entry is None:
            raise _not_found(resource, name)
        return entry

    def _insert(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        namespace: str,
        manager: str,
        *,
        operation: str = "Update",
    ) -> _Entry:
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _invalid("metadata", "must be an object")
        if resource.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise errors.BadRequestError(
                "the namespace of the provided object does not match the namespace sent on "
                "the request", status=400, reason="BadRequest")  # fmt: skip
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        _check_name(resource, name)
        table = self._table(resource)
        key = objects.ObjectKey(namespace if resource.namespaced else "", name)
        if resource.namespaced:
            self._check_namespace(namespace)
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
        entry = _Entry(body, resource)
        table[key] = entry
        self._commit(entry, "ADDED", None)
        return entry

    def _update(
        self,
        entry: _Entry,
        body: objects.RawObject,
        *,
        subresource: str | None,
        manager: str,
        operation: str = "Update",
    ) -> objects.RawObject:
        old = entry.obj
        resource = entry.resource
        if subresource == "status":
            new = copy.deepcopy(old)
            new.pop("status", None)
            if body.get("status") is not None:
                new["status"] = copy.deepcopy(body["status"])
        else:
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            for server_field in _SERVER_METADATA:
                meta.pop(server_field, None)
                if server_field in old["metadata"]:
                    meta[server_field] = copy.deepcopy(old["metadata"][server_field])
            meta["name"] = old["metadata"]["name"]
            if resource.namespaced:
                meta["namespace"] = old["metadata"]["namespace"]
            if has_status(resource):
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
            added = set(objects.finalizers(new)) - set(objects.finalizers(old))
            if objects.is_deleting(old) and added:
                raise _invalid(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                )
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if _content(new) == _content(old):
            return copy.deepcopy(old)  # a no-op: no write, no new resourceVersion
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
            self._remove(entry, orphan=False)
            return copy.deepcopy(new)
        entry.obj = new
        self._commit(entry, "MODIFIED", old)
        return copy.deepcopy(new)

    def _delete(self, entry: _Entry, *, orphan: bool) -> objects.RawObject:
        obj = entry.obj
        is_namespace = entry.resource == resources.NAMESPACES
        if objects.finalizers(obj) or is_namespace:
            if not objects.is_deleting(obj):
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = _now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if objects.generation(new) is not None:
                    new["metadata"]["generation"] = int(new["metadata"]["generation"]) + 1
                if is_namespace:
                    new["status"] = {"phase": "Terminating"}
                entry.obj = new
                self._commit(entry, "MODIFIED", obj)
            if is_namespace:
                self._empty_namespace(objects.name(obj))
            return copy.deepcopy(entry.obj)
        self._remove(entry, orphan=orphan)
        return _status_success(entry)

    def _remove(self, entry: _Entry, *, orphan: bool) -> objects.RawObject:
        """Remove the object; returns its last state (at the deletion's resourceVersion)."""
        key = objects.key_of(entry.obj)
        del self._table(entry.resource)[key]
        last = self._commit(entry, "DELETED", entry.obj)
        self._collect(objects.uid(entry.obj), orphan=orphan)
        if key.namespace:
            self._finish_namespace(key.namespace)
        return last

    def _collect(self, owner_uid: str, *, orphan: bool) -> None:
        """Delete (or, orphaning, unlink) the objects that `owner_uid` owns."""
        owned = [
            entry
            for table in self._state.objects.values()
            for entry in table.values()
            if owner_uid in {ref.get("uid") for ref in objects.owner_references(entry.obj)}
        ]
        for entry in owned:
            if not orphan:
                if objects.key_of(entry.obj) in self._table(entry.resource):
                    self._delete(entry, orphan=False)
                continue
            body = copy.deepcopy(entry.obj)
            refs = [r for r in objects.owner_references(body) if r.get("uid") != owner_uid]
            body["metadata"]["ownerReferences"] = refs
            if not refs:
                del body["metadata"]["ownerReferences"]
            self._update(entry, body, subresource=None, manager="kube-controller-manager")

    def _empty_namespace(self, namespace: str) -> None:
        for table in list(self._state.objects.values()):
            for key, entry in list(table.items()):
                if key.namespace == namespace and key in table:
                    self._delete(entry, orphan=False)
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        entry = self._table(resources.NAMESPACES).get(objects.ObjectKey("", namespace))
        if entry is None or not objects.is_deleting(entry.obj):
            return
        if any(key.namespace == namespace for t in self._state.objects.values() for key in t):
            return
        self._remove(entry, orphan=False)

    def _check_namespace(self, namespace: str) -> None:
        entry = self._table(resources.NAMESPACES).get(objects.ObjectKey("", namespace))
        if entry is None:
            raise errors.NotFoundError(f'namespaces "{namespace}" not found', status=404,
                                       reason="NotFound")  # fmt: skip
        if objects.is_deleting(entry.obj):
            raise errors.ForbiddenError(
                f"unable to create new content in namespace {namespace} because it is being "
                f"terminated", status=403, reason="Forbidden")  # fmt: skip

    def _applied_fields(
        self, resource: resources.Resource, obj: objects.RawObject, subresource: str | None
    ) -> set[patching.Path]:
        paths = set(patching.leaf_paths(obj)) - _IDENTITY
        if subresource == "status":
            return {p for p in paths if p[0] == "status"}
        if has_status(resource):
            return {p for p in paths if p[0] != "status"}
        return paths

    def _commit(
        self, entry: _Entry, change: ChangeType, old: objects.RawObject | None
    ) -> objects.RawObject:
        self._state.version += 1
        self._state.writes += 1
        if change == "DELETED":
            new = copy.deepcopy(entry.obj)
            new["metadata"]["resourceVersion"] = str(self._state.version)
        else:
            new = entry.obj
            new["metadata"]["resourceVersion"] = str(self._state.version)
        rid = (entry.resource.group, entry.resource.plural)
        record = _Change(rid, self._state.version, change, old, new)
        self._state.history.append(record)
        while len(self._state.history) > self._state.history_limit:
            self._state.compacted = self._state.history.popleft().version
        for watch in list(self._state.watches):
            watch.offer(record)
        return new

    # --- for MemoryWatch ---
    def _open(self, watch: MemoryWatch, since: str) -> builtins.list[_Change] | errors.ApiError:
        """Register `watch`; the changes it must see first (or the error it must raise)."""
        if since in ("", "0"):
            table = sorted(self._table(watch.resource).items())
            version = self._state.version
            backlog = [_Change(watch.rid, version, "ADDED", None, e.obj) for _, e in table]
        else:
            try:
                start = int(since)
            except ValueError:
                return errors.BadRequestError(f"invalid resourceVersion {since!r}", status=400,
                                              reason="BadRequest")  # fmt: skip
            if start < self._state.compacted:
                return errors.GoneError(f"too old resource version: {start} "
                                        f"({self._state.compacted + 1})", status=410,
                                        reason="Expired")  # fmt: skip
            backlog = [c for c in self._state.history if c.version > start and c.rid == watch.rid]
        self._state.watches.add(watch)
        return backlog

    def _close(self, watch: MemoryWatch) -> None:
        self._state.watches.discard(watch)


class MemoryWatch:
    """One watch on a `MemoryClient` (`interface.EventStream`)."""

    def __init__(
        self,
        store: MemoryClient,
        resource: resources.Resource,
        *,
        namespace: str | None,
        resource_version: str,
        label_selector: str | None,
        field_selector: str | None,
        timeout_seconds: int,
        allow_bookmarks: bool,
    ) -> None:
        self.resource = resource
        self.rid: Rid = (resource.group, resource.plural)
        self._store = store
        self._namespace = namespace or ""
        self._since = resource_version
        self._label_selector, self._field_selector = label_selector, field_selector
        self._labels = self._fields = selectors.EVERYTHING
        self._timeout = timeout_seconds
        self._bookmarks = allow_bookmarks
        self._queue: asyncio.Queue[_Change | _Mark | None] = asyncio.Queue()
        self._delivered = resource_version  # version of the last change taken off the queue
        self._error: errors.ApiError | None = None
        self._deadline = 0.0
        self._next_bookmark = 0.0
        self._ended = False
        self._entered = False

    async def __aenter__(self) -> Self:
        self._labels, self._fields = _selectors(self._label_selector, self._field_selector)
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._timeout
        self._next_bookmark = loop.time() + self._store.bookmark_interval
        if self._since in ("", "0"):
            self._delivered = self._store.resource_version  # the initial events' version
        opened = self._store._open(self, self._since)
        if isinstance(opened, errors.ApiError):
            self._error = opened
        else:
            for change in opened:
                self.offer(change)
            if self._since == "" and self._bookmarks:
                # As the real server: the initial ADDED events end with a marked BOOKMARK.
                self._queue.put_nowait(_INITIAL_END)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store._close(self)
        self._entered = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> objects.WatchEvent:
        if not self._entered:
            raise RuntimeError("use `async with client.watch(...)` before iterating")
        if self._error is not None:
            error, self._error = self._error, None
            self._ended = True
            raise error
        loop = asyncio.get_running_loop()
        while True:
            if self._ended and self._queue.empty():
                raise StopAsyncIteration
            wake = min(self._deadline, self._next_bookmark) if self._bookmarks else self._deadline
            try:
                async with asyncio.timeout_at(wake):
                    change = await self._queue.get()
            except TimeoutError:
                now = loop.time()
                if now >= self._deadline:
                    self._ended = True
                if self._bookmarks:
                    self._next_bookmark = now + self._store.bookmark_interval
                    return self._bookmark()
                continue
            if change is None:
                continue  # `end()`: the next round stops
            if change is _INITIAL_END:
                return self._bookmark({"k8s.io/initial-events-end": "true"})
            self._delivered = str(change.version)
            event = self._event(change)
            if event is not None:
                return event

    def offer(self, change: _Change) -> None:
        if change.rid == self.rid and not self._ended:
            self._queue.put_nowait(change)

    def end(self) -> None:
        self._ended = True
        self._queue.put_nowait(None)

    def _selected(self, obj: objects.RawObject | None) -> bool:
        if obj is None:
            return False
        if self._namespace and objects.namespace(obj) != self._namespace:
            return False
        return self._labels.matches(obj) and self._fields.matches(obj)

    def _event(self, change: _Change) -> objects.WatchEvent | None:
        now, before = self._selected(change.new), self._selected(change.old)
        kind: ChangeType
        if change.type == "DELETED":
            if not now:
                return None
            kind = "DELETED"
        elif now:
            kind = "MODIFIED" if before and change.type == "MODIFIED" else "ADDED"
        elif before:
            kind = "DELETED"
        else:
            return None
        return {"type": kind, "object": copy.deepcopy(change.new)}

    def _bookmark(self, annotations: dict[str, str] | None = None) -> objects.WatchEvent:
        # Every change was queued when it was made, and whatever is still queued is newer
        # than what was delivered: resuming from the version of the last delivered change
        # (or the watch's start) is safe. Bookmarks sent at an empty queue use the newest.
        version = self._store.resource_version if self._queue.empty() else self._delivered
        meta: dict[str, Any] = {"resourceVersion": version}
        if annotations:
            meta["annotations"] = annotations
        obj = {"apiVersion": self.resource.api_version, "kind": self.resource.kind,
               "metadata": meta}  # fmt: skip
        return {"type": "BOOKMARK", "object": obj}


# --- helpers ---
def _ns(resource: resources.Resource, namespace: str | None) -> str | None:
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource} is namespaced: a namespace is required")
    return namespace if resource.namespaced else None


def _selectors(
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
        raise _invalid("metadata.name", "name or generateName is required", "FieldValueRequired")
    pattern = _LABEL if resource == resources.NAMESPACES else _NAME
    limit = 63 if resource == resources.NAMESPACES else 253
    if len(name) > limit or not pattern.fullmatch(name):
        raise _invalid(
            "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 '
            "name must consist of lower case alphanumeric characters, '-' or '.'",
        )


def _invalid(path: str, message: str, reason: str = "FieldValueInvalid") -> errors.InvalidError:
    cause = errors.Cause(path, reason, message)
    text = f"{path}: {message}" if path else message
    return errors.InvalidError(text, causes=(cause,), status=422, reason="Invalid")


def _conflict(resource: resources.Resource, name: str, detail: str = "") -> errors.ConflictError:
    detail = detail or ("the object has been modified; please apply your changes to the latest "
                        "version and try again")  # fmt: skip
    message = f'Operation cannot be fulfilled on {_what(resource)} "{name}": {detail}'
    return errors.ConflictError(message, status=409, reason="Conflict")


def _not_found(resource: resources.Resource, name: str, message: str = "") -> errors.NotFoundError:
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


def _status_success(entry: _Entry) -> objects.RawObject:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": objects.name(entry.obj),
                    **({"group": entry.resource.group} if entry.resource.group else {}),
                    "kind": entry.resource.plural, "uid": objects.uid(entry.obj)},
    }  # fmt: skip
