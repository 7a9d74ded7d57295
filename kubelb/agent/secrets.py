"""Secret sync, tenant side: tenant SyncSecrets -> SyncSecrets in the management
cluster, and (opt-in) labelled tenant Secrets -> tenant SyncSecrets.

`SyncSecretReconciler` (always on). Reads: SyncSecrets (tenant cluster), SyncSecrets in the
tenant namespace (management cluster; mapped back to their origin by the origin labels). Writes:
on the management cluster, SyncSecret `<tenant SyncSecret uid>` with the data, stringData, type,
immutable, labels (plus origin-name, origin-ns and managed-by) and annotations (created, or
replaced when they differ), and deletes those whose origin is gone or replaced (same name, new
UID); on the tenant SyncSecret, the finalizer `kubelb.k8c.io/cleanup`, removed once its copy is
deleted.

`SecretReconciler` (`--enable-secret-synchronizer`). Reads: Secrets labelled
`kubelb.k8c.io/managed-by: kubelb` (tenant cluster). Writes: the same-named SyncSecret beside
each, with its data, type, immutable and labels plus origin labels, and the finalizer
`kubelb.k8c.io/cleanup` on the Secret; the Secret's deletion (or its label's removal) deletes
the SyncSecret and drops the finalizer. With Ingress or Gateway sources on, the Secrets a
served one names (`kubelb.agent.secretrefs`) are synced the same way without a label (and
without a finalizer: the Secret is the user's); when nothing served names them any more their
SyncSecret goes. Then every Secret of the watched namespaces is read, to see a named one appear
or change; any other unlabelled Secret is never synced. Otherwise unlabelled Secrets are never
read.

Metrics: `kubelb_ccm_sync_secret_reconcile_total{namespace,result}` and
`kubelb_ccm_sync_secret_reconcile_duration_seconds{namespace}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from kubelb.agent import common, secretrefs
from kubelb.api import finalizers, labels
from kubelb.kube import (
    client,
    controller,
    errors,
    events,
    objects,
    resources,
    store,
    watches,
    writer,
)
from kubelb.observe import agent_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

ORIGIN_INDEX = "origin"
MANAGED_SELECTOR = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE}"
UPDATE_ATTEMPTS = 5
# The Secret fields a SyncSecret carries at its top level.
_CONTENT = ("data", "stringData", "type", "immutable")


def origin_key(obj: Mapping[str, Any]) -> objects.ObjectKey | None:
    found = objects.labels(obj)
    name, namespace = found.get(labels.ORIGIN_NAME), found.get(labels.ORIGIN_NAMESPACE)
    return objects.ObjectKey(namespace, name) if name and namespace else None


def origin_index(obj: objects.RawObject) -> Iterable[str]:
    key = origin_key(obj)
    return (str(key),) if key is not None else ()


def origin_keys(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
    """Mapper for the linked management SyncSecret informer."""
    key = origin_key(obj)
    return (key,) if key is not None else ()


def _labelled(obj: objects.RawObject) -> bool:
    return objects.labels(obj).get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE


def _origin_labels(obj: objects.RawObject) -> dict[str, str]:
    return {**objects.labels(obj), labels.ORIGIN_NAME: objects.name(obj),
            labels.ORIGIN_NAMESPACE: objects.namespace(obj),
            labels.MANAGED_BY: labels.MANAGED_BY_VALUE}  # fmt: skip


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: obj[k] for k in _CONTENT if obj.get(k) not in (None, {}, "")}


def desired_copy(sync_secret: objects.RawObject, *, namespace: str) -> objects.RawObject:
    """The management cluster's SyncSecret for a tenant SyncSecret."""
    metadata: dict[str, Any] = {"name": objects.uid(sync_secret), "namespace": namespace,
                                "labels": _origin_labels(sync_secret)}  # fmt: skip
    annotations = {k: v for k, v in objects.annotations(sync_secret).items()
                   if k != objects.LAST_APPLIED}  # fmt: skip
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": resources.SYNC_SECRETS.api_version, "kind": "SyncSecret",
            "metadata": metadata, **_content(sync_secret)}  # fmt: skip


def desired_from_secret(secret: objects.RawObject) -> objects.RawObject:
    """The tenant SyncSecret for a labelled Secret (same namespace and name)."""
    metadata = {"name": objects.name(secret), "namespace": objects.namespace(secret),
                "labels": _origin_labels(secret)}  # fmt: skip
    return {"apiVersion": resources.SYNC_SECRETS.api_version, "kind": "SyncSecret",
            "metadata": metadata, **_content(secret)}  # fmt: skip


def needs_update(live: objects.RawObject, desired: objects.RawObject) -> bool:
    return (
        _content(live) != _content(desired)
        or dict(objects.labels(live)) != objects.labels(desired)
        or dict(objects.annotations(live)) != dict(objects.annotations(desired))
    )


