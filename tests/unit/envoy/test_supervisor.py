from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

from kubelb.envoy import logpipe, procs, supervisor


def test_restarts_back_off_doubling_up_to_half_a_minute() -> None:
    delays = [supervisor.RESTART_BACKOFF.delay(n) for n in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_kills_from_outside_restart_within_two_seconds() -> None:
    assert [supervisor.QUICK_RESTART.delay(n) for n in range(5)] == [0.2, 0.4, 0.8, 1.6, 2.0]


def feed(data: bytes) -> list[str]:
    async def run() -> list[str]:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        stream.feed_eof()
        lines: list[str] = []
        await logpipe.pump(stream, lines.append)
        return lines

    return asyncio.run(run())


def test_pump_cuts_long_lines_with_a_marker_and_goes_on() -> None:
    long = b"x" * (200 * 1024)
    lines = feed(b"first\n" + long + b"\nafter\nlast without newline")
    assert lines[0] == "first"
    assert lines[1] == "x" * logpipe.MAX_LOG_LINE + logpipe.TRUNCATED % (
        len(long) - logpipe.MAX_LOG_LINE
    )
    assert lines[2:] == ["after", "last without newline"]


def test_exit_describes_code_signal_and_the_cause_from_the_log() -> None:
    tail = (
        "[error][envoy_bug] envoy bug failure: socket(2) failed, got error: Too many open files",
        "[critical][assert] assert failure: io_handle_",
    )
    assert procs.Exit("n", -6, tail).describe() == "signal SIGABRT (Too many open files)"
    assert procs.Exit("n", 1, ("[critical][main] bad flag",)).describe() == (
        "exit code 1 (bad flag)"
    )
    assert procs.Exit("n", -9, ()).killed
    assert not procs.Exit("n", -6, ()).killed
    assert "unknown" in procs.Exit("n", None, ()).describe()


def test_reap_kills_recorded_envoys_only_if_still_the_same_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record = {"pid": proc.pid, "start_time": 0, "admin_port": 1, "bootstrap": "",
                  "binary": ""}  # fmt: skip
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / supervisor.RECORD).write_text(json.dumps(record))
        assert supervisor.reap(tmp_path) == []  # another start time: another process
        stat = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        record["start_time"] = int(stat[19])
        (tmp_path / "a" / supervisor.RECORD).write_text(json.dumps(record))
        assert supervisor.reap(tmp_path) == [proc.pid]
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
