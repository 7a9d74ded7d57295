"""Sync file documents into an API server as a user's `kubectl apply --server-side` would.

Input: a `file.Snapshot` and a `kube.interface.KubeApi` (normally a `kube.memory.MemoryClient`
writing as its own field manager, e.g. `memory.with_manager("kubelb-files")`). Output: the
server holds the snapshot's objects, and a `SyncResult` says what was created, updated and
deleted and which documents failed. `sync` never raises for a document: every problem is a
`DocumentError` naming the document's origin.

Rules:

- Kinds: only those given (`kinds`, by default Config, Addresses, LoadBalancer, Secret,
  SyncSecret and Route: what standalone mode serves); another kind, or another apiVersion, is an
  error.
- Secrets and SyncSecrets (the certificates of Routes' TLS, written straight into the tenant
  namespace; a SyncSecret becomes its Secret as in the management cluster) get the label
  `kubelb.k8c.io/origin-name: <their name>` unless they carry one, which is how the manager
  finds them (`irbuild.routetls`); `stringData` is folded into `data` as an API server does.
- Identity: kind, namespace and name; a namespaced object without a namespace lands in
  "default". A second document with the same identity is an error; the first wins: the file
  that defined the object at the last sync while it still does (a duplicate added to a file
  that sorts earlier never takes over), else the first in order. The error names the ignored
  duplicate and where the object is defined.
- Writes: server-side apply of the document without `status` and without server-owned metadata
  (a pasted `kubectl get -o yaml` applies cleanly), with the caller's per-kind `defaults`
  beneath it. Apply creates the object, updates what
  changed (a spec change bumps the generation) and removes fields dropped from the file. A
  document equal to the one last applied, whose object still exists, is not written.
- Removal: objects this loader applied whose documents vanished are deleted (their finalizers
  then hold them until the controller lets go).
- Namespaces: the namespace of every document is created when missing. Namespaces holding
  tenant kinds (LoadBalancer, Route, Addresses, SyncSecret) carry the managed-by=kubelb label,
  which is how the manager tells tenant namespaces (`manager.common.Inputs.managed`); others
  (a Config's) are created plain. Namespaces are never deleted or unlabelled: an empty one
  costs nothing, and deleting one would refuse new objects while it terminates.
- Invalid documents (`kubelb.api.registry` rejects them, or for a LoadBalancer
  `irbuild.loadbalancers.spec_problems` finds what its reconciler would call InvalidSpec
  wherever it is placed, such as port 70000): when this loader applied a valid
  version of the same object before, that version stays in the store, so traffic keeps
  flowing, and the error says so (`kept_last_valid`), like an API server refusing a bad
  `kubectl apply`. Without a valid predecessor the document is stored as it is, so the
  manager's reconciler reports InvalidSpec on the object and serves nothing for it.
- An object that is being deleted (finalizers still held) when its document is present again
  is left alone and reported (`waiting`); the next sync after it is gone creates it afresh
  (`watch` syncs again until then).

- Unknown fields (`prots:` for `ports:`) are warned about, as `kubectl` does
  (`SyncResult.warnings`, logged); the object is applied all the same.

Files that do not parse keep their last good documents (`file.FileSource`); their errors are
passed through in `SyncResult.file_errors`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pydantic

from kubelb.api import errors as api_errors, labels, loadbalancer as api_lb, meta, registry
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import errors, interface, objects, resources
from kubelb.sources import file
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

DEFAULT_KINDS: tuple[resources.Resource, ...] = (
    resources.CONFIGS,
    resources.ADDRESSES,
    resources.LOAD_BALANCERS,
    resources.SECRETS,
    resources.SYNC_SECRETS,
    resources.ROUTES,
)
TENANT_KINDS = frozenset({"LoadBalancer", "Route", "Addresses", "SyncSecret"})
DEFAULT_NAMESPACE = "default"
TENANT_LABELS = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}
# Metadata the server owns: dropped from documents before applying.
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
                    "selfLink")  # fmt: skip


class ObjectRef(NamedTuple):
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {logsafe.shown(where)}"  # a refused name may be of any size


@dataclass(frozen=True, slots=True)
class DocumentError:
    origin: str  # "path#index" of the document, or the object for a failed delete
    message: str
    kept_last_valid: bool = False  # an earlier valid version still stands in the store
    ref: ObjectRef | None = None  # the object concerned, once the document names one


@dataclass(frozen=True, slots=True)
class SyncResult:
    created: tuple[ObjectRef, ...] = ()
    updated: tuple[ObjectRef, ...] = ()
    deleted: tuple[ObjectRef, ...] = ()
    unchanged: int = 0
    waiting: tuple[ObjectRef, ...] = ()  # present again while still being deleted
    errors: tuple[DocumentError, ...] = ()
    file_errors: tuple[file.FileError, ...] = ()
    warnings: tuple[DocumentError, ...] = ()  # applied all the same (unknown fields)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


@dataclass(frozen=True, slots=True)
class _Applied:
    body: objects.RawObject
    valid: bool


@dataclass
class _Plan:
    """One snapshot, decoded: what to apply, in document order, and what went wrong."""

    bodies: dict[ObjectRef, tuple[objects.RawObject, file.Document, bool]] = field(
        default_factory=dict
    )
    errors: list[DocumentError] = field(default_factory=list)
    warnings: list[DocumentError] = field(default_factory=list)
    namespaces: dict[str, bool] = field(default_factory=dict)  # name -> tenant namespace


class Loader:
    """Keeps what it applied between syncs (for skipping, pruning and last-valid versions);
    use one loader per store and call `sync` from one task at a time."""

    def __init__(
        self,
        kube: interface.KubeApi,
        *,
        kinds: Sequence[resources.Resource] = DEFAULT_KINDS,
        default_namespace: str = DEFAULT_NAMESPACE,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`defaults`: per kind, fields a document gets when it does not set them (what a
        defaulting webhook would add; e.g. standalone mode's `spec.type: LoadBalancer`)."""
        self.kube = kube
        self.kinds: Mapping[str, resources.Resource] = {r.kind: r for r in kinds}
        self.default_namespace = default_namespace
        self.defaults = dict(defaults or {})
        self._applied: dict[ObjectRef, _Applied] = {}
        # Where each object of the last snapshot is defined ("path#index"): status pages show it.
        self.origins: dict[ObjectRef, str] = {}
        self._paths: dict[ObjectRef, Path] = {}  # the file of each object's origin
        self._lock = asyncio.Lock()
        # Per object, the body last checked and its verdict: a reload re-checks only what changed.
        self._checked: dict[ObjectRef, tuple[objects.RawObject, str | None, tuple[str, ...]]] = {}

    async def sync(self, snapshot: file.Snapshot) -> SyncResult:
        async with self._lock:
            return await self._sync(snapshot)

    async def watch(
        self, source: file.FileSource, poll_seconds: float = file.DEFAULT_POLL_SECONDS
    ) -> AsyncGenerator[SyncResult, None]:
        """Sync every snapshot the source yields and yield each result (errors logged). While
        some objects wait for their deletion to finish, the last snapshot is synced again every
        `poll_seconds` and the result yielded once they are back."""
        snapshots = source.watch(poll_seconds)
        upcoming: asyncio.Future[file.Snapshot] | None = None
        last: SyncResult | None = None
        current: file.Snapshot | None = None
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(anext(snapshots))
                retry = poll_seconds if last is not None and last.waiting else None
                done, _ = await asyncio.wait({upcoming}, timeout=retry)
                if upcoming in done:
                    current, upcoming = upcoming.result(), None
                assert current is not None
                result = await self.sync(current)
                if upcoming is not None and not result.changed:
                    last = result
                    continue  # a retry that brought nothing back: say nothing
                _log(result)
                last = result
                yield result
        finally:
            if upcoming is not None:
                upcoming.cancel()
                await asyncio.gather(upcoming, return_exceptions=True)
            await snapshots.aclose()

    async def _sync(self, snapshot: file.Snapshot) -> SyncResult:
        plan = self._plan(snapshot)
        self.origins = {ref: doc.origin for ref, (_, doc, _) in plan.bodies.items()}
        self._paths = {ref: doc.path for ref, (_, doc, _) in plan.bodies.items()}
        self._checked = {ref: v for ref, v in self._checked.items() if ref in plan.bodies}
        unusable = await self._ensure_namespaces(plan)
        created: list[ObjectRef] = []
        updated: list[ObjectRef] = []
        waiting: list[ObjectRef] = []
        unchanged = 0
        for ref, (body, doc, valid) in plan.bodies.items():
            if ref.namespace in unusable:
                why = unusable[ref.namespace]
                plan.errors.append(
                    DocumentError(doc.origin, f"namespace {ref.namespace}: {why}", ref=ref)
                )
                continue
            outcome = await self._apply(ref, body, doc, valid, plan.errors)
            if outcome == "created":
                created.append(ref)
            elif outcome == "updated":
                updated.append(ref)
            elif outcome == "waiting":
                waiting.append(ref)
            elif outcome == "unchanged":
                unchanged += 1
        deleted = await self._prune(set(plan.bodies), plan.errors)
        return SyncResult(
            created=tuple(created), updated=tuple(updated), deleted=tuple(deleted),
            unchanged=unchanged, waiting=tuple(waiting), errors=tuple(plan.errors),
            file_errors=snapshot.errors, warnings=tuple(plan.warnings),
        )  # fmt: skip

    def _plan(self, snapshot: file.Snapshot) -> _Plan:
        plan = _Plan()
        prepared: list[tuple[file.Document, ObjectRef, objects.RawObject]] = []
        for doc in sorted(snapshot.documents, key=self._order):
            try:
                ref, body = self._prepare(doc)
            except ValueError as exc:
                plan.errors.append(DocumentError(doc.origin, str(exc)))
                continue
            prepared.append((doc, ref, body))
        winners = self._winners(prepared)
        for doc, ref, body in prepared:
            winner = winners[ref]
            if winner is not doc:
                plan.errors.append(DocumentError(doc.origin, f"duplicate {ref}, already "
                                                 f"defined at {winner.origin}; this one is "
                                                 "ignored", ref=ref))  # fmt: skip
                continue
            valid = True
            problem, warned = self._check(ref, body)
            plan.warnings.extend(DocumentError(doc.origin, w, ref=ref) for w in warned)
            if problem is not None:
                valid = False
                last = self._applied.get(ref)
                kept = last is not None and last.valid
                detail = "; the last valid version stays in place" if kept else ""
                plan.errors.append(DocumentError(doc.origin, f"{problem}{detail}", kept, ref))
                if kept:
                    assert last is not None
                    body = last.body
                    valid = True
            plan.bodies[ref] = (body, doc, valid)
            if ref.namespace:
                tenant = plan.namespaces.get(ref.namespace, False) or ref.kind in TENANT_KINDS
                plan.namespaces[ref.namespace] = tenant
        return plan

    def _check(self, ref: ObjectRef, body: objects.RawObject) -> tuple[str | None, tuple[str, ...]]:
        """Why `body` may not replace a valid version (None: it may), and its warnings."""
        cached = self._checked.get(ref)
        if cached is not None and cached[0] == body:
            return cached[1], cached[2]
        problem, warned = _invalid(ref, body)
        self._checked[ref] = (body, problem, warned)
        return problem, warned

    def _winners(
        self, prepared: Sequence[tuple[file.Document, ObjectRef, objects.RawObject]]
    ) -> dict[ObjectRef, file.Document]:
        """Per object, the document that defines it: the first one in the file that defined it
        at the last sync when that file still does, else the first in order."""
        winners: dict[ObjectRef, file.Document] = {}
        for doc, ref, _ in prepared:
            current = winners.get(ref)
            incumbent = self._paths.get(ref)
            if current is None or (current.path != incumbent and doc.path == incumbent):
                winners[ref] = doc
        return winners

    def _order(self, doc: file.Document) -> int:
        """Documents apply kind by kind in `kinds` order (Config before the LoadBalancers that
        read it), in file order within a kind; unknown kinds last."""
        kinds = list(self.kinds)
        kind = doc.body.get("kind")
        return kinds.index(kind) if kind in kinds else len(kinds)

    def _prepare(self, doc: file.Document) -> tuple[ObjectRef, objects.RawObject]:
        kind = doc.body.get("kind")
        resource = self.kinds.get(kind) if isinstance(kind, str) else None
        if resource is None:
            served = ", ".join(sorted(self.kinds))
            raise ValueError(f"kind {kind!r} is not served here (only {served})")
        if doc.body.get("apiVersion") != resource.api_version:
            raise ValueError(f"{kind} needs apiVersion {resource.api_version}, "
                             f"not {doc.body.get('apiVersion')!r}")  # fmt: skip
        meta = doc.body.get("metadata")
        if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            raise ValueError(f"{kind} has no metadata.name")
        body = {k: copy.deepcopy(v) for k, v in doc.body.items() if k != "status"}
        body = _beneath(self.defaults.get(resource.kind) or {}, body)
        body_meta = {k: v for k, v in body["metadata"].items() if k not in _SERVER_METADATA}
        if resource.namespaced:
            body_meta["namespace"] = str(body_meta.get("namespace") or self.default_namespace)
        else:
            body_meta.pop("namespace", None)
        body["metadata"] = body_meta
        if resource in (resources.SECRETS, resources.SYNC_SECRETS):
            _prepare_secret(body)
        return ObjectRef(resource.kind, body_meta.get("namespace", ""), meta["name"]), body

    async def _ensure_namespaces(self, plan: _Plan) -> dict[str, str]:
        """The namespaces that cannot be made ready, and why (they fail only their own
        documents)."""
        unusable: dict[str, str] = {}
        for name, tenant in plan.namespaces.items():
            try:
                await self._ensure_namespace(name, tenant)
            except errors.ApiError as exc:
                unusable[name] = exc.message or str(exc)
        return unusable

    async def _ensure_namespace(self, name: str, tenant: bool) -> None:
        wanted = TENANT_LABELS if tenant else {}
        try:
            live = await self.kube.get(resources.NAMESPACES, name)
        except errors.NotFoundError:
            body = {"metadata": {"name": name, **({"labels": wanted} if wanted else {})}}
            await self.kube.create(resources.NAMESPACES, body)
            return
        if any(objects.labels(live).get(k) != v for k, v in wanted.items()):
            await self.kube.patch(resources.NAMESPACES, name, {"metadata": {"labels": wanted}})

    async def _apply(
        self,
        ref: ObjectRef,
        body: objects.RawObject,
        doc: file.Document,
        valid: bool,
        problems: list[DocumentError],
    ) -> str:
        resource = self.kinds[ref.kind]
        namespace = ref.namespace or None
        try:
            live: objects.RawObject | None = await self.kube.get(resource, ref.name,
                                                                 namespace=namespace)  # fmt: skip
        except errors.NotFoundError:
            live = None
        except errors.ApiError as exc:
            problems.append(DocumentError(doc.origin, str(exc), ref=ref))
            return "failed"
        if live is not None and objects.is_deleting(live):
            return "waiting"
        last = self._applied.get(ref)
        if live is not None and last is not None and last.body == body:
            return "unchanged"
        try:
            await self.kube.apply(resource, body, force=True)
        except errors.ApiError as exc:
            problems.append(DocumentError(doc.origin, f"{ref}: {exc.message or exc}", ref=ref))
            return "failed"
        self._applied[ref] = _Applied(body, valid)
        return "created" if live is None else "updated"

    async def _prune(
        self, present: set[ObjectRef], problems: list[DocumentError]
    ) -> list[ObjectRef]:
        deleted = []
        for ref in [r for r in self._applied if r not in present]:
            resource = self.kinds[ref.kind]
            try:
                await self.kube.delete(resource, ref.name, namespace=ref.namespace or None)
            except errors.NotFoundError:
                pass
            except errors.ApiError as exc:
                problems.append(DocumentError(str(ref), f"cannot delete: {exc}", ref=ref))
                continue
            del self._applied[ref]
            deleted.append(ref)
        return deleted


