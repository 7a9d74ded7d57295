"""A running local cluster as its users see it: server URL, admin credentials, API clients.

`controlplane.ControlPlane` creates these; `kubelb dev-cluster` writes kubeconfigs from them, and
tests reach the API server through them. `api_client()` opens a new client in the caller's event
loop, so a `Cluster` can be shared by code that runs in different loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubernetes_asyncio import client


@dataclass(kw_only=True)
class Cluster:
    """One kube-apiserver (plus controller manager) of the local control plane."""

    name: str
    server: str
    kubeconfig: Path  # admin kubeconfig, self-contained
    ca_file: Path
    cert_file: Path  # admin client certificate (O=system:masters)
    key_file: Path
    etcd_prefix: str
    service_cidr: str
    startup_seconds: float = 0.0
    pids: list[int] = field(default_factory=list)

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def configuration(self) -> client.Configuration:
        """A kubernetes_asyncio Configuration for the admin identity."""
        config = client.Configuration(host=self.server)
        config.ssl_ca_cert = str(self.ca_file)
        config.cert_file = str(self.cert_file)
        config.key_file = str(self.key_file)
        return config

    def api_client(self) -> client.ApiClient:
        """A new admin ApiClient; the caller closes it: `async with cluster.api_client() as api`."""
        return client.ApiClient(self.configuration())
