"""kubelb: centrally managed Layer 4 and Layer 7 load balancing for Kubernetes cluster fleets."""

import os as _os

__version__ = "0.1.0"

# Envoys are started from the uvloop event loop, which forks the whole process (a preexec_fn or
# not) while the xDS server's gRPC threads run. With gRPC's fork support on, its fork handlers
# then stall the loop for up to 60 s (waiting for a gRPC thread that waits for the GIL) or abort
# the child before exec. No child uses gRPC, so it is off; gRPC reads this once, when it is
# imported, hence here, before any module can import it.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
