"""gRPC's fork handlers stay off in every kubelb process, checked in a fresh interpreter.

The manager and standalone mode fork children (each tenant's Envoy, the xDS CA's signer) while
the xDS server's gRPC threads poll. With gRPC's fork support on, its handlers run in the forked
child before it execs and now and then abort it (`Check failed: next_worker->state == KICKED`)
or stall it; an Envoy that keeps dying so is restarted with a growing backoff, and its tenant's
LoadBalancers wait. gRPC reads `GRPC_ENABLE_FORK_SUPPORT` once, when it is imported, so kubelb
must set it before anything imports grpc: whenever the handlers run while gRPC's threads are busy,
gRPC logs "skipping fork() handlers", which this test looks for.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import asyncio, sys
from kubelb.app import logs
from kubelb.envoy import procs
from kubelb.xds import server  # imports grpc, as the manager does
import grpc

async def main():
    xds = grpc.aio.server()
    xds.add_insecure_port("127.0.0.1:0")
    await xds.start()
    try:  # as the Envoy supervisor starts a child
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "pass", preexec_fn=procs.preexec_for(die_with_parent=False))
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
