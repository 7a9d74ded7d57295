"""Golden-file suites: `--update-golden` (declared in tests/conftest.py) rewrites outputs and
deletes orphans (see golden.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
