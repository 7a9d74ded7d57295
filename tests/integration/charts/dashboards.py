"""The Grafana dashboards the manager chart ships and the metrics they query: which process
must export each dashboard's metrics, the kubelb metric names in its PromQL, and the metric
names a running process exports (from /metrics HELP/TYPE lines, so a family counts before it
has samples)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.charts import helm

FOLDER = helm.MANAGER / "dashboards"
SOURCES = {
    FOLDER / "kubelb-manager.json": "manager",
    FOLDER / "kubelb-envoy.json": "manager",
    FOLDER / "kubelb-agent.json": "agent",
}
METRIC = re.compile(r"\bkubelb_[a-z0-9_]+")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return own + [e for v in node.values() for e in exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in exprs(v)]
    return []


def queried(path: Path) -> set[str]:
    return {m for e in exprs(json.loads(path.read_text())) for m in METRIC.findall(e)}


def exported(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("# TYPE ") and len(parts) == 4:
            name, kind = parts[2], parts[3]
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in HISTOGRAM_SERIES)
    return names


async def scrape(port: int) -> set[str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200, await r.text()
        return exported(await r.text())
