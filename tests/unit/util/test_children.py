"""Children started through `kubelb.util.children` die with their parent, even when it is
SIGKILLed, and are started without a `preexec_fn` (which would fork the whole multi-threaded
process and run its fork handlers). Real processes: `sleep`, `sh`, a Python parent."""

from __future__ import annotations

import ast
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelb.util import children

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")

# A parent that starts `sleep 600` the way kubelb does (`children.popen` from any thread, or
# `children.command` on its event loop's thread, as the Envoy supervisor does), prints its pid,
# and stays until it is killed.
PARENT = """
import asyncio, sys
from kubelb.util import children

async def main() -> None:
    if sys.argv[1] == "popen":
        pid = children.popen(["sleep", "600"]).pid
    else:
        pid = (await asyncio.create_subprocess_exec(*children.command(["sleep", "600"]))).pid
    print(pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


@pytest.fixture
def parent(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """(the parent, its `sleep` child's pid)."""
    process = subprocess.Popen([sys.executable, "-c", PARENT, request.param],
                               stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    assert process.stdout is not None
    pid = int(process.stdout.readline())
    try:
        yield process, pid
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        if _cmdline(pid) == ["sleep", "600"]:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("parent", ["popen", "command"], indirect=True)
def test_the_child_dies_when_its_parent_is_sigkilled(
    parent: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, pid = parent
    child = os.pidfd_open(pid)
    try:
        # The shim has become `sleep` itself (the same pid) before the parent is killed, so the
        # kernel's request is what ends it, not the shim's own check.
        deadline = time.monotonic() + 60
        while _cmdline(pid) != ["sleep", "600"]:
            assert time.monotonic() < deadline, f"the child never ran sleep: {_cmdline(pid)}"
            time.sleep(0.01)
        assert not select.select([child], [], [], 0)[0], "the child exited on its own"
        process.kill()
        process.wait()
        exited, _, _ = select.select([child], [], [], 60)
        assert exited, "the child outlived its SIGKILLed parent"
    finally:
        os.close(child)


# Counts the Python-level fork handlers' runs: subprocess runs them only for a `preexec_fn` (it
# then forks the whole process); without one it vforks and runs no Python code in the child.
FORKS = """
import asyncio, os, subprocess
from kubelb.util import children

forks = []
os.register_at_fork(before=lambda: forks.append(1))
subprocess.run(["true"], preexec_fn=lambda: None, check=True)
assert forks, "the check itself: a preexec_fn runs the fork handlers"
forks.clear()
assert children.popen(["true"]).wait() == 0

async def main() -> None:
    proc = await asyncio.create_subprocess_exec(*children.command(["true"], fd_limit=512))
    assert await proc.wait() == 0

asyncio.run(main())
print(len(forks))
"""


def test_children_start_without_a_preexec_fn() -> None:
    run = subprocess.run([sys.executable, "-c", FORKS], capture_output=True, text=True,
                         cwd=ROOT, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0"]


def test_no_module_of_kubelb_passes_a_preexec_fn() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.value.lineno}"
        for path in sorted((ROOT / "kubelb").rglob("*.py"))
        if "preexec_fn" in (text := path.read_text())
        for node in ast.walk(ast.parse(text, str(path)))
        if isinstance(node, ast.keyword) and node.arg == "preexec_fn"
    ]
    assert found == []


def test_the_shim_runs_nothing_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    """Its parent died before the kernel's request took effect: it is no longer the named one."""
    marker = tmp_path / "ran"
    wrapped = children.command(["touch", str(marker)])
    options = wrapped.index("--die-with") + 1
    wrapped[options] = f"{os.getpid() + 1_000_000}:{int(signal.SIGTERM)}"  # not our parent
    assert subprocess.run(wrapped, check=False).returncode == 1
    assert not marker.exists()


def test_the_child_starts_as_subprocess_starts_it() -> None:
    """The same pid, ignored signals and file descriptor limit as a plain start (SIGPIPE is not
    left ignored by the shim's Python), unless a limit is asked for."""
    probe = ["sh", "-c", 'echo "$$"; grep SigIgn /proc/self/status; ulimit -n']
    plain = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split("\n")
    shimmed = children.popen(probe, stdout=subprocess.PIPE)
    out, _ = shimmed.communicate()
    lines = out.decode().split("\n")
    assert int(lines[0]) == shimmed.pid
    assert lines[1:] == plain[1:]
    limited = subprocess.run(children.command(probe, die_with_parent=False, fd_limit=512),
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert limited.stdout.split("\n")[2] == "512"


def test_a_program_that_cannot_run_fails_at_once() -> None:
    with pytest.raises(FileNotFoundError):
        children.command(["/nonexistent/kubelb-test-binary"])
    with pytest.raises(FileNotFoundError):
        children.popen(["kubelb-no-such-program"])
