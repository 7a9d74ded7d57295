"""Where the benchmarks keep their results, and the options every suite shares.

Each suite takes `--out DIR` (default `bench/results/`) and `--quick` (a smoke-test size that
only proves the suite still runs: `tests/integration/test_bench_smoke.py`). A quick run writes
its files only where `--out` says, so it never replaces the recorded results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def add_arguments(parser: argparse.ArgumentParser, quick: str) -> None:
    """`--out` and `--quick`; `quick` says what a quick run of this suite does."""
    parser.add_argument(
        "--out", type=Path, default=None,
        help="folder for the result files (default: bench/results/, none for a --quick run)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"smoke-test size: {quick}")


def folder(args: argparse.Namespace) -> Path | None:
    """Where this run's files go: --out, else bench/results/ unless the run is --quick."""
    if args.out is not None:
        return Path(args.out)
    return None if args.quick else RESULTS


def save(folder: Path | None, filename: str, text: str) -> Path | None:
    """Write `text` to `folder/filename` (nothing when `folder` is None)."""
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(text)
    return path


def write(name: str, result: Any, folder: Path | None, *, echo: bool = True) -> Path | None:
    """Write `result` as `<folder>/<name>.json` (and print it when `echo`)."""
    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    return save(folder, f"{name}.json", text + "\n")
