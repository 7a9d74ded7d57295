"""CPU accounting from /proc, shared by the benchmarks: a process's CPU time, and how long each
core has been busy."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` (all its threads) has used so far; 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy_seconds() -> dict[int, float]:
    """Seconds each core has been busy so far (all but idle and iowait)."""
    busy: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            jiffies = [int(v) for v in values]
            busy[int(name[3:])] = (sum(jiffies) - jiffies[3] - jiffies[4]) / tick
    return busy
