"""The Tenant controller running in-process against the real management API server.

`tenants` starts informers + the controller (manager namespace = the test's namespace) and hands
out a `Harness`: create Tenants through it and they are deleted at the end of the test, with the
controller still running so its finalizer does the clean-up (stripped by force only if that
fails, so one broken test does not leave Tenants behind for the next).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubelb.kube import client, errors, events, informer, kubeconfig, objects, resources, writer
from kubelb.manager import kubeconfigs, tenantobjects, tenants

DEADLINE = 90.0


async def until(check: Callable[[], Awaitable[Any]], *, what: str) -> Any:
    """Poll the async `check` until it returns something truthy (returned); fail after a
    generous deadline naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def find(kube: client.Client, resource: resources.Resource, name: str,
               namespace: str | None = None) -> objects.RawObject | None:  # fmt: skip
    try:
        return await kube.get(resource, name, namespace=namespace)
    except errors.NotFoundError:
        return None


@dataclass
class Harness:
    kube: client.Client  # admin
    writer: writer.Writer
    reconciler: tenants.TenantReconciler
    controller: Any
    informers: informer.Informers
    settings: tenants.TenantControllerOptions
    tmp_path: Path
    created: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def create_tenant(self, prefix: str = "t", spec: dict[str, Any] | None = None) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        await self.kube.create(resources.TENANTS, {"metadata": {"name": name}, "spec": spec or {}})
        self.created.append(name)
        return name

    async def tenant(self, name: str) -> objects.RawObject | None:
        return await find(self.kube, resources.TENANTS, name)

    async def ready(self, name: str) -> objects.RawObject:
        async def check() -> objects.RawObject | None:
            obj = await self.tenant(name)
            status = (obj or {}).get("status") or {}
            done = status.get("phase") == "Ready" and status.get("observedGeneration") == (
                objects.generation(obj or {}))  # fmt: skip
            return obj if done else None

        result: objects.RawObject = await until(check, what=f"Tenant {name} Ready")
        return result

    async def kubeconfig_text(self, name: str) -> str:
        secret = await self.kube.get(resources.SECRETS, kubeconfigs.SECRET_NAME,
                                     namespace=f"tenant-{name}")  # fmt: skip
        text = tenantobjects.secret_value(secret, kubeconfigs.SECRET_KEY)
        assert text is not None
        return text

    @contextlib.asynccontextmanager
    async def tenant_client(self, name: str) -> AsyncIterator[client.Client]:
        """A client using the tenant's issued kubeconfig, as the agent would."""
        path = self.tmp_path / f"{name}.kubeconfig"
        path.write_text(await self.kubeconfig_text(name))
        source = kubeconfig.KubeconfigFile(path, check_interval=0.1)
        await source.api()
        tenant_kube = client.Client(source, field_manager="kubelb-agent")
        try:
            yield tenant_kube
        finally:
            await tenant_kube.close()

    def start_controller(self) -> None:
        self._tasks.append(asyncio.create_task(self.controller.run(), name="tenant-controller"))

    async def stop_controller(self) -> None:
        task = self._tasks.pop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def caught_up(
        self, resource: resources.Resource, key: objects.ObjectKey, **kw: Any
    ) -> bool:
        """True when the informer's copy of `key` has the server's resourceVersion."""
        store = self.informers.get(resource, **kw).store
        live = await find(self.kube, resource, key.name, key.namespace or None)
        cached = store.get(key)
        if live is None:
            return cached is None
        return cached is not None and objects.resource_version(cached) == objects.resource_version(
            live
        )


@pytest.fixture
def tenant_settings(management_namespace: str) -> tenants.TenantControllerOptions:
    """Settings for the controller under test; override the fixture to change them."""
    return tenants.TenantControllerOptions(namespace=management_namespace, drain_interval=0.5,
                                           pending_interval=0.5)  # fmt: skip


@pytest.fixture
async def harness(management_api, tenant_settings, tmp_path) -> AsyncIterator[Harness]:
    kube = client.Client(management_api, field_manager="kubelb-manager")
    informers = informer.Informers(kube)
    w = writer.Writer(kube)
    recorder = events.EventRecorder(kube, "kubelb-manager")
    ctrl = tenants.tenant_controller(informers, w, recorder, tenant_settings, workers=2,
                                     resync_period=None)  # fmt: skip
    assert isinstance(ctrl.reconciler, tenants.TenantReconciler)
    h = Harness(kube, w, ctrl.reconciler, ctrl, informers, tenant_settings, tmp_path)
    informers_task = asyncio.create_task(informers.run(), name="informers")
    h.start_controller()
    try:
        yield h
        if not h._tasks:
            h.start_controller()
        await _delete_tenants(h)
    finally:
        while h._tasks:
            await h.stop_controller()
        informers_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await informers_task


async def _delete_tenants(h: Harness) -> None:
    for name in h.created:
        with contextlib.suppress(errors.NotFoundError):
            await h.kube.delete(resources.TENANTS, name)
    for name in h.created:
        try:
            await until(functools.partial(_gone, h, name), what=f"Tenant {name} deleted")
        except AssertionError:
            with contextlib.suppress(errors.NotFoundError):
                await h.kube.patch(resources.TENANTS, name, {"metadata": {"finalizers": None}})
            raise


async def _gone(h: Harness, name: str) -> bool:
    return await h.tenant(name) is None
