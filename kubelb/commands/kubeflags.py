"""The connection flags the cluster subcommands share, as kubectl spells them: `--kubeconfig`,
`--context`, `-n/--namespace`, `-A/--all-namespaces`; and the client they open.

The kubeconfig is `--kubeconfig`, else the first file in `$KUBECONFIG`, else the Pod's
ServiceAccount when running in a cluster, else `~/.kube/config`. The namespace is `-n`, else the
context's namespace, else `default`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from kubelb.kube import client, kubeconfig

FIELD_MANAGER = "kubelb-cli"


def add_arguments(parser: argparse.ArgumentParser, *, all_namespaces: bool = True) -> None:
    group = parser.add_argument_group("cluster connection (as kubectl)")
    group.add_argument(
        "--kubeconfig",
        help="path to the kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    group.add_argument("--context", help="the kubeconfig context to use (default: its current)")
    group.add_argument(
        "-n", "--namespace", help="the namespace (default: the context's, or `default`)"
    )
    if all_namespaces:
        group.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            help="across all namespaces (-n is ignored)",
        )


@dataclass
class Session:
    """An open client and the namespace the flags chose."""

    kube: client.Client
    namespace: str

    async def close(self) -> None:
        await self.kube.close()


async def connect(args: argparse.Namespace) -> Session:
    """Open the client the flags describe (raises kubeconfig.ConfigError when it cannot)."""
    source: kubeconfig.ApiSource
    chosen = args.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    context_namespace = ""
    if not chosen and not args.context and os.environ.get(kubeconfig.IN_CLUSTER_HOST_ENV):
        source = kubeconfig.in_cluster()
    else:
        path = Path(chosen) if chosen else Path.home() / ".kube" / "config"
        file = kubeconfig.KubeconfigFile(path, context=args.context)
        await file.api()
        source, context_namespace = file, file.namespace
    namespace = args.namespace or context_namespace or "default"
    return Session(client.Client(source, field_manager=FIELD_MANAGER), namespace)