def _invalid(ref: ObjectRef, body: objects.RawObject) -> tuple[str | None, tuple[str, ...]]:
    """Why `body` may not replace a valid version (None: it may), and its unknown fields."""
    if ref.kind not in registry.KINDS:
        return None, ()
    try:
        model = registry.parse(copy.deepcopy(body))
    except api_errors.APIValidationError as exc:
        return str(exc), ()
    warned = tuple(f"{ref}: unknown field {path!r} is ignored" for path in unknown_fields(model))
    if isinstance(model, api_lb.LoadBalancer):
        problems = irbuild.spec_problems(model)
        if problems:
            return f"{ref} is invalid: {'; '.join(problems)}", warned
    return None, warned


# Metadata fields the API server knows but the models do not spell out.
_KNOWN_METADATA = frozenset({"managedFields", "selfLink", "clusterName"})


def unknown_fields(model: meta.KubeModel, prefix: str = "") -> list[str]:
    """The paths (`spec.prots`, `spec.ports[0].prot`) of fields the models do not know: kept
    by the API (`extra="allow"`) and ignored by every reconciler, so most likely typos."""
    found = []
    extras = model.model_extra or {}
    for key in extras:
        if isinstance(model, meta.ObjectMeta) and key in _KNOWN_METADATA:
            continue
        found.append(f"{prefix}{key}")
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        where = f"{prefix}{info.alias or name}"
        if isinstance(value, pydantic.BaseModel) and isinstance(value, meta.KubeModel):
            found.extend(unknown_fields(value, f"{where}."))
        elif isinstance(value, tuple | list):
            for index, item in enumerate(value):
                if isinstance(item, meta.KubeModel):
                    found.extend(unknown_fields(item, f"{where}[{index}]."))
    return found


