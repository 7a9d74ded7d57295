"""Layer 7 routes on both data planes (the scenarios of tests/integration/dataplane/l7.py):
matches, weighted backends, redirects and fixed statuses, rewrites and header edits, mirrors,
route timeouts. Where the planes differ by design (docs/dataplane-differences.md) the scenario
is told which plane it runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.dataplane import backends, l7
from tests.integration.dataplanes.conftest import Plane

pytestmark = pytest.mark.integration


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


async def test_matches(plane: Plane, web) -> None:
    await l7.matches(plane.apply, web)


async def test_weighted_backends(plane: Plane, web) -> None:
    # Envoy draws at random; the Python data plane follows the weights exactly per cycle.
    await l7.weights(plane.apply, web, exact=plane.kind == "python")


async def test_redirects_and_fixed_statuses(plane: Plane, web) -> None:
    await l7.local_answers(plane.apply, web, envoy=plane.kind.startswith("envoy"))


async def test_rewrites_and_header_edits(plane: Plane, web) -> None:
    await l7.rewrites_and_header_edits(plane.apply, web)


async def test_mirrors(plane: Plane, web) -> None:
    await l7.mirrors(plane.apply, web)


async def test_route_timeouts(plane: Plane, web) -> None:
    await l7.timeouts(plane.apply, web)
