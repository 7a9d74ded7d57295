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

Every object handed out is a fresh copy: changing it changes nothing stored. The server side
lives in `memstore` (objects and write rules) and `memwatch` (watches); `patching` and
`selectors` hold the algorithms.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from typing import Any

from kubelb.kube import client, errors, memstore, memwatch, objects, patching, resources


class MemoryClient:
    """An in-memory API server with its client. `history` bounds the changes kept for watches
    that resume; `bookmark_interval` is how often an idle watch gets a BOOKMARK; Events are
    deleted `event_ttl` seconds after their creation; `namespaces` exist from the start, besides
    the four every cluster has."""

    def __init__(
        self,
        *,
        field_manager: str = "kubelb",
        history: int = 10000,
        bookmark_interval: float = 60.0,
        event_ttl: float = 3600.0,
        namespaces: Iterable[str] = (),
    ) -> None:
        self.field_manager = field_manager
        self._server = memstore.Server(
            history=history, bookmark_interval=bookmark_interval, event_ttl=event_ttl,
            namespaces=namespaces,
        )  # fmt: skip

    @property
    def resource_version(self) -> str:
        """The current (newest) resourceVersion."""
        return str(self._server.version)

    @property
    def writes(self) -> int:
        """Changes committed so far, by every client of this server."""
        return self._server.writes

    @property
    def bookmark_interval(self) -> float:
        return self._server.bookmark_interval

    def with_manager(self, field_manager: str) -> MemoryClient:
        """Another client of the same server, writing as `field_manager`."""
        other = copy.copy(self)
        other.field_manager = field_manager
        return other

    async def close(self) -> None:
        """End every open watch (their streams stop as if the server timed them out)."""
        for watch in list(self._server.watches):
            watch.end()

    async def connection(self) -> client.Connection:
        return client.Connection("memory://kubelb", b"")

    # --- reads ---
    async def get(
        self, resource: resources.Resource, name: str, *, namespace: str | None = None
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        entry = self._server.find(resource, _ns(resource, namespace), name)
        return patching.clone(entry.obj)

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
        labels, fields = memstore.parse_selectors(label_selector, field_selector)
        items = [
            patching.clone(entry.obj)
            for key, entry in sorted(self._server.table(resource).items())
            if (not namespace or not resource.namespaced or key.namespace == namespace)
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
    ) -> memwatch.MemoryWatch:
        return memwatch.MemoryWatch(
            self._server, resource, namespace=namespace, resource_version=resource_version,
            label_selector=label_selector, field_selector=field_selector,
            timeout_seconds=timeout_seconds, allow_bookmarks=allow_bookmarks,
        )  # fmt: skip

    # --- writes ---
    async def create(
        self, resource: resources.Resource, obj: objects.RawObject, *, namespace: str | None = None
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        ns = _ns(resource, namespace or objects.namespace(obj))
        entry = self._server.insert(resource, obj, ns or "", self.field_manager)
        return patching.clone(entry.obj)

    async def replace(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        subresource: str | None = None,
    ) -> objects.RawObject:
        await asyncio.sleep(0)
        key = objects.key_of(obj)
        entry = self._server.find(resource, _ns(resource, key.namespace), key.name, subresource)
        version = objects.resource_version(obj)
        if not version and memstore.is_custom(resource):
            raise memstore.invalid("metadata.resourceVersion", "must be specified for an update")
        if version and version != objects.resource_version(entry.obj):
            raise memstore.conflict(resource, key.name)
        if objects.uid(obj) and objects.uid(obj) != objects.uid(entry.obj):
            raise memstore.conflict(resource, key.name, "the UID in the object does not match")
        return self._server.update(entry, obj, subresource=subresource, manager=self.field_manager)

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
        entry = self._server.find(resource, _ns(resource, namespace), name, subresource)
        current = entry.obj
        try:
            if patch_type is client.PatchType.JSON:
                patched = patching.json_patch(current, patch)
            elif not isinstance(patch, dict):
                raise errors.BadRequestError("a merge patch is a JSON object", status=400,
                                             reason="BadRequest")  # fmt: skip
            elif patch_type is client.PatchType.STRATEGIC:
                if memstore.is_custom(resource):
                    raise errors.ApiError(f"strategic merge patch is not supported for "
                                          f"{resource}", status=415,
                                          reason="UnsupportedMediaType")  # fmt: skip
                patched = patching.strategic_merge_patch(current, patch)
            else:
                patched = patching.merge_patch(current, patch)
        except patching.PatchError as exc:
            raise memstore.invalid("", str(exc)) from None
        if not isinstance(patched, dict):
            raise memstore.invalid("", "the patched object is not an object")
        if objects.resource_version(patched) != objects.resource_version(current):
            raise memstore.conflict(resource, name)  # the patch named another resourceVersion
        if objects.key_of(patched) != objects.key_of(current):
            raise errors.BadRequestError("a patch cannot change the name or namespace",
                                         status=400, reason="BadRequest")  # fmt: skip
        return self._server.update(
            entry, patched, subresource=subresource, manager=self.field_manager
        )

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
        entry = self._server.table(resource).get(objects.ObjectKey(ns, key.name))
        if entry is None:
            if subresource:
                raise memstore.not_found(resource, key.name)
            entry = self._server.insert(resource, obj, ns, manager, operation="Apply")
            entry.applied[manager] = memstore.applied_fields(entry.resource, obj, subresource)
            return patching.clone(entry.obj)
        version = objects.resource_version(obj)
        if version and version != objects.resource_version(entry.obj):
            raise memstore.conflict(resource, key.name)
        wanted = memstore.applied_fields(resource, obj, subresource)
        result = patching.clone(entry.obj)
        taken: dict[str, set[patching.Path]] = {}
        for other, owned in entry.applied.items():
            if other == manager:
                continue
            clash = {p for p in owned & wanted
                     if patching.get_path(result, p) != patching.get_path(obj, p)}  # fmt: skip
            if clash and not force:
                fields = ", ".join(".".join(p) for p in sorted(clash))
                detail = f"Apply failed with conflicts: conflict with {other!r}: {fields}"
                raise memstore.conflict(resource, key.name, detail)
            taken[other] = clash
        shared = set().union(*(o for m, o in entry.applied.items() if m != manager))
        for path in entry.applied.get(manager, set()) - wanted - shared:
            patching.delete_path(result, path)
        for path in wanted:
            patching.set_path(result, path, patching.get_path(obj, path))
        for other, clash in taken.items():
            entry.applied[other] -= clash
        entry.applied[manager] = wanted
        return self._server.update(entry, result, subresource=subresource, manager=manager,
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
        entry = self._server.find(resource, _ns(resource, namespace), name)
        if uid and uid != objects.uid(entry.obj):
            detail = f"UID in precondition: {uid}, UID in object meta: {objects.uid(entry.obj)}"
            raise memstore.conflict(resource, name, f"Precondition failed: {detail}")
        if resource_version and resource_version != objects.resource_version(entry.obj):
            raise memstore.conflict(resource, name, f"Precondition failed: ResourceVersion in "
                            f"precondition: {resource_version}, ResourceVersion in object meta: "
                            f"{objects.resource_version(entry.obj)}")  # fmt: skip
        return self._server.delete(entry, orphan=propagation_policy == "Orphan")

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


def _ns(resource: resources.Resource, namespace: str | None) -> str | None:
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource} is namespaced: a namespace is required")
    return namespace if resource.namespaced else None
