"""kubectl-style output for the CLI: aligned tables, ages, and `-o yaml|json` documents. Pure."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

import yaml

OUTPUTS = ("yaml", "json")
GAP = "   "  # kubectl separates columns by three spaces


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, each as wide as its widest cell; no trailing spaces.
    No rows: an empty string (callers print kubectl's "No resources found" instead)."""
    if not rows:
        return ""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append(GAP.join(cells).rstrip())
    return "\n".join(lines) + "\n"


def age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """A creationTimestamp as kubectl shows it: 45s, 5m3s, 42m, 5h4m, 17h, 3d4h, 20d, 2y."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    now = now or datetime.datetime.now(datetime.UTC)
    return human_duration(int((now - then).total_seconds()))


def human_duration(seconds: int) -> str:
    """kubectl's HumanDuration, to the precision it shows."""
    if seconds < 0:
        return "0s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def document(data: Any, output: str) -> str:
    """`data` as `-o yaml` or `-o json` print it."""
    if output == "json":
        return json.dumps(data, indent=4) + "\n"
    if output == "yaml":
        text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return text
    raise ValueError(f"unknown output format {output!r}")


def as_list(items: Sequence[Any]) -> dict[str, Any]:
    """Several objects as kubectl prints them: a v1 List."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {}}
