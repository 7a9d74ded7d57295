"""Fixtures for the manager against the real API server: a kubelb client, labelled tenant
namespaces cleaned up afterwards, and a factory for in-process manager replicas."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelb.api import labels
from kubelb.app import manager as app_manager
from kubelb.envoy import supervisor
from kubelb.kube import client, errors, objects, resources


@pytest.fixture
async def kube(management_api) -> client.Client:
    return client.Client(management_api, field_manager="kubelb-test")


@pytest.fixture
async def tenants(kube: client.Client) -> AsyncIterator[Callable[..., Any]]:
    """`await tenants()` -> a new namespace `tenant-<random>` labelled managed-by=kubelb."""
    created: list[str] = []

    async def make(*, managed: bool = True) -> str:
        name = f"tenant-{uuid.uuid4().hex[:8]}"
        meta: dict[str, Any] = {"name": name}
        if managed:
            meta["labels"] = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}
        await kube.create(resources.NAMESPACES, {"metadata": meta})
        created.append(name)
        return name

    yield make
    for name in created:
        # No manager may be left to remove our finalizers: strip them so the namespace goes.
        for resource in (resources.LOAD_BALANCERS, resources.ROUTES):
            for obj in (await kube.list(resource, namespace=name)).items:
                with contextlib.suppress(errors.NotFoundError):
                    patch = {"metadata": {"finalizers": None}}
                    await kube.patch(resource, objects.name(obj), patch, namespace=name)
        with contextlib.suppress(errors.NotFoundError):
            await kube.delete(resources.NAMESPACES, name)


@pytest.fixture
def manager_settings(management_namespace: str, tmp_path: Path) -> Iterator[app_manager.Settings]:
    yield app_manager.Settings(
        namespace=management_namespace, listen_address="127.0.0.1:0",
        health_probe_bind_address="127.0.0.1:0", metrics_addr="127.0.0.1:0",
        enable_leader_election=False, state_dir=tmp_path / "envoy", envoy_drain_seconds=0.5,
        envoy_xds_host="envoycp.kubelb.svc", envoy_xds_port=8001,
    )  # fmt: skip
    # Process-mode Envoys outlive a manager that did not stop them (by design): reap them.
    supervisor.reap(tmp_path / "envoy")


class Replicas:
    """`async with replicas.run(settings, **changes) as m:` runs one in-process manager replica;
    `await replicas.stop(m)` stops it early (e.g. to hand leadership over)."""

    def __init__(self, api) -> None:
        self.api = api
        self.tasks: dict[int, asyncio.Task[None]] = {}

    @contextlib.asynccontextmanager
    async def run(
        self, settings: app_manager.Settings, **changes: Any
    ) -> AsyncIterator[app_manager.Manager]:
        kube = client.Client(self.api, field_manager=app_manager.FIELD_MANAGER)
        manager = app_manager.Manager(dataclasses.replace(settings, **changes), kube)
        self.tasks[id(manager)] = asyncio.create_task(manager.run())
        try:
            yield manager
        finally:
            await self.stop(manager)

    async def stop(self, manager: app_manager.Manager) -> None:
        task = self.tasks.pop(id(manager), None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def replicas(management_api) -> Replicas:
    return Replicas(management_api)


@pytest.fixture
def managers(replicas: Replicas) -> Callable[..., Any]:
    return replicas.run
