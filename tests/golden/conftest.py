"""Golden-file suites: `--update-golden` rewrites outputs and deletes orphans (see golden.py)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden outputs under tests/golden/*/out and delete those without a case",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    # The option exists only when this conftest is loaded at start-up (`pytest tests/golden`);
    # plain `pytest` collects it later, and then it is simply off.
    return bool(request.config.getoption("--update-golden", default=False))
