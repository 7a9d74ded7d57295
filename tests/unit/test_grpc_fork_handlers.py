"""gRPC's fork handlers stay off in every kubelb process, checked in a fresh interpreter.

The manager and standalone mode start children (each tenant's Envoy) from the uvloop event loop
while the xDS server's gRPC threads run. uvloop forks the whole process for that, with or without
a `preexec_fn`, so gRPC's fork handlers run when its fork support is on: the prepare handler waits
up to 60 s for gRPC's thread pool to stop, and one of its threads that waits for the GIL (in the
xDS server's certificate fetcher) cannot, so the event loop stands still for 60 s; in the child,
gRPC's code now and then aborts it before exec (`Check failed: next_worker->state == KICKED`).
gRPC reads `GRPC_ENABLE_FORK_SUPPORT` once, when it is imported, so kubelb must set it before
anything imports grpc. Whenever the handlers run while gRPC's threads are busy, gRPC logs
"skipping fork() handlers", which this test looks for.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import asyncio, sys
from kubelb.app import logs
from kubelb.xds import server  # imports grpc, as the manager does
import grpc

async def main():
    xds = grpc.aio.server()
    xds.add_insecure_port("127.0.0.1:0")
    await xds.start()
    try:  # as the Envoy supervisor starts a child: uvloop forks, with or without a preexec_fn
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "pass", start_new_session=True)
        print("child exit", await child.wait())
    finally:
        await xds.stop(None)

logs.run_loop(main())
"""


def test_a_child_forked_beside_the_grpc_server_runs_no_grpc_fork_handler() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    env["GRPC_VERBOSITY"] = "INFO"  # the level of gRPC's "skipping fork() handlers"
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "child exit 0" in done.stdout
    assert "fork() handlers" not in done.stderr, done.stderr
