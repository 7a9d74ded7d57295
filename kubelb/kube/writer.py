"""Writes that change only what really changed: status updates and owned objects.

Status (`update_status`, `set_status`): start from the cached object (or a fresh read), let the
mutator compute the new status from a copy of the current one, skip the write entirely when the
two are equivalent (lists compared without regard to order, empty values equal to absent: KubeLB
#93), else PUT the status subresource with the object's resourceVersion as precondition; on 409
re-read and repeat, `max_attempts` times at most. Mutate only the fields you own: the status
handed to the mutator keeps the others.

Owned objects (`ensure`): compare the desired object with the live one on the fields it sets,
labels and annotations as subsets (third-party keys survive), ownerReferences by uid, and every
other top-level field (spec, data, rules...) as "desired is contained in live" (so server
defaults do not count as differences). Only a real difference is written, by server-side apply
as the client's field manager: it creates the object when absent and removes fields we set
before but no longer desire. Write canonical values (e.g. Secret `data`, not `stringData`;
quantities as the server prints them) or they always look different.

Finalizers (`add_finalizer`, `remove_finalizer`) and `delete` complete the set.
"""

from __future__ import annotations

import copy
import enum
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kubelb.kube import errors, interface, objects, resources

logger = logging.getLogger(__name__)


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = _Unset.UNSET

StatusMutator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Written:
    """The object after the call (the live one when nothing was written) and whether a write
    happened."""

    obj: objects.RawObject | None
    changed: bool


