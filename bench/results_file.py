"""Where the benchmarks keep their results: one JSON file each under `bench/results/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, result: Any, *, echo: bool = True) -> Path:
    """Write `result` to `bench/results/<name>.json` (and print it when `echo`)."""
    text = json.dumps(result, indent=2)
    if echo:
        print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(text + "\n")
    return path
