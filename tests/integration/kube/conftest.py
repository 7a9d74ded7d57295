"""Fixtures for kubelb.kube against the real API server; fails tests that leave tasks behind."""

from __future__ import annotations

import pytest

from kubelb.kube import client


@pytest.fixture
async def kube(management_api) -> client.Client:
    """A kubelb client (admin) on the management cluster, in the test's event loop."""
    return client.Client(management_api, field_manager="kubelb-test")


@pytest.fixture
def ns(management_namespace: str) -> str:
    return management_namespace
