"""Start one kubelb mode inside a fresh network namespace and report what it bound.

Run as `unshare --map-root-user --net python in_netns.py SPEC`, SPEC being JSON:
  {"argv": [...kubelb arguments...], "env": {...}, "servers": ["probes", ...],
   "ports": [8081, ...], "occupy": 8081 | null}
A private namespace has nothing listening, so the mode can bind its real default ports even
while other tests run on this host. Loopback there holds all of 127.0.0.0/8 and ::1: a socket
bound to every interface answers on 127.0.0.2 and ::1, one bound to 127.0.0.1 does not.

`occupy` holds that port (every IPv4 interface) before the mode starts, so it must fail to bind.
Otherwise the script waits until each name in `servers` has logged "<name> listening on", tries
a TCP connection to each port on each address, then stops the mode with SIGTERM. It prints one
JSON object: {"reachable": {port: {address: bool}}, "returncode": int, "stderr": str}.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

ADDRESSES = ("127.0.0.1", "127.0.0.2", "::1")
DEADLINE = 90.0
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """A new network namespace starts with its loopback down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


class Stderr:
    """Collects the child's stderr in a thread; `wait_for(names)` returns once every name has
    logged that it listens, or the child has closed its stderr (it exited)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, names: list[str]) -> bool:
        def done() -> bool:
            text = "".join(self.lines)
            return self.closed or all(f"{name} listening on" in text for name in names)

        with self._changed:
            return self._changed.wait_for(done, timeout=DEADLINE)

    def finish(self) -> str:
        self._thread.join(DEADLINE)
        return "".join(self.lines)


def reachable(port: int, address: str) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except OSError:
        return False


def main() -> None:
    spec = json.loads(sys.argv[1])
    loopback_up()
    holder = None
    if spec["occupy"] is not None:
        holder = socket.create_server(("0.0.0.0", spec["occupy"]))
    process = subprocess.Popen(
        [sys.executable, "-m", "kubelb", *spec["argv"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **spec["env"], "PYTHONUNBUFFERED": "1"},
    )
    stderr = Stderr(process)
    result: dict[str, object] = {"reachable": {}}
    if holder is None and stderr.wait_for(spec["servers"]) and process.poll() is None:
        result["reachable"] = {
            str(port): {address: reachable(port, address) for address in ADDRESSES}
            for port in spec["ports"]
        }
        process.send_signal(signal.SIGTERM)
    try:
        result["returncode"] = process.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        result["returncode"] = f"still running after {DEADLINE} s: killed"
    result["stderr"] = stderr.finish()
    if holder is not None:
        holder.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
