"""The guards every test runs under work: an async test that leaves a task running fails
(`tests/guards.py`), and a module under tests/integration or tests/e2e without its marker is
refused at collection (`tests/conftest.py`), so `-m "not integration"` stays the fast set."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parent.parent
LEAVES_A_TASK = """
import asyncio


async def test_leaves_a_task():
    asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="forgotten")


async def test_awaits_its_task():
    await asyncio.get_running_loop().create_task(asyncio.sleep(0))


def test_sync():
    pass
"""


def test_an_async_test_that_leaves_a_task_running_fails(tmp_path: Path) -> None:
    test = tmp_path / "test_tasks.py"
    test.write_text(LEAVES_A_TASK)
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    argv = [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider",
            "-p", "tests.guards", "-o", "asyncio_mode=auto",
            "-o", "asyncio_default_fixture_loop_scope=function"]  # fmt: skip
    run = subprocess.run(argv, cwd=ROOT, env=environ, capture_output=True, text=True,
                         check=False)  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "test left tasks running" in out, out
    assert "forgotten" in out, out
    # The guard fails the leaver's teardown alone: its call passed, the other two tests pass.
    assert "3 passed, 1 error" in out, out
    assert "ERROR at teardown of test_leaves_a_task" in out, out


@dataclass
class Item:
    """What the collection check reads of a pytest item."""

    path: Path
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_a_module_without_its_folder_marker_is_refused() -> None:
    tests = conftest.TESTS
    unmarked = Item(tests / "integration" / "somewhere" / "test_x.py")
    items = [
        unmarked,
        Item(tests / "integration" / "test_y.py", {"integration"}),
        Item(tests / "e2e" / "test_z.py", {"e2e"}),
        Item(tests / "e2e" / "test_w.py", {"integration"}),
        Item(tests / "unit" / "test_v.py"),
        Item(Path("/elsewhere/integration/test_u.py")),
    ]
    with pytest.raises(pytest.UsageError) as refused:
        conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert str(refused.value).splitlines() == [
        "tests/e2e/test_w.py lacks `pytestmark = pytest.mark.e2e`",
        "tests/integration/somewhere/test_x.py lacks `pytestmark = pytest.mark.integration`",
    ]
    marked = [i for i in items if i.path.name not in ("test_x.py", "test_w.py")]
    conftest.pytest_collection_modifyitems(None, marked)  # type: ignore[arg-type]
