"""Run the KubeLB agent in a tenant cluster (upstream: the KubeLB CCM).

Nodes become the tenant's Addresses and each Service of type LoadBalancer a LoadBalancer in the
management cluster namespace tenant-<cluster-name>; the address KubeLB assigns is written back to
the Service's status. Each Ingress of class kubelb (and, with --enable-gateway-api, the Gateway
kubelb and the HTTPRoutes and GRPCRoutes attached to it) becomes a Route there, carrying copies
of the Services it references; the status KubeLB reports is copied back. The management
cluster is reached only with --kubelb-kubeconfig, the kubeconfig issued for this tenant, re-read
when the file changes (token rotation needs no restart).

Example:
  kubelb --mode=agent --cluster-name=shop --kubelb-kubeconfig=/etc/kubelb/kubeconfig \
    --kubelb-kubeconfig-secret=kubelb/kubelb-cluster
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kubelb.agent import (
    common,
    gatewaycrds,
    gwapi,
    ingresses,
    nodes,
    routemapping,
    routes,
    secrets,
    servicecopies,
    services,
    tokens,
)
from kubelb.api import gatewayapi
from kubelb.app import logs, runner
from kubelb.kube import (
    client,
    controller,
    events,
    informer,
    kubeconfig,
    leader,
    resources,
    writer,
)
from kubelb.observe import agent_metrics, server
from kubelb.util import logsafe

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


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logs.setup(settings.log, fields={"tenant": settings.tenant.namespace})
    for note in unhonoured(args):
        logger.warning("%s", note)
    try:
        return logs.run_loop(serve(settings))
    except (kubeconfig.ConfigError, server.BindError, gatewaycrds.GatewayCRDError) as exc:
        logger.error("%s", exc)
        return 1


class Agent:
    """The running agent: informers on both clusters, the two controllers (behind leader
    election when enabled), probes and metrics. `open()` builds it; `run()` until cancelled."""

    def __init__(
        self,
        settings: Settings,
        tenant_source: kubeconfig.ApiSource,
        management_source: kubeconfig.ApiSource,
    ) -> None:
        self.settings = settings
        tenant = settings.tenant
        self.tenant_client = client.Client(tenant_source, field_manager=common.COMPONENT)
        self.management_client = client.Client(management_source, field_manager=common.COMPONENT)
        self.management = common.Management(self.management_client)
        self.tenant_informers = informer.Informers(self.tenant_client)
        self.management_informers = informer.Informers(self.management_client)
        self.node_informer = self.tenant_informers.get(
            resources.NODES, label_selector=settings.node_label_selector
        )
        self.lb_informer = self.management_informers.get(
            resources.LOAD_BALANCERS, namespace=tenant.namespace
        )
        self.lb_informer.add_indexer(services.ORIGIN_INDEX, services.origin_index)
        addresses_watch = nodes.addresses_watch(tenant)
        addresses_informer = self.management_informers.get(
            addresses_watch.resource,
            namespace=addresses_watch.namespace,
            field_selector=addresses_watch.field_selector,
        )
        self.recorder = events.EventRecorder(self.tenant_client, common.COMPONENT)
        self.node_reconciler = nodes.NodeReconciler(
            tenant=tenant,
            nodes=self.node_informer.store,
            addresses=addresses_informer.store,
            management=self.management,
            address_type=settings.node_address_type,
        )
        self.node_controller = controller.Controller(
            self.node_reconciler, self.management_informers, resync_period=settings.resync_period
        )
        common.link(
            self.node_controller,
            self.node_informer,
            mapper=self.node_reconciler.addresses_key,
            predicate=nodes.node_changed,
        )
        service_informer = self.tenant_informers.get(
            resources.SERVICES, namespace=settings.service_namespace
        )
        self.tenant_writer = writer.Writer(self.tenant_client)
        self.service_reconciler = services.ServiceReconciler(
            tenant=tenant,
            services=service_informer.store,
            loadbalancers=self.lb_informer.store,
            management=self.management,
            tenant_writer=self.tenant_writer,
            recorder=self.recorder,
            use_loadbalancer_class=settings.use_loadbalancer_class,
            cloud_provider=settings.enable_cloud_provider,
            namespace=settings.service_namespace,
        )
        self.service_controller = controller.Controller(
            self.service_reconciler,
            self.tenant_informers,
            workers=settings.workers,
            resync_period=settings.resync_period,
        )
        common.link(self.service_controller, self.lb_informer, mapper=services.service_keys)
        self.source_reconcilers: dict[str, routes.SourceReconciler] = {}
        self.source_controllers: dict[str, controller.Controller] = {}
        self.route_informer: informer.Informer | None = None
        kinds = source_kinds(settings)
        if kinds:
            self.route_informer = self.management_informers.get(
                resources.ROUTES, namespace=tenant.namespace
            )
            self.route_informer.add_indexer(routes.ORIGIN_INDEX, routemapping.origin_index)
            self._add_source_controllers(kinds, self.route_informer, service_informer)
        self._add_secret_controllers()
        self.gateway_crds = (
            gatewaycrds.GatewayCRDs(
                self.tenant_client,
                self.tenant_informers,
                settings.gateway_api_crds_channel,
                resync_period=settings.resync_period,
            )
            if settings.install_gateway_api_crds
            else None
        )
        self.elector = (
            leader.LeaderElector(
                self.tenant_client,
                namespace=settings.leader_election_namespace,
                name=LEADER_ELECTION_ID,
            )
            if settings.enable_leader_election
            else None
        )
        self.readiness = server.Readiness()
        for name, informers in (
            ("tenant", self.tenant_informers),
            ("management", self.management_informers),
        ):
            self.readiness.add(f"{name}-caches-synced", _synced(informers))
        self.probes = server.HTTPServer(
            "probes", settings.health_probe_bind_address, server.probe_routes(self.readiness)
        )
        self.serving = asyncio.Event()  # set once probes and metrics listen
        self.metrics = server.HTTPServer("metrics", settings.metrics_addr, server.metrics_routes())
        self.renewer = (
            tokens.TokenRenewer(
                management_source,
                self.management_client,
                tokens.RenewalOptions(
                    expiration_seconds=settings.token_expiration_seconds,
                    renew_remaining=settings.token_renew_remaining,
                    retry_interval=settings.token_retry_interval,
                    check_interval=settings.kubeconfig_check_interval,
                    secret=settings.kubelb_kubeconfig_secret,
                ),
                tenant=self.tenant_client,
            )
            if isinstance(management_source, kubeconfig.KubeconfigFile)
            else None
        )

    def _add_source_controllers(
        self,
        kinds: list[routemapping.SourceKind],
        route_informer: informer.Informer,
        service_informer: informer.Informer,
    ) -> None:
        """One controller per L7 kind, sharing the Service copies (a twin goes only when no
        source of any kind references its original)."""
        settings = self.settings
        backends = routes.Backends()
        copies = servicecopies.ServiceCopies(
            services=service_informer.store,
            tenant_writer=self.tenant_writer,
            referenced=backends.referenced,
        )
        for kind in kinds:
            source_informer = self.tenant_informers.get(
                kind.resource, namespace=settings.service_namespace
            )
            source_informer.add_indexer(routes.BACKENDS_INDEX, routes.backends_indexer(kind))
            backends.add(kind, source_informer.store)
            reconciler = routes.SourceReconciler(
                kind=kind,
                tenant=settings.tenant,
                sources=source_informer.store,
                services=service_informer.store,
                routes=route_informer.store,
                management=self.management,
                tenant_writer=self.tenant_writer,
                recorder=self.recorder,
                copies=copies,
                namespace=settings.service_namespace,
            )
            source_controller = controller.Controller(
                reconciler,
                self.tenant_informers,
                workers=settings.workers,
                resync_period=settings.resync_period,
            )
            common.link(source_controller, route_informer, mapper=reconciler.source_keys)
            self.source_reconcilers[kind.metric] = reconciler
            self.source_controllers[kind.metric] = source_controller

    def _add_secret_controllers(self) -> None:
        """Tenant SyncSecrets to the management cluster (always), labelled Secrets to
        SyncSecrets (--enable-secret-synchronizer)."""
        settings = self.settings
        namespace = settings.service_namespace
        self.sync_secret_copies = self.management_informers.get(
            resources.SYNC_SECRETS, namespace=settings.tenant.namespace
        )
        self.sync_secret_copies.add_indexer(secrets.ORIGIN_INDEX, secrets.origin_index)
        sync_secret_informer = self.tenant_informers.get(
            resources.SYNC_SECRETS, namespace=namespace
        )
        self.sync_secret_reconciler = secrets.SyncSecretReconciler(
            tenant=settings.tenant,
            sync_secrets=sync_secret_informer.store,
            copies=self.sync_secret_copies.store,
            management=self.management,
            tenant_writer=self.tenant_writer,
            namespace=namespace,
        )
        self.sync_secret_controller = controller.Controller(
            self.sync_secret_reconciler,
            self.tenant_informers,
            workers=settings.workers,
            resync_period=settings.resync_period,
        )
        common.link(self.sync_secret_controller, self.sync_secret_copies,
                    mapper=secrets.origin_keys)  # fmt: skip
        self.secret_controller: controller.Controller | None = None
        if settings.enable_secret_synchronizer:
            secret_informer = self.tenant_informers.get(
                resources.SECRETS, namespace=namespace, label_selector=secrets.MANAGED_SELECTOR
            )
            self.secret_controller = controller.Controller(
                secrets.SecretReconciler(
                    secrets=secret_informer.store,
                    sync_secrets=sync_secret_informer.store,
                    tenant_client=self.tenant_client,
                    tenant_writer=self.tenant_writer,
                    namespace=namespace,
                ),
                self.tenant_informers,
                workers=settings.workers,
                resync_period=settings.resync_period,
            )

    @classmethod
    async def open(cls, settings: Settings) -> Agent:
        """Load both kubeconfigs (a missing or broken one, or an expired management token,
        fails here, at start-up)."""
        tenant_source = await kubeconfig.open_source(settings.kubeconfig)
        management_source = kubeconfig.KubeconfigFile(
            settings.kubelb_kubeconfig, check_interval=settings.kubeconfig_check_interval
        )
        try:
            await management_source.api()
            agent = cls(settings, tenant_source, management_source)
            if agent.gateway_crds is not None:  # before any controller watches Gateway API kinds
                await agent.gateway_crds.install()
            await gatewaycrds.require_served(
                agent.tenant_client,
                [kind.resource for kind in source_kinds(settings)],
                wait_seconds=10.0 if agent.gateway_crds is not None else 0.0,
            )
            if agent.renewer is not None:
                await agent.renewer.start()
        except BaseException:
            await tenant_source.close()
            await management_source.close()
            raise
        return agent

    async def run(self) -> None:
        """Serve until cancelled; then stop controllers, release the lease, close clients."""
        agent_metrics.CLUSTER_CONNECTED.set(1)
        logger.info(
            "agent for tenant %s (namespace %s) starting",
            logsafe.shown(self.settings.tenant.name),
            logsafe.shown(self.settings.tenant.namespace),
        )
        try:
            await self.probes.start()
            await self.metrics.start()
            self.serving.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.tenant_informers.run(), name="tenant-informers")
                group.create_task(self.management_informers.run(), name="management-informers")
                if self.renewer is not None:  # every replica: each holds its own token
                    group.create_task(self.renewer.run(), name="token-renewal")
                if self.elector is not None:
                    group.create_task(self.elector.run(self._controllers), name="leader-election")
                else:
                    group.create_task(self._controllers(), name="controllers")
        finally:
            await self.probes.stop()
            await self.metrics.stop()
            await self.tenant_client.close()
            await self.management_client.close()

    async def _controllers(self) -> None:
        """The leader's work: the controllers, once the linked informers have synced."""
        linked = [self.node_informer, self.lb_informer, self.sync_secret_copies]
        if self.route_informer is not None:
            linked.append(self.route_informer)
        await asyncio.gather(*(i.wait_synced() for i in linked))
        async with asyncio.TaskGroup() as group:
            group.create_task(self.node_controller.run(), name="node-controller")
            group.create_task(self.service_controller.run(), name="service-controller")
            for name, source_controller in self.source_controllers.items():
                group.create_task(source_controller.run(), name=f"{name}-controller")
            group.create_task(self.sync_secret_controller.run(), name="syncsecret-controller")
            if self.secret_controller is not None:
                group.create_task(self.secret_controller.run(), name="secret-controller")
            if self.gateway_crds is not None:
                group.create_task(self.gateway_crds.run(), name="gateway-crds")
            # Controller.run() starts a fresh queue when restarted (after a lost lease) before
            # its first await; these keys go into that queue.
            await asyncio.sleep(0)
            self.node_controller.enqueue(self.node_reconciler.key)
            for lb in self.lb_informer.store.list():
                for key in services.service_keys(lb):
                    self.service_controller.enqueue(key)
            # Copies whose SyncSecret vanished while no agent ran are deleted.
            for copy in self.sync_secret_copies.store.list():
                for key in secrets.origin_keys(copy):
                    self.sync_secret_controller.enqueue(key)
            # Routes whose source vanished while no agent ran are deleted.
            if self.route_informer is not None:
                for route in self.route_informer.store.list():
                    for name, reconciler in self.source_reconcilers.items():
                        for key in reconciler.source_keys(route):
                            self.source_controllers[name].enqueue(key)


def source_kinds(settings: Settings) -> list[routemapping.SourceKind]:
    """The L7 kinds this agent serves, as the flags say."""
    kinds: list[routemapping.SourceKind] = []
    if not settings.disable_ingress_controller:
        kinds.append(ingresses.IngressKind(use_ingress_class=settings.use_ingress_class))
    if not settings.enable_gateway_api:
        return kinds
    if not settings.disable_gateway_controller:
        kinds.append(gwapi.GatewayKind(use_gateway_class=settings.use_gateway_class))
    if not settings.disable_httproute_controller:
        kinds.append(gwapi.http_route_kind())
    if not settings.disable_grpcroute_controller:
        kinds.append(gwapi.grpc_route_kind())
    return kinds


def _synced(informers: informer.Informers) -> server.ReadyCheck:
    return lambda: all(i.synced.is_set() for i in informers)


async def serve(settings: Settings) -> int:
    agent = await Agent.open(settings)
    return await runner.run_until_signal(agent.run(), name="agent")