class Writer:
    def __init__(self, kube: interface.KubeApi, *, max_attempts: int = 5) -> None:
        self.client = kube
        self.max_attempts = max_attempts
        # Per namespace ("" for cluster-scoped objects): a shared API server has other
        # namespaces' work in the totals.
        self.writes_in: Counter[str] = Counter()  # API writes made (tests and metrics)
        self.skipped_in: Counter[str] = Counter()  # writes avoided because nothing changed
        self.conflicts = 0  # 409s answered by re-reading

    @property
    def writes(self) -> int:
        return self.writes_in.total()

    @property
    def skipped(self) -> int:
        return self.skipped_in.total()

    async def set_status(
        self,
        resource: resources.Resource,
        key: objects.ObjectKey,
        status: dict[str, Any],
        *,
        current: objects.RawObject | None = None,
    ) -> Written:
        """Make the whole status `status`."""
        return await self.update_status(resource, key, lambda _: status, current=current)

    async def update_status(
        self,
        resource: resources.Resource,
        key: objects.ObjectKey,
        mutate: StatusMutator,
        *,
        current: objects.RawObject | None = None,
    ) -> Written:
        """Status := mutate(copy of the current status); skipped when equivalent. Raises
        NotFoundError when the object is gone, ConflictError after `max_attempts` conflicts."""
        obj = current if current is not None else await self._get(resource, key)
        for attempt in range(1, self.max_attempts + 1):
            old_status = obj.get("status") or {}
            new_status = mutate(copy.deepcopy(old_status))
            if equivalent(old_status, new_status):
                self._skipped(key)
                return Written(obj, False)
            try:
                updated = await self.client.replace_status(resource, {**obj, "status": new_status})
            except errors.ConflictError:
                self.conflicts += 1
                if attempt == self.max_attempts:
                    raise
                logger.debug("status of %s %s: conflict, re-reading", resource.kind, key)
                obj = await self._get(resource, key)
                continue
            self._wrote(key)
            return Written(updated, True)
        raise AssertionError("unreachable")

    async def ensure(
        self,
        resource: resources.Resource,
        desired: objects.RawObject,
        *,
        current: objects.RawObject | _Unset | None = UNSET,
    ) -> Written:
        """Create or update `desired` when it differs from `current` (the cached object, None
        when known absent; read from the server when not given)."""
        key = objects.key_of(desired)
        live = await self._find(resource, key) if current is UNSET else current
        if live is not None and covers(live, desired):
            self._skipped(key)
            return Written(live, False)
        applied = await self.client.apply(resource, desired, force=True)
        self._wrote(key)
        logger.debug("%s %s %s", "updated" if live else "created", resource.kind, key)
        return Written(applied, True)

    async def add_finalizer(
        self, resource: resources.Resource, obj: objects.RawObject, finalizer: str
    ) -> Written:
        return await self._finalizers(resource, obj, finalizer, add=True)

    async def remove_finalizer(
        self, resource: resources.Resource, obj: objects.RawObject, finalizer: str
    ) -> Written:
        """Remove `finalizer`; an object already gone is fine (obj None, changed False)."""
        return await self._finalizers(resource, obj, finalizer, add=False)

    async def delete(
        self, resource: resources.Resource, key: objects.ObjectKey, *, uid: str | None = None
    ) -> bool:
        """Delete `key` (only if its uid is `uid`, when given); False when it was already gone."""
        try:
            await self.client.delete(resource, key.name, namespace=key.namespace or None, uid=uid,
                                     propagation_policy="Background")  # fmt: skip
        except errors.NotFoundError:
            return False
        self._wrote(key)
        return True

    async def _finalizers(
        self, resource: resources.Resource, obj: objects.RawObject, finalizer: str, *, add: bool
    ) -> Written:
        key = objects.key_of(obj)
        current: objects.RawObject | None = obj
        for attempt in range(1, self.max_attempts + 1):
            if current is None:
                return Written(None, False)
            present = objects.finalizers(current)
            if (finalizer in present) == add:
                return Written(current, False)
            wanted = [*present, finalizer] if add else [f for f in present if f != finalizer]
            # resourceVersion in a merge patch is a precondition: the list is never clobbered.
            version = objects.resource_version(current)
            patch = {"metadata": {"finalizers": wanted, "resourceVersion": version}}
            try:
                updated = await self.client.patch(resource, key.name, patch,
                                                  namespace=key.namespace or None)  # fmt: skip
            except errors.ConflictError:
                self.conflicts += 1
                if attempt == self.max_attempts:
                    raise
                current = await self._find(resource, key)
                continue
            except errors.NotFoundError:
                return Written(None, False)
            self._wrote(key)
            return Written(updated, True)
        raise AssertionError("unreachable")

    def _wrote(self, key: objects.ObjectKey) -> None:
        self.writes_in[key.namespace or ""] += 1

    def _skipped(self, key: objects.ObjectKey) -> None:
        self.skipped_in[key.namespace or ""] += 1

    async def _get(self, resource: resources.Resource, key: objects.ObjectKey) -> objects.RawObject:
        return await self.client.get(resource, key.name, namespace=key.namespace or None)

    async def _find(
        self, resource: resources.Resource, key: objects.ObjectKey
    ) -> objects.RawObject | None:
        try:
            return await self._get(resource, key)
        except errors.NotFoundError:
            return None


def normalize(value: Any) -> Any:
    """A canonical form for comparison: None, {} and [] removed from mappings, lists sorted."""
    if isinstance(value, dict):
        pruned = {k: normalize(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        items = [normalize(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def equivalent(a: Any, b: Any) -> bool:
    """Equal up to list order and empty values."""
    return bool(normalize(a) == normalize(b))


def contains(live: Any, want: Any) -> bool:
    """True when every value set in `want` is set to the same in `live` (lists: same length,
    item by item)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(contains(live.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (isinstance(live, list) and len(live) == len(want)
                and all(contains(lv, wv) for lv, wv in zip(live, want, strict=True)))  # fmt: skip
    if want is None:
        return live is None
    return bool(live == want)


def covers(live: objects.RawObject, desired: objects.RawObject) -> bool:
    """True when `live` already has everything `desired` sets (see the module docstring)."""
    want_meta, live_meta = objects.metadata(desired), objects.metadata(live)
    for field in ("labels", "annotations"):
        if not contains(live_meta.get(field) or {}, want_meta.get(field) or {}):
            return False
    live_owners = {ref.get("uid"): ref for ref in objects.owner_references(live)}
    for ref in objects.owner_references(desired):
        if not contains(live_owners.get(ref.get("uid")), ref):
            return False
    for field, value in desired.items():
        if field in ("apiVersion", "kind", "metadata", "status"):
            continue
        if not contains(live.get(field), value):
            return False
    return True