def updated(live: objects.RawObject, desired: objects.RawObject) -> objects.RawObject:
    """`live` carrying `desired`'s content, labels and annotations (its other metadata kept)."""
    metadata = {**objects.metadata(live), "labels": objects.labels(desired),
                "annotations": dict(objects.annotations(desired))}  # fmt: skip
    rest = {k: v for k, v in live.items() if k not in _CONTENT and k != "metadata"}
    return {**rest, "metadata": metadata, **_content(desired)}


async def create_or_update(
    resource: resources.Resource,
    desired: objects.RawObject,
    live: objects.RawObject | None,
    *,
    create: Callable[[objects.RawObject], Awaitable[objects.RawObject]],
    replace: Callable[[objects.RawObject], Awaitable[objects.RawObject]],
    get: Callable[[], Awaitable[objects.RawObject]],
) -> tuple[objects.RawObject, bool]:
    """Create `desired` or bring `live` to it; the object afterwards and whether it was written."""
    if live is None:
        try:
            return await create(desired), True
        except errors.AlreadyExistsError:
            live = await get()
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        if objects.is_deleting(live) or not needs_update(live, desired):
            return live, False
        try:
            return await replace(updated(live, desired)), True
        except errors.ConflictError:
            if attempt == UPDATE_ATTEMPTS:
                raise
            live = await get()
    raise AssertionError("unreachable")


async def _timed(namespace: str, work: Awaitable[None]) -> controller.Result:
    started = time.monotonic()
    try:
        await work
    except Exception:
        agent_metrics.SYNC_SECRET_RECONCILES.labels(namespace, agent_metrics.RESULT_ERROR).inc()
        raise
    finally:
        agent_metrics.SYNC_SECRET_RECONCILE_SECONDS.labels(namespace).observe(
            time.monotonic() - started
        )
    agent_metrics.SYNC_SECRET_RECONCILES.labels(namespace, agent_metrics.RESULT_SUCCESS).inc()
    return controller.DONE


class SyncSecretReconciler:
    name = "syncsecrets"

    def __init__(
        self,
        *,
        tenant: common.Tenant,
        sync_secrets: store.Reader,
        copies: store.Reader,
        management: common.Management,
        tenant_writer: writer.Writer,
        namespace: str | None = None,
    ) -> None:
        self.tenant = tenant
        self.sync_secrets = sync_secrets
        self.copies = copies  # management SyncSecrets, indexed by ORIGIN_INDEX
        self.management = management
        self.writer = tenant_writer
        self.primary = watches.Watch(resource=resources.SYNC_SECRETS, namespace=namespace,
                                     predicate=watches.spec_changed)  # fmt: skip
        self.watches: Sequence[watches.Watch] = ()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        return await _timed(key.namespace, self._reconcile(key))

    async def _reconcile(self, key: objects.ObjectKey) -> None:
        obj = self.sync_secrets.get(key)
        if obj is None:
            await self._delete_copies(key, keep_uid="")
            return
        if objects.is_deleting(obj):
            if finalizers.CLEANUP in objects.finalizers(obj):
                await self._delete_copies(key, keep_uid="")
                # The cache may not show a copy created moments ago: delete it by name too.
                await self.management.delete(
                    resources.SYNC_SECRETS, objects.ObjectKey(self.tenant.namespace,
                                                              objects.uid(obj)))  # fmt: skip
                await self.writer.remove_finalizer(resources.SYNC_SECRETS, obj, finalizers.CLEANUP)
                logger.info("SyncSecret %s: copy deleted", logsafe.shown(key))
            return
        written = await self.writer.add_finalizer(resources.SYNC_SECRETS, obj, finalizers.CLEANUP)
        obj = written.obj if written.obj is not None else obj
        await self._delete_copies(key, keep_uid=objects.uid(obj))
        desired = desired_copy(obj, namespace=self.tenant.namespace)
        copy_key = objects.key_of(desired)
        _, changed = await create_or_update(
            resources.SYNC_SECRETS, desired, self.copies.get(copy_key),
            create=lambda o: self.management.create(resources.SYNC_SECRETS, o),
            replace=lambda o: self.management.replace(resources.SYNC_SECRETS, o),
            get=lambda: self.management.get(resources.SYNC_SECRETS, copy_key),
        )  # fmt: skip
        if changed:
            logger.info("SyncSecret %s: copied to %s", logsafe.shown(key), copy_key)

    async def _delete_copies(self, key: objects.ObjectKey, *, keep_uid: str) -> None:
        for copy in self.copies.by_index(ORIGIN_INDEX, str(key)):
            if objects.name(copy) == keep_uid or objects.is_deleting(copy):
                continue
            if await self.management.delete(resources.SYNC_SECRETS, objects.key_of(copy)):
                logger.info("SyncSecret %s: deleted copy %s", logsafe.shown(key),
                            objects.key_of(copy))  # fmt: skip


