"""pytest fixtures for tests against a real Kubernetes control plane (kubelb.localcluster).

Session-scoped: `control_plane` (both clusters, started once), `management` and `tenant`
(`tests.support.cluster.Cluster`). Function-scoped: `management_namespace` and
`tenant_namespace` (a fresh namespace, deleted afterwards), `management_api` and `tenant_api`
(an admin ApiClient in the test's event loop, closed afterwards).

Without the binaries the tests that use these fixtures skip, and the run ends with one line that
counts them and says how to build the binaries; when the environment variable CI is set they
fail instead, because `make test` builds the binaries first.

The control plane runs in processes independent of any event loop; starting and stopping run
their coroutines in a private loop on a worker thread, so tests keep pytest-asyncio's
function-scoped loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client

from kubelb.localcluster import binaries, controlplane
from tests.support import cluster

T = TypeVar("T")

NO_CONTROL_PLANE = "no Kubernetes control plane"


def run_in_private_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion in a fresh event loop on a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="controlplane") as pool:
        return pool.submit(asyncio.run, coro).result()


def require_binaries() -> None:
    """Skip (or fail when CI is set) if the control-plane binaries are missing."""
    try:
        binaries.require()
    except binaries.BinariesMissingError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the control plane cannot run: {exc}", pytrace=False)
        pytest.skip(f"{NO_CONTROL_PLANE}: {exc}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """After the short test summary: one line counting the tests skipped for want of binaries."""
    yield
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", ())
        if NO_CONTROL_PLANE in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped: {NO_CONTROL_PLANE} (binaries missing in "
            f"{binaries.default_dir()}); build them with `make controlplane`",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    require_binaries()
    plane = controlplane.ControlPlane()
    try:
        run_in_private_loop(plane.start())
        yield plane
    finally:
        run_in_private_loop(plane.stop())


@pytest.fixture(scope="session")
def management(control_plane: controlplane.ControlPlane) -> cluster.Cluster:
    return cluster.Cluster.of(control_plane.clusters["management"])


@pytest.fixture(scope="session")
def tenant(control_plane: controlplane.ControlPlane) -> cluster.Cluster:
    return cluster.Cluster.of(control_plane.clusters["tenant"])


@pytest.fixture
async def management_namespace(management: cluster.Cluster) -> AsyncIterator[str]:
    name = await management.create_namespace()
    yield name
    await management.delete_namespace(name)


@pytest.fixture
async def tenant_namespace(tenant: cluster.Cluster) -> AsyncIterator[str]:
    name = await tenant.create_namespace()
    yield name
    await tenant.delete_namespace(name)


@pytest.fixture
async def management_api(management: cluster.Cluster) -> AsyncIterator[client.ApiClient]:
    async with management.api_client() as api:
        yield api


@pytest.fixture
async def tenant_api(tenant: cluster.Cluster) -> AsyncIterator[client.ApiClient]:
    async with tenant.api_client() as api:
        yield api
