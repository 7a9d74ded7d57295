"""The agent's settings and flags: the flags of upstream KubeLB's CCM, the ones kubelb adds,
and the upstream flags kubelb accepts without acting on them (each set one is logged with
what kubelb does instead). `settings_from_args` turns parsed flags into `Settings`.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kubelb.agent import (
    common,
    nodes,
    tokens,
)
from kubelb.api import gatewayapi
from kubelb.app import logs
from kubelb.observe import server

logger = logging.getLogger(__name__)

LEADER_ELECTION_ID = "19f32e7b.ccm.kubelb.k8c.io"

SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    tenant: common.Tenant
    kubeconfig: Path | None
    kubelb_kubeconfig: Path
    node_address_type: nodes.AddressType = nodes.AddressType.EXTERNAL_IP
    use_loadbalancer_class: bool = False
    enable_cloud_provider: bool = True
    metrics_addr: str = ":9445"
    health_probe_bind_address: str = ":8081"
    enable_leader_election: bool = True
    leader_election_namespace: str = "kube-system"
    log_level: str = "info"
    log: logs.Options = logs.DEFAULT_OPTIONS
    kubelb_kubeconfig_secret: tokens.SecretRef | None = None
    token_expiration_seconds: int = 86400
    token_renew_remaining: float = 0.2
    use_ingress_class: bool = True
    use_gateway_class: bool = True
    enable_gateway_api: bool = False
    disable_ingress_controller: bool = False
    disable_gateway_controller: bool = False
    disable_httproute_controller: bool = False
    disable_grpcroute_controller: bool = False
    install_gateway_api_crds: bool = False
    gateway_api_crds_channel: gatewayapi.Channel = gatewayapi.DEFAULT_CHANNEL
    enable_secret_synchronizer: bool = False
    # Not flags: narrow what the agent watches (tests share one tenant cluster), and timings.
    service_namespace: str | None = None
    node_label_selector: str | None = None
    resync_period: float = 600.0
    kubeconfig_check_interval: float = 5.0
    token_retry_interval: float = 30.0
    workers: int = 4


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _bool_flag(parser: argparse.ArgumentParser, flag: str, default: bool, text: str) -> None:
    # Go-style booleans: `--flag`, `--flag=true`, `--flag=false`.
    parser.add_argument(
        flag,
        type=parse_bool,
        nargs="?",
        const=True,
        default=default,
        metavar="BOOL",
        help=f"{text} (default: {str(default).lower()})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="tenant cluster kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    parser.add_argument(
        "--kubelb-kubeconfig",
        type=Path,
        default=Path.home() / ".kube" / "kubelb",
        help="management cluster kubeconfig issued for this tenant; re-read when "
        "it changes (default: ~/.kube/kubelb). Its token is renewed before it expires "
        "(TokenRequest for the agent's own ServiceAccount); an expired token fails the "
        "start with how to fetch a fresh kubeconfig",
    )
    parser.add_argument(
        "--kubelb-kubeconfig-secret",
        metavar="[NAMESPACE/]NAME",
        default="",
        help="tenant-cluster Secret (key kubelb) that --kubelb-kubeconfig is mounted from: "
        "each renewed token is written into it, so a restarted agent starts with a valid "
        "token (needs get and patch on that Secret; namespace default: the pod's). "
        "Default: none, renewed tokens live in memory only",
    )
    parser.add_argument(
        "--kubelb-token-expiration",
        type=int,
        default=86400,
        metavar="SECONDS",
        help="lifetime asked for a renewed token (at least 600; the management API "
        "server may shorten it) (default: 86400)",
    )
    parser.add_argument(
        "--kubelb-token-renew-remaining",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="renew the token when this part of its lifetime is left, e.g. 0.2: after 19.2 h "
        "of a 24 h token (default: 0.2)",
    )
    parser.add_argument(
        "--cluster-name",
        required=True,
        help="tenant name; the tenant- prefix is added when missing",
    )
    parser.add_argument(
        "--node-address-type",
        choices=[t.value for t in nodes.AddressType],
        default=nodes.AddressType.EXTERNAL_IP.value,
        help="which node address KubeLB sends traffic to (default: ExternalIP)",
    )
    _bool_flag(
        parser,
        "--use-loadbalancer-class",
        False,
        "serve only Services with spec.loadBalancerClass: kubelb",
    )
    _bool_flag(
        parser,
        "--enable-cloud-provider",
        True,
        "false: use the Service's existing load-balancer address as the endpoint instead "
        "of the nodes (KubeLB in front of another implementation)",
    )
    _bool_flag(
        parser, "--use-ingress-class", True, "serve only Ingresses with ingressClassName: kubelb"
    )
    _bool_flag(
        parser,
        "--use-gateway-class",
        True,
        "serve the Gateway kubelb only with gatewayClassName: kubelb",
    )
    _bool_flag(
        parser,
        "--enable-gateway-api",
        False,
        "serve Gateway, HTTPRoute and GRPCRoute (needs the Gateway API CRDs)",
    )
    for kind in ("ingress", "gateway", "httproute", "grpcroute"):
        _bool_flag(parser, f"--disable-{kind}-controller", False, f"do not serve {kind} objects")
    _bool_flag(
        parser,
        "--enable-secret-synchronizer",
        False,
        "turn Secrets labelled kubelb.k8c.io/managed-by=kubelb into SyncSecrets (every "
        "SyncSecret is copied to the management cluster either way)",
    )
    parser.add_argument(
        "--metrics-addr", default=":9445", help="Prometheus /metrics (default :9445)"
    )
    parser.add_argument(
        "--health-probe-bind-address", default=":8081", help="/healthz and /readyz (default :8081)"
    )
    _bool_flag(
        parser,
        "--enable-leader-election",
        True,
        f"only one replica writes (Lease {LEADER_ELECTION_ID})",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default="",
        help="namespace of the Lease in the tenant cluster (default: the pod's "
        "namespace, else kube-system)",
    )
    _bool_flag(
        parser,
        "--install-gateway-api-crds",
        False,
        f"install the Gateway API CRDs shipped with kubelb ({_gateway_api_version()}) in the "
        "tenant cluster before the controllers start, and keep them as shipped (edits and "
        "deletions are undone). Needs create, get, list, patch and watch on "
        "customresourcedefinitions",
    )
    parser.add_argument(
        "--gateway-api-crds-channel",
        choices=gatewayapi.CHANNELS,
        default=gatewayapi.DEFAULT_CHANNEL,
        help="which Gateway API CRDs --install-gateway-api-crds installs: standard, or "
        "experimental (adds TCPRoute, UDPRoute, XBackendTrafficPolicy, XMesh and "
        "experimental fields) (default: %(default)s)",
    )
    logs.add_arguments(parser)
    parser.add_argument(
        "--node-address-label-selector",
        default="",
        metavar="SELECTOR",
        help="only Nodes matching this label selector become the tenant's addresses "
        "(upstream Enterprise Edition flag) (default: every Node)",
    )
    _add_unhonoured(parser)


# Upstream CCM flags kubelb takes (so upstream's chart args start it) but does not act on:
# flag -> (default, what kubelb does instead). Each set to a non-default value is logged.
UNHONOURED: dict[str, tuple[object, str]] = {
    "--ingress-conversion-only": (False, "kubelb has no Ingress-to-Gateway converter; the agent "
                                  "runs its usual controllers, serving Ingresses as Routes"),
    "--enable-ingress-conversion": (False, "kubelb has no Ingress-to-Gateway converter; "
                                    "the agent serves Ingresses as Routes directly"),
    "--conversion-gateway-name": ("kubelb", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-gateway-namespace": ("kubelb", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-gateway-class": ("kubelb", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-ingress-class": ("", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-domain-replace": ("", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-domain-suffix": ("", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-propagate-external-dns-annotations": (
        True, "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-gateway-annotations": ("", "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-disable-envoy-gateway-features": (
        False, "kubelb has no Ingress-to-Gateway conversion"),
    "--conversion-copy-tls-secrets": (True, "kubelb has no Ingress-to-Gateway conversion"),
    "--max-node-address-count": (0, "upstream Enterprise Edition flag; kubelb sends every "
                                 "Node address of the chosen type"),
}  # fmt: skip


def _add_unhonoured(parser: argparse.ArgumentParser) -> None:
    for flag, (default, instead) in UNHONOURED.items():
        text = f"accepted for upstream's chart, not acted on: {instead}"
        if isinstance(default, bool):
            _bool_flag(parser, flag, default, text)
        elif isinstance(default, int):
            parser.add_argument(flag, type=int, default=default, help=f"{text} (default: 0)")
        else:
            shown = f"{default!r}" if default else "none"
            parser.add_argument(
                flag, default=default, metavar="VALUE", help=f"{text} (default: {shown})"
            )


def unhonoured(args: argparse.Namespace) -> list[str]:
    """A log line for each upstream flag set to a value kubelb cannot honour."""
    notes = []
    for flag, (default, instead) in UNHONOURED.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value != default:
            shown = str(value).lower() if isinstance(value, bool) else value
            notes.append(f"{flag}={shown}: {instead}")
    return notes


def _gateway_api_version() -> str:
    try:
        return gatewayapi.version()
    except gatewayapi.GatewayAPIDataError:
        return "missing from this installation"


def settings_from_args(args: argparse.Namespace) -> Settings:
    try:
        tenant = common.Tenant.from_cluster_name(args.cluster_name)
    except ValueError as exc:
        raise SystemExit(f"kubelb: --cluster-name: {exc}") from None
    secret = None
    if args.kubelb_kubeconfig_secret:
        try:
            secret = tokens.SecretRef.parse(args.kubelb_kubeconfig_secret, pod_namespace())
        except ValueError as exc:
            raise SystemExit(f"kubelb: --kubelb-kubeconfig-secret: {exc}") from None
    try:
        tokens.RenewalOptions(expiration_seconds=args.kubelb_token_expiration,
                              renew_remaining=args.kubelb_token_renew_remaining)  # fmt: skip
    except ValueError as exc:
        raise SystemExit(f"kubelb: --kubelb-token-expiration/-renew-remaining: {exc}") from None
    for flag in ("metrics_addr", "health_probe_bind_address"):
        try:
            server.parse_address(getattr(args, flag))
        except ValueError as exc:
            raise SystemExit(f"kubelb: --{flag.replace('_', '-')}: {exc}") from None
    log = logs.options_from_args(args)
    return Settings(
        tenant=tenant,
        kubeconfig=args.kubeconfig,
        kubelb_kubeconfig=args.kubelb_kubeconfig,
        node_address_type=nodes.AddressType(args.node_address_type),
        use_loadbalancer_class=args.use_loadbalancer_class,
        enable_cloud_provider=args.enable_cloud_provider,
        metrics_addr=args.metrics_addr,
        health_probe_bind_address=args.health_probe_bind_address,
        enable_leader_election=args.enable_leader_election,
        leader_election_namespace=args.leader_election_namespace or pod_namespace(),
        log_level=log.level_name,
        log=log,
        node_label_selector=args.node_address_label_selector or None,
        kubelb_kubeconfig_secret=secret,
        token_expiration_seconds=args.kubelb_token_expiration,
        token_renew_remaining=args.kubelb_token_renew_remaining,
        use_ingress_class=args.use_ingress_class,
        use_gateway_class=args.use_gateway_class,
        enable_gateway_api=args.enable_gateway_api,
        disable_ingress_controller=args.disable_ingress_controller,
        disable_gateway_controller=args.disable_gateway_controller,
        disable_httproute_controller=args.disable_httproute_controller,
        disable_grpcroute_controller=args.disable_grpcroute_controller,
        install_gateway_api_crds=args.install_gateway_api_crds,
        gateway_api_crds_channel=args.gateway_api_crds_channel,
        enable_secret_synchronizer=args.enable_secret_synchronizer,
    )


def pod_namespace() -> str:
    """The namespace this pod runs in, or kube-system outside a pod."""
    # POD_NAMESPACE is kubelb's manifest's name for it, NAMESPACE upstream chart's.
    for name in ("POD_NAMESPACE", "NAMESPACE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip() or "kube-system"
    except OSError:
        return "kube-system"
