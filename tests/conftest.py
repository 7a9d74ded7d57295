"""Shared pytest configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kubelb.util import ports

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


# Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`) the tests of one file run on one
# worker, in order: they share module fixtures and loopback addresses. These groups of files share
# more: the e2e suite's control plane, stack and address pool; and the modules whose Envoys listen
# on fixed ports (80, 443, 8443, ...) of loopback addresses other modules use too.
XDIST_GROUPS = {
    "tests/e2e/": "e2e",
    "tests/integration/manager/test_routes.py": "fixed-ports",
    "tests/integration/manager/test_tls.py": "fixed-ports",
    "tests/integration/manager/test_hostnames.py": "fixed-ports",
    "tests/integration/manager/test_syncsecrets.py": "fixed-ports",
    "tests/integration/manager/test_https_backends.py": "fixed-ports",
    "tests/integration/standalone/test_routes.py": "fixed-ports",
    "tests/integration/standalone/test_tls.py": "fixed-ports",
    "tests/integration/cli/test_standalone.py": "fixed-ports",
    "tests/integration/test_demo.py": "fixed-ports",
}
# The ports xdist workers share out: below the kernel's ephemeral range, and clear of the fixed
# ports tests, benchmarks and the demo listen on (18080-18082; the benchmarks' LoadBalancers on
# 20000-21999; NodePorts 30000-32767).
WORKER_PORTS = (22000, 30000)


def xdist_scope(nodeid: str) -> str:
    """The unit of work a worker takes whole: the test's group, else its file."""
    path = nodeid.split("::", 1)[0]
    for prefix, group in XDIST_GROUPS.items():
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return group
    return path


def pytest_configure(config: pytest.Config) -> None:
    # A worker's servers take ports from a range no other worker uses (see kubelb.util.ports).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        ports.confine(*ports.share(int(worker.removeprefix("gw")), count, *WORKER_PORTS))


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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` hands each worker whole `xdist_scope`s. (pytest-xdist's own loadgroup
    reads `xdist_group` marks through node ids that pytest 9.2 no longer lets it rewrite.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    scheduler = LoadScopeScheduling(config, log)
    scheduler._split_scope = xdist_scope
    return scheduler
