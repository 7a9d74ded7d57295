"""A running test cluster as its users see it: server URL, admin kubeconfig, API clients, helpers.

`controlplane.ControlPlane` creates these; tests and `kubelb dev-cluster` use them.
Each helper opens a short-lived admin ApiClient in the caller's event loop, so a `Cluster` can be
shared by tests that run in different loops. Callers that already hold a client can use the
functions in `kubelb.localcluster.nodes` and `kubelb.localcluster.kubeconfig` directly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes_asyncio import client

from kubelb.kube import client as raw_client, errors, resources
from kubelb.localcluster import kubeconfig, nodes

logger = logging.getLogger(__name__)

# What a deploy manifest's workload runs as (`Cluster.deployed_identity`).
_IDENTITY_KINDS = {r.kind: r for r in (
    resources.NAMESPACES, resources.SERVICE_ACCOUNTS, resources.CLUSTER_ROLES,
    resources.CLUSTER_ROLE_BINDINGS, resources.ROLES, resources.ROLE_BINDINGS,
)}  # fmt: skip


@dataclass(kw_only=True)
class Cluster:
    """One kube-apiserver (plus controller manager) of the test control plane."""

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

    async def create_namespace(self, prefix: str = "test") -> str:
        """Create a namespace named `<prefix>-<random>` and return its name."""
        body = client.V1Namespace(metadata=client.V1ObjectMeta(generate_name=f"{prefix}-"))
        async with self.api_client() as api:
            created = await client.CoreV1Api(api).create_namespace(body)
        name: str = created.metadata.name
        return name

    async def delete_namespace(self, name: str) -> None:
        """Start deleting namespace `name` (the namespace controller finishes it); 404 is fine."""
        async with self.api_client() as api:
            try:
                await client.CoreV1Api(api).delete_namespace(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

    async def create_node(
        self,
        name: str,
        *,
        addresses: Sequence[nodes.NodeAddress],
        ready: bool = True,
        labels: Mapping[str, str] | None = None,
    ) -> client.V1Node:
        """See `kubelb.localcluster.nodes.create_node`."""
        async with self.api_client() as api:
            return await nodes.create_node(
                api, name, addresses=addresses, ready=ready, labels=labels
            )

    async def set_node_ready(self, name: str, ready: bool) -> client.V1Node:
        """See `kubelb.localcluster.nodes.set_node_ready`."""
        async with self.api_client() as api:
            return await nodes.set_node_ready(api, name, ready)

    async def set_node_addresses(
        self, name: str, addresses: Sequence[nodes.NodeAddress]
    ) -> client.V1Node:
        """See `kubelb.localcluster.nodes.set_node_addresses`."""
        async with self.api_client() as api:
            return await nodes.set_node_addresses(api, name, addresses)

    async def delete_node(self, name: str) -> None:
        async with self.api_client() as api:
            await nodes.delete_node(api, name)

    async def deployed_identity(self, manifest: str, path: Path) -> Path:
        """What a workload of a deploy manifest runs as: create the manifest's Namespace,
        ServiceAccount and RBAC documents (those present already are left as they are) and
        write a kubeconfig with a token of its one ServiceAccount to `path`. Other documents
        (Deployments, Services) are ignored."""
        docs = [d for d in yaml.safe_load_all(manifest) if d and d.get("kind") in _IDENTITY_KINDS]
        accounts = [d["metadata"] for d in docs if d["kind"] == "ServiceAccount"]
        if len(accounts) != 1:
            raise ValueError(f"the manifest has {len(accounts)} ServiceAccounts, not one")
        async with self.api_client() as api:
            kube = raw_client.Client(api, field_manager="kubelb-test")
            for doc in docs:
                with contextlib.suppress(errors.AlreadyExistsError):
                    await kube.create(_IDENTITY_KINDS[doc["kind"]], doc)
        account = accounts[0]
        return await self.service_account_kubeconfig(
            account["namespace"], account["name"], path, create=False
        )

    async def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        path: Path,
        *,
        expiration_seconds: int = 3600,
        create: bool = True,
    ) -> Path:
        """Write a kubeconfig for ServiceAccount `namespace/name` (token via TokenRequest) to
        `path` and return `path`. With `create`, the ServiceAccount is created if absent. Its
        permissions are whatever Roles the caller binds to it."""
        async with self.api_client() as api:
            config = await kubeconfig.service_account_config(
                api,
                cluster=self.name,
                server=self.server,
                ca_pem=self.ca_pem,
                namespace=namespace,
                name=name,
                expiration_seconds=expiration_seconds,
                create=create,
            )
        return kubeconfig.write(path, config)
