"""Shared pytest configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.kube_fixtures", "tests.guards"]

TESTS = Path(__file__).resolve().parent
# The marker every test below a top-level folder must carry, so that `-m "not integration"`
# selects exactly the fast tests. pytest ignores `pytestmark` in a conftest.py: each test module
# sets its own.
FOLDER_MARKERS = {"integration": "integration", "e2e": "e2e"}


def pytest_addoption(parser: pytest.Parser) -> None:
    # Declared here, at the root, so that both `pytest tests --update-golden` and
    # `pytest tests/golden --update-golden` accept it.
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden outputs under tests/golden/*/out and delete those without a case",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = sorted(
        {f"{path} lacks `pytestmark = pytest.mark.{m}`" for path, m in _unmarked(items)}
    )
    if unmarked:
        raise pytest.UsageError("\n".join(unmarked))


def _unmarked(items: list[pytest.Item]) -> list[tuple[Path, str]]:
    found = []
    for item in items:
        try:
            relative = item.path.resolve().relative_to(TESTS)
        except ValueError:
            continue
        marker = FOLDER_MARKERS.get(relative.parts[0])
        if marker is not None and item.get_closest_marker(marker) is None:
            found.append((Path(TESTS.name, relative), marker))
    return found
