"""The shape of the code base: small modules, each importable on its own, each with a docstring."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kubelb"
MAX_LINES = 600
THIRD_PARTY = (
    "aiohttp",
    "google.protobuf",
    "grpc",
    "kubernetes_asyncio.client",
    "prometheus_client",
    "pydantic",
    "uvloop",
    "yaml",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.service.discovery.v3.ads_pb2_grpc",
)

MODULES = sorted(
    p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts and p.name != "__main__.py"
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_module_is_small_and_documented(path: Path) -> None:
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (max {MAX_LINES})"
    assert ast.get_docstring(ast.parse(source)), f"{path.relative_to(ROOT)} has no module docstring"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_module_does_not_import_test_or_bench_code(path: Path) -> None:
    # tests/ and bench/ are not in the wheel; test helpers live in tests/support.
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
    outside = sorted(n for n in imported if n.split(".")[0] in ("tests", "bench"))
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    # One interpreter per module catches import cycles that a shared interpreter hides. A small
    # driver keeps that affordable: it loads the heavy third-party libraries once, then forks a
    # child per module, so every kubelb module is still imported from nothing in its child; one
    # child per CPU at a time.
    names = [module_name(p) for p in MODULES]
    driver = (
        "import importlib, os, sys\n"
        f"for lib in {THIRD_PARTY!r}:\n"
        "    importlib.import_module(lib)\n"
        "assert not [m for m in sys.modules if m == 'kubelb' or m.startswith('kubelb.')]\n"
        "failed, running = [], {}\n"
        "def reap():\n"
        "    pid, status = os.wait()\n"
        "    if status:\n"
        "        failed.append(running[pid])\n"
        "    del running[pid]\n"
        "for name in sys.argv[1:]:\n"
        "    if len(running) >= (os.cpu_count() or 1):\n"
        "        reap()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except BaseException as e:\n"
        "            print(f'{name}: {type(e).__name__}: {e}', flush=True)\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    running[pid] = name\n"
        "while running:\n"
        "    reap()\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", driver, *names],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# A section number of a document outside the repository (the section sign and a number): the
# reader cannot follow it. Say the behaviour instead.
SECTION_CITATION = re.compile(r"§\s*\d")
SOURCES = sorted(
    p
    for folder in ("kubelb", "tests", "bench", "hack")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def test_no_source_cites_sections_of_a_document_outside_the_repo() -> None:
    cited = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SECTION_CITATION.search(line)
    ]
    assert not cited, "\n".join(cited)
