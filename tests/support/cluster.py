"""A local cluster with the helpers tests use: namespaces, Nodes (there is no kubelet), and
kubeconfigs for ServiceAccounts, including the identity a deploy manifest gives its workload.

`Cluster.of` wraps what `kubelb.localcluster.controlplane.ControlPlane` started. Each helper opens
a short-lived admin ApiClient in the caller's event loop, so a `Cluster` can be shared by tests
that run in different loops. Callers that already hold a client can use the functions in
`tests.support.nodes` and `tests.support.kubeconfig` directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import yaml
from kubernetes_asyncio import client

from kubelb.kube import client as raw_client, errors, resources
from kubelb.localcluster import cluster as local
from tests.support import kubeconfig, nodes

# What a deploy manifest's workload runs as (`Cluster.deployed_identity`).
_IDENTITY_KINDS = {r.kind: r for r in (
    resources.NAMESPACES, resources.SERVICE_ACCOUNTS, resources.CLUSTER_ROLES,
    resources.CLUSTER_ROLE_BINDINGS, resources.ROLES, resources.ROLE_BINDINGS,
)}  # fmt: skip


class Cluster(local.Cluster):
    """`kubelb.localcluster.cluster.Cluster` plus the writes tests make as the admin."""

    @classmethod
    def of(cls, started: local.Cluster) -> Self:
        """The same cluster (same fields, same `pids` list) with the test helpers."""
        return cls(**{f.name: getattr(started, f.name) for f in dataclasses.fields(started)})

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
        """See `tests.support.nodes.create_node`."""
        async with self.api_client() as api:
            return await nodes.create_node(
                api, name, addresses=addresses, ready=ready, labels=labels
            )

    async def set_node_ready(self, name: str, ready: bool | str) -> client.V1Node:
        """See `tests.support.nodes.set_node_ready`."""
        async with self.api_client() as api:
            return await nodes.set_node_ready(api, name, ready)

    async def set_node_addresses(
        self, name: str, addresses: Sequence[nodes.NodeAddress]
    ) -> client.V1Node:
        """See `tests.support.nodes.set_node_addresses`."""
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
