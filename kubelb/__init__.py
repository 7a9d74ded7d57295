"""kubelb: centrally managed Layer 4 and Layer 7 load balancing for Kubernetes cluster fleets."""

__version__ = "0.1.0"
