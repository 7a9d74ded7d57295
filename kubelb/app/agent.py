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

from kubelb.agent import (
    common,
    gatewaycrds,
    gwapi,
    ingresses,
    nodes,
    routemapping,
    routes,
    secretrefs,
    secrets,
    servicecopies,
    services,
    tokens,
)
from kubelb.app import agent_settings, logs, runner

# Re-exported: the agent's callers (tests, `open`) name them through this module.
from kubelb.app.agent_settings import (
    LEADER_ELECTION_ID as LEADER_ELECTION_ID,
    Settings as Settings,
    settings_from_args,
    unhonoured,
)
from kubelb.kube import (
    client,
    controller,
    events,
    informer,
    kubeconfig,
    leader,
    objects,
    resources,
    writer,
)
from kubelb.observe import agent_metrics, server
from kubelb.util import logsafe

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    agent_settings.add_arguments(parser)


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
        # Which Services the served sources reference (None: no L7 source).
        self.backends: routes.Backends | None = None
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
        self.backends = backends
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
            references = self._secret_references(namespace)
            secret_informer = self.tenant_informers.get(
                resources.SECRETS,
                namespace=namespace,
                label_selector=None if references else secrets.MANAGED_SELECTOR,
            )
            self.secret_controller = controller.Controller(
                secrets.SecretReconciler(
                    secrets=secret_informer.store,
                    sync_secrets=sync_secret_informer.store,
                    tenant_client=self.tenant_client,
                    tenant_writer=self.tenant_writer,
                    namespace=namespace,
                    references=references,
                    recorder=self.recorder,
                ),
                self.tenant_informers,
                workers=settings.workers,
                resync_period=settings.resync_period,
            )

    def _secret_references(self, namespace: str | None) -> secretrefs.SecretReferences | None:
        """The Secrets served Ingresses and Gateways name (synced without a label), or None
        when this agent serves neither."""
        kinds = [k for k in source_kinds(self.settings)
                 if isinstance(k, ingresses.IngressKind | gwapi.GatewayKind)]  # fmt: skip
        if not kinds:
            return None
        grants = None
        if any(isinstance(k, gwapi.GatewayKind) for k in kinds):
            grants = self.tenant_informers.get(secretrefs.REFERENCE_GRANTS).store
        references = secretrefs.SecretReferences(grants)
        for kind in kinds:
            refs = (secretrefs.ingress_refs if isinstance(kind, ingresses.IngressKind)
                    else secretrefs.gateway_refs)  # fmt: skip
            informer_ = self.tenant_informers.get(kind.resource, namespace=namespace)
            informer_.add_indexer(secretrefs.SECRET_REFS_INDEX, secretrefs.indexer(refs))
            references.add(secretrefs.Source(kind.resource, informer_.store, kind.in_scope, refs))
        self._backend_ca_references(references, namespace)
        return references

    def _backend_ca_references(
        self, references: secretrefs.SecretReferences, namespace: str | None
    ) -> None:
        """The CA Secrets of HTTPS backend Services that served sources reference."""
        backends = self.backends
        if backends is None:
            return
        services = self.tenant_informers.get(resources.SERVICES, namespace=namespace)
        services.add_indexer(
            secretrefs.SECRET_REFS_INDEX, secretrefs.indexer(secretrefs.service_ca_refs)
        )
        references.add(secretrefs.Source(
            resources.SERVICES, services.store,
            lambda svc: backends.referenced(objects.key_of(svc)), secretrefs.service_ca_refs,
        ))  # fmt: skip
        for kind in source_kinds(self.settings):

            def cas_of(
                obj: objects.RawObject, kind: routemapping.SourceKind = kind
            ) -> list[objects.ObjectKey]:
                found = (services.store.get(k) for k in kind.backends(obj))
                return [r.secret for svc in found if svc for r in secretrefs.service_ca_refs(svc)]

            references.add_trigger(kind.resource, cas_of)

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
                _served_kinds(settings),
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


def _served_kinds(settings: Settings) -> list[resources.Resource]:
    """The kinds the tenant cluster must serve: the L7 sources, and ReferenceGrants when
    Gateways' certificate references are synced."""
    kinds = [kind.resource for kind in source_kinds(settings)]
    if settings.enable_secret_synchronizer and resources.GATEWAYS in kinds:
        kinds.append(secretrefs.REFERENCE_GRANTS)
    return kinds


def _synced(informers: informer.Informers) -> server.ReadyCheck:
    return lambda: all(i.synced.is_set() for i in informers)


async def serve(settings: Settings) -> int:
    agent = await Agent.open(settings)
    return await runner.run_until_signal(agent.run(), name="agent")
