"""Shared pytest configuration."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.kube_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    # Declared here, at the root, so that both `pytest tests --update-golden` and
    # `pytest tests/golden --update-golden` accept it.
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden outputs under tests/golden/*/out and delete those without a case",
    )