class SecretReconciler:
    name = "secrets"

    def __init__(
        self,
        *,
        secrets: store.Reader,
        sync_secrets: store.Reader,
        tenant_client: client.Client,
        tenant_writer: writer.Writer,
        namespace: str | None = None,
        references: secretrefs.SecretReferences | None = None,
        recorder: events.EventRecorder | None = None,
    ) -> None:
        """`references`: also sync the Secrets served objects name (then `secrets` holds every
        Secret, not only labelled ones); `recorder` tells a Gateway its refused references."""
        self.secrets = secrets
        self.sync_secrets = sync_secrets
        self.client = tenant_client
        self.writer = tenant_writer
        self.references = references
        self.recorder = recorder
        self.primary = watches.Watch(resource=resources.SECRETS, namespace=namespace,
                                     label_selector=None if references else MANAGED_SELECTOR,
                                     predicate=watches.spec_changed)  # fmt: skip
        self.watches: Sequence[watches.Watch] = ()
        if references is not None:
            self.watches = (
                # A SyncSecret made from a Secret that went while the agent was down.
                watches.Watch(resource=resources.SYNC_SECRETS, namespace=namespace,
                              mapper=origin_keys),
                *(watches.Watch(resource=s.resource, namespace=namespace,
                                mapper=references.secrets_of(s.refs),
                                predicate=watches.spec_changed)
                  for s in references.sources),
                *(watches.Watch(resource=resource, namespace=namespace, mapper=mapper,
                                predicate=watches.spec_changed)
                  for resource, mapper in references.triggers),
                *((watches.Watch(resource=secretrefs.REFERENCE_GRANTS,
                                 mapper=references.secrets_of_grant),)
                  if references.grants is not None else ()),
            )  # fmt: skip

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        await self._tell_refused(key)
        return await _timed(key.namespace, self._reconcile(key))

    async def _reconcile(self, key: objects.ObjectKey) -> None:
        secret = self.secrets.get(key)
        if secret is None or not self._wanted(key, secret):
            # Gone, or neither labelled nor named: our finalizer may still be on it.
            if secret is None:
                try:
                    secret = await self.client.get(resources.SECRETS, key.name,
                                                   namespace=key.namespace)  # fmt: skip
                except errors.NotFoundError:
                    await self._delete_sync_secret(key)
                    return
            if finalizers.CLEANUP in objects.finalizers(secret):
                await self._clean_up(key, secret)
            elif self.references is not None:
                await self._delete_sync_secret(key)
            return
        if objects.is_deleting(secret):
            if finalizers.CLEANUP in objects.finalizers(secret):
                await self._clean_up(key, secret)
            return
        if _labelled(secret):
            written = await self.writer.add_finalizer(resources.SECRETS, secret, finalizers.CLEANUP)
            secret = written.obj if written.obj is not None else secret
        elif finalizers.CLEANUP in objects.finalizers(secret):
            # Label removed, still named: kept synced, and deletion no longer waits for us.
            written = await self.writer.remove_finalizer(
                resources.SECRETS, secret, finalizers.CLEANUP
            )
            secret = written.obj if written.obj is not None else secret
        desired = desired_from_secret(secret)
        _, changed = await create_or_update(
            resources.SYNC_SECRETS, desired, self.sync_secrets.get(key),
            create=lambda o: self.client.create(resources.SYNC_SECRETS, o),
            replace=lambda o: self.client.replace(resources.SYNC_SECRETS, o),
            get=lambda: self.client.get(resources.SYNC_SECRETS, key.name, namespace=key.namespace),
        )  # fmt: skip
        if changed:
            logger.info("Secret %s: SyncSecret written", logsafe.shown(key))

    def _wanted(self, key: objects.ObjectKey, secret: objects.RawObject) -> bool:
        """Labelled, or (with `references`) named by a served object; being deleted counts as
        wanted so the finalizer path below runs."""
        if _labelled(secret) or objects.is_deleting(secret):
            return True
        return self.references is not None and self.references.referenced(key)

    async def _tell_refused(self, key: objects.ObjectKey) -> None:
        if self.references is None or self.recorder is None:
            return
        for obj in self.references.refused(key):
            await self.recorder.warning(
                obj, secretrefs.REF_NOT_PERMITTED,
                f"Secret {key} is in another namespace and no ReferenceGrant there allows "
                f"Gateways of {objects.namespace(obj)} to use it: not synced",
            )  # fmt: skip

    async def _clean_up(self, key: objects.ObjectKey, secret: objects.RawObject) -> None:
        await self._delete_sync_secret(key)
        await self.writer.remove_finalizer(resources.SECRETS, secret, finalizers.CLEANUP)
        logger.info("Secret %s: SyncSecret deleted", logsafe.shown(key))

    async def _delete_sync_secret(self, key: objects.ObjectKey) -> None:
        """Delete the SyncSecret made from Secret `key` (one a user made is left alone)."""
        live = self.sync_secrets.get(key)
        if live is None or objects.labels(live).get(labels.ORIGIN_NAME) != key.name:
            return
        await self.writer.delete(resources.SYNC_SECRETS, key, uid=objects.uid(live))
