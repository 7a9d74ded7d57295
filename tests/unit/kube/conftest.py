"""Fail any kube unit test that leaves asyncio tasks behind."""

from __future__ import annotations

from tests.guards import no_leftover_tasks  # noqa: F401  (autouse guard)
