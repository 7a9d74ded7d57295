"""SyncSecret controller (manager side): each SyncSecret in the management cluster
becomes a core Secret beside it, named after the SyncSecret's UID.

Reads: SyncSecrets (all namespaces, as upstream), and the Secret `<uid>` (read from the server on
each reconcile: the manager keeps no cache of Secrets). Writes: the finalizer
`kubelb.k8c.io/cleanup`; Secret `<uid>` in the same namespace with the SyncSecret's `data`
(`stringData` merged over it, as the API server does for a Secret), `type`, `immutable`, labels
and annotations, owned by the SyncSecret; the status: `phase` Synced | Failed | Terminating, a
`Synced` condition (reasons Synced, SyncFailed, Terminating) and `observedGeneration`. Deletion
deletes the Secret, then drops the finalizer. Only differences are written.

Metrics: `kubelb_manager_sync_secret_reconcile_total{namespace,result}` and
`kubelb_manager_sync_secret_reconcile_duration_seconds{namespace}`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubelb.api import conditions, finalizers, meta, syncsecret
from kubelb.kube import (
    controller,
    errors,
    informer,
    objects,
    resources,
    store as kstore,
    watches,
    writer as kwriter,
)
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

SYNCED_REASON = "Synced"
SYNCED_MESSAGE = "Secret synced successfully"
FAILED_REASON = "SyncFailed"
TERMINATING_MESSAGE = "SyncSecret is being deleted"
RESULT_SUCCESS = "success"
RESULT_ERROR = "error"


def secret_name(sync_secret: objects.RawObject) -> str:
    return objects.uid(sync_secret)


def desired_secret(sync_secret: objects.RawObject) -> objects.RawObject:
    """The management Secret a SyncSecret asks for."""
    data = dict(sync_secret.get("data") or {})
    for key, value in (sync_secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    metadata: dict[str, Any] = {
        "name": secret_name(sync_secret),
        "namespace": objects.namespace(sync_secret),
        "ownerReferences": [{
            "apiVersion": f"{meta.GROUP}/{meta.VERSION}",
            "kind": syncsecret.SyncSecret.KIND,
            "name": objects.name(sync_secret),
            "uid": objects.uid(sync_secret),
        }],
    }  # fmt: skip
    if objects.labels(sync_secret):
        metadata["labels"] = dict(objects.labels(sync_secret))
    annotations = {k: v for k, v in (objects.metadata(sync_secret).get("annotations") or {}).items()
                   if k != objects.LAST_APPLIED}  # fmt: skip
    if annotations:
        metadata["annotations"] = annotations
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                              "data": data}  # fmt: skip
    if sync_secret.get("type"):
        secret["type"] = sync_secret["type"]
    if sync_secret.get("immutable") is not None:
        secret["immutable"] = sync_secret["immutable"]
    return secret


def desired_status(
    current: Mapping[str, Any],
    *,
    generation: int | None,
    phase: syncsecret.SyncSecretPhase,
    reason: str,
    message: str,
    now: str | None = None,
) -> dict[str, Any]:
    """Status with `phase`, `observedGeneration` and the `Synced` condition (its
    lastTransitionTime moves only when its status flips)."""
    return meta.phase_status(
        current, phase=str(phase), condition=conditions.SYNCED,
        ok=phase is syncsecret.SyncSecretPhase.SYNCED, reason=reason, message=message,
        generation=generation, now=now,
    )  # fmt: skip


class SyncSecretReconciler:
    name = "syncsecrets"

    def __init__(self, kube_writer: kwriter.Writer, sync_secrets: kstore.Reader) -> None:
        """`sync_secrets`: the store of an informer on SyncSecrets (all namespaces)."""
        self.writer = kube_writer
        self.sync_secrets = sync_secrets
        self.primary = watches.Watch(
            resource=resources.SYNC_SECRETS, predicate=watches.spec_changed
        )
        self.watches: Sequence[watches.Watch] = ()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        started = time.perf_counter()
        try:
            await self._reconcile(key)
        except Exception:
            manager_metrics.SYNC_SECRET_RECONCILES.labels(key.namespace, RESULT_ERROR).inc()
            raise
        finally:
            manager_metrics.SYNC_SECRET_RECONCILE_SECONDS.labels(key.namespace).observe(
                time.perf_counter() - started
            )
        manager_metrics.SYNC_SECRET_RECONCILES.labels(key.namespace, RESULT_SUCCESS).inc()
        return controller.DONE

    async def _reconcile(self, key: objects.ObjectKey) -> None:
        obj = self.sync_secrets.get(key)
        if obj is None:
            return  # its Secret goes with it (owner reference)
        if objects.is_deleting(obj):
            if finalizers.CLEANUP in objects.finalizers(obj):
                await self._clean_up(key, obj)
            return
        obj = (await self.writer.add_finalizer(resources.SYNC_SECRETS, obj,
                                               finalizers.CLEANUP)).obj or obj  # fmt: skip
        try:
            await self._ensure_secret(obj)
        except errors.ApiError as exc:
            await self._set_status(key, obj, syncsecret.SyncSecretPhase.FAILED, FAILED_REASON,
                                   f"Secret {secret_name(obj)}: {exc}")  # fmt: skip
            raise
        await self._set_status(key, obj, syncsecret.SyncSecretPhase.SYNCED, SYNCED_REASON,
                               SYNCED_MESSAGE)  # fmt: skip

    async def _ensure_secret(self, obj: objects.RawObject) -> None:
        desired = desired_secret(obj)
        secret_key = objects.key_of(desired)
        try:
            written = await self.writer.ensure(resources.SECRETS, desired)
        except errors.InvalidError:
            # An immutable Secret cannot take new data: replace it.
            if not await self.writer.delete(resources.SECRETS, secret_key):
                raise
            written = await self.writer.ensure(resources.SECRETS, desired, current=None)
        if written.changed:
            logger.info("SyncSecret %s: Secret %s written", logsafe.shown(objects.key_of(obj)),
                        secret_key)  # fmt: skip

    async def _clean_up(self, key: objects.ObjectKey, obj: objects.RawObject) -> None:
        with contextlib.suppress(errors.NotFoundError):
            await self._set_status(key, obj, syncsecret.SyncSecretPhase.TERMINATING,
                                   conditions.TERMINATING, TERMINATING_MESSAGE)  # fmt: skip
        await self.writer.delete(resources.SECRETS,
                                 objects.ObjectKey(key.namespace, secret_name(obj)))  # fmt: skip
        await self.writer.remove_finalizer(resources.SYNC_SECRETS, obj, finalizers.CLEANUP)
        logger.info("SyncSecret %s: Secret deleted, finalizer removed", logsafe.shown(key))

    async def _set_status(
        self,
        key: objects.ObjectKey,
        obj: objects.RawObject,
        phase: syncsecret.SyncSecretPhase,
        reason: str,
        message: str,
    ) -> None:
        generation = objects.generation(obj)
        await self.writer.update_status(
            resources.SYNC_SECRETS, key,
            lambda s: desired_status(s, generation=generation, phase=phase, reason=reason,
                                     message=message),
            current=obj,
        )  # fmt: skip


def sync_secret_controller(
    informers: informer.Informers, kube_writer: kwriter.Writer, **controller_options: Any
) -> controller.Controller:
    """The SyncSecret controller, registered on `informers` (run them and the controller's
    `run()`); `controller_options` go to `kubelb.kube.controller.Controller`."""
    store = informers.get(resources.SYNC_SECRETS).store
    return controller.Controller(SyncSecretReconciler(kube_writer, store), informers,
                                 **controller_options)  # fmt: skip
