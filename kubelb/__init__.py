"""kubelb: centrally managed Layer 4 and Layer 7 load balancing for Kubernetes cluster fleets."""

import os as _os

__version__ = "0.1.0"

# kubelb forks children (each tenant's Envoy, the xDS CA's signer) while the xDS server's gRPC
# threads poll. gRPC's fork handlers then run in the child before it execs, and now and then abort
# it (an Envoy restarted with a growing backoff while its tenant's LoadBalancers wait). No child
# uses gRPC, so they are off; gRPC reads this once, when it is imported, hence here, before any
# module can import it.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
