"""The management Services, persisted, so that a restart gives every LoadBalancer its address.

In standalone mode the API server lives in memory; what must outlive it is where the address
pool placed each LoadBalancer, which the manager keeps in its management Services' status. So
their ports and status go to one JSON file in the state folder (`Recorder`, after every change),
and on start `restore` puts back those of the LoadBalancers that are still in the files (and
each namespace's L7 entry while it has Routes), before any reconciler runs: the pool then finds
them placed, exactly as after a manager restart.

The file is replaced atomically (temporary file, fsync, rename), so a crash mid-write leaves the
previous state intact; the replaced file is kept as `services.json.prev`, the fallback (logged as
an error) when the state file is ever unreadable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kubelb.api import labels
from kubelb.kube import errors, informer, interface, objects, resources

logger = logging.getLogger(__name__)

STATE_FILE = "services.json"
FORMAT_VERSION = 2
# Format 1, before standalone mode ran the manager's reconcilers: "namespace/name" of each
# LoadBalancer -> its address. Read once, when there is no STATE_FILE yet.
LEGACY_FILE = "assignments.json"
# The file before the last save, read when the state file itself is unreadable.
BACKUP_SUFFIX = ".prev"


def record_of(service: objects.RawObject) -> dict[str, Any]:
    """What a restart needs of a management Service: identity, labels, ports, address."""
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    return {
        "metadata": {"namespace": objects.namespace(service), "name": objects.name(service),
                     "labels": dict(objects.labels(service))},
        "spec": {"type": spec.get("type"), "ports": spec.get("ports") or []},
        "status": {"loadBalancer": status.get("loadBalancer") or {}},
    }  # fmt: skip


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        self._saved: list[dict[str, Any]] | None = None

    def load(self) -> list[dict[str, Any]]:
        """The saved Service records. An unreadable file falls back to the previous good copy
        (`BACKUP_SUFFIX`), loudly: a state file silently treated as empty moves addresses."""
        loaded = _read(self.path)
        if isinstance(loaded, str):
            backup = self.path.with_name(self.path.name + BACKUP_SUFFIX)
            from_backup = _read(backup)
            if not isinstance(from_backup, list):
                logger.error("ignoring unreadable state file %s (%s) and its previous copy "
                             "(%s): addresses may move",
                             self.path, loaded, from_backup or "none")  # fmt: skip
                return []
            logger.error("unreadable state file %s (%s): using its previous good copy %s",
                         self.path, loaded, backup)  # fmt: skip
            loaded = from_backup
        if loaded is None:
            return []
        self._saved = loaded
        return list(loaded)

    def save(self, services: Iterable[objects.RawObject]) -> None:
        """Write the records of `services` when they differ from what was last saved; the file
        replaced is kept as the previous good copy (only if it still reads back)."""
        current = sorted((record_of(s) for s in services), key=_identity)
        if current == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": FORMAT_VERSION, "services": current}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".services-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            if isinstance(_read(self.path), list):
                # A hard link keeps the old content under the backup name without a copy.
                os.link(self.path, f"{tmp}.bak")
                os.replace(f"{tmp}.bak", self.path.with_name(self.path.name + BACKUP_SUFFIX))
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            Path(f"{tmp}.bak").unlink(missing_ok=True)
            raise
        self._saved = current


def _read(path: Path) -> list[dict[str, Any]] | str | None:
    """The Service records in `path`, None when it does not exist, or why it cannot be read."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return str(e)
    services = raw.get("services") if isinstance(raw, dict) else None
    if not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
        return "no 'services' list"
    return services


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _identity(record: dict[str, Any]) -> tuple[str, str]:
    return (record["metadata"]["namespace"], record["metadata"]["name"])


async def restore(
    store: StateStore, kube: interface.KubeApi, service_name: Callable[[str], str]
) -> int:
    """Put back the saved Services whose LoadBalancer exists in `kube`; the number restored.
    Call after the files are loaded and before the reconcilers start. `service_name(lb name)`:
    the management Service's name, for a state folder in format 1."""
    restored = 0
    if await asyncio.to_thread(store.path.exists):
        records = await asyncio.to_thread(store.load)
    else:
        records = await _legacy_records(store.path.parent / LEGACY_FILE, kube, service_name)
    for record in records:
        meta = record.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        lb_name = (meta.get("labels") or {}).get(labels.LB_NAME)
        entry = (meta.get("labels") or {}).get(labels.L7_ENTRY) == "true"
        if not namespace or not name or not (lb_name or entry):
            continue
        if entry:  # a tenant's L7 entry: wanted while the namespace has Routes
            if not (await kube.list(resources.ROUTES, namespace=namespace)).items:
                continue
        else:
            try:
                await kube.get(resources.LOAD_BALANCERS, str(lb_name), namespace=namespace)
            except errors.NotFoundError:
                continue  # its LoadBalancer left the files while we were down
        body = {"apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
                "spec": dict(record.get("spec") or {})}  # fmt: skip
        try:
            applied = await kube.apply(resources.SERVICES, body, force=True)
            applied["status"] = dict(record.get("status") or {})
            await kube.replace_status(resources.SERVICES, applied)
        except errors.ApiError as exc:
            logger.warning("cannot restore Service %s/%s: %s", namespace, name, exc)
            continue
        restored += 1
    return restored


async def _legacy_records(
    path: Path, kube: interface.KubeApi, service_name: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Format 1's addresses as Service records, with the ports of the LoadBalancers now in the
    files (the address pool needs no more)."""
    try:
        raw = json.loads(await asyncio.to_thread(path.read_text))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable state file %s: %s", path, e)
        return []
    addresses = raw.get("addresses") if isinstance(raw, dict) else None
    records = []
    for key, address in (addresses if isinstance(addresses, dict) else {}).items():
        namespace, _, name = str(key).partition("/")
        try:
            lb = await kube.get(resources.LOAD_BALANCERS, name, namespace=namespace)
        except errors.NotFoundError:
            continue
        ports = [{"port": p["port"], "protocol": p.get("protocol") or "TCP"}
                 for p in (lb.get("spec") or {}).get("ports") or ()
                 if isinstance(p, dict) and isinstance(p.get("port"), int)]  # fmt: skip
        records.append({
            "metadata": {"namespace": namespace, "name": service_name(name),
                         "labels": {labels.LB_NAME: name}},
            "spec": {"type": "LoadBalancer", "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": str(address)}]}},
        })  # fmt: skip
    if records:
        logger.info("taking %d addresses from %s (the previous state format)", len(records), path)
    return records


class Recorder:
    """A runner: saves the management Services after every change to them."""

    name = "service-state"

    def __init__(self, store: StateStore, services: informer.Informer) -> None:
        self.store = store
        self.services = services
        self._dirty = asyncio.Event()
        services.add_handler(lambda _: self._dirty.set())

    async def run(self) -> None:
        await self.services.wait_synced()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            # Listed here, in the loop's thread: the informer changes the store meanwhile.
            await asyncio.to_thread(self.store.save, self.services.store.list())

    def save(self) -> None:
        self.store.save(self.services.store.list())