def _log(result: SyncResult) -> None:
    for error in result.errors:
        logger.error("%s: %s", error.origin, error.message)
    for warning in result.warnings:
        logger.warning("%s: %s", warning.origin, warning.message)
    if result.changed:
        logger.info("files: %d created, %d updated, %d deleted", len(result.created),
                    len(result.updated), len(result.deleted))  # fmt: skip
    for ref in result.waiting:
        logger.info("%s: still being deleted; it is created again once that finishes", ref)


def _prepare_secret(body: dict[str, Any]) -> None:
    metadata = body["metadata"]
    found = metadata.get("labels")
    found = dict(found) if isinstance(found, Mapping) else {}
    found.setdefault(labels.ORIGIN_NAME, metadata["name"])
    metadata["labels"] = found
    string_data = body.pop("stringData", None)
    if isinstance(string_data, Mapping):
        data = dict(body.get("data") or {})
        data.update((str(k), base64.b64encode(str(v).encode()).decode())
                    for k, v in string_data.items())  # fmt: skip
        body["data"] = data


def _beneath(defaults: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """`body` with `defaults` filled in where it sets nothing (maps merge, the body wins)."""
    merged = {k: copy.deepcopy(v) for k, v in defaults.items()}
    for key, value in body.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, Mapping):
            merged[key] = _beneath(below, value)
        else:
            merged[key] = value
    return merged
