"""The manager's Tenant controller: a Tenant `X` gets everything its agent needs, and nothing more.

Reads (informers): Tenants (primary); namespaces labelled `kubelb.k8c.io/managed-by=kubelb`; the
ServiceAccounts, Roles and RoleBindings named `kubelb-ccm`, the Secrets named
`kubelb-ccm-kubeconfig` and `kubelb-ccm`, the TenantStates named `default` and the
`kube-root-ca.crt` ConfigMaps
(each mapped to the Tenant of its namespace); Config `default` in the manager namespace, the
`kube-public/cluster-info` ConfigMap and the `default/kubernetes` EndpointSlice (each mapped to
every Tenant). Deletion lists LoadBalancers, Routes and SyncSecrets directly.

Writes, all owned by the Tenant (ownerReferences): namespace `tenant-X` (label managed-by), the
ServiceAccount, Role (`tenantobjects.role_rules`) and RoleBinding `kubelb-ccm`, Secret
`kubelb-ccm-kubeconfig` (key `kubelb`), TenantState `default` and its status, and Config
`default`'s `status.version`. Only differences are written.

The kubeconfig's token (`token_mode`): `bound` (default), a TokenRequest token, rotated here after
`token_rotate_fraction` of its lifetime (the tenant is requeued for then); the Role lets the agent
renew its own copy (`serviceaccounts/token`, its account only), since the copy in the tenant
cluster is not this Secret. `long-lived`, as upstream: Secret `kubelb-ccm` of type
`kubernetes.io/service-account-token`, whose token (filled in by the token controller) never
expires; the Role then grants no TokenRequest. Going back to `bound` deletes that Secret, which
revokes the long-lived token.

Status: finalizer `kubelb.k8c.io/cleanup`; `status.phase` Pending | Ready | Failed | Terminating,
`observedGeneration`, and a `Ready` condition (reasons Reconciled, Pending, ReconciliationFailed,
Terminating), and with `not_applicable` a `SettingsApplied` condition (Honoured, or
NotApplicable naming each Envoy setting the infrastructure in use cannot honour). A failure is
also a Warning Event on the Tenant.

Deletion: delete every LoadBalancer, Route and SyncSecret in the namespace and requeue every
`drain_interval` seconds until none remain (the LoadBalancer, Route and SyncSecret controllers
remove their finalizers, a Route's once its listeners left the tenant's snapshot), then delete the
ServiceAccount (which revokes its tokens), RBAC, Secret and namespace, and drop the finalizer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import (
    conditions,
    config as api_config,
    errors as api_errors,
    finalizers,
    labels,
    meta,
    registry,
    tenant as api_tenant,
)
from kubelb.kube import (
    controller,
    errors,
    events as kube_events,
    informer,
    objects,
    resources,
    store,
    watches,
    writer as kube_writer,
)
from kubelb.manager import effective as tenant_effective, kubeconfigs, tenantobjects
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

Key = objects.ObjectKey
Phase = api_tenant.TenantPhase

_DRAINED = (resources.LOAD_BALANCERS, resources.ROUTES, resources.SYNC_SECRETS)


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantControllerOptions:
    """The Tenant controller's options: where the manager lives, and token and recheck timings."""

    namespace: str = "kubelb"  # the manager's namespace: Config `default` lives there
    server_override: str | None = None  # API server URL for tenant kubeconfigs (else resolved)
    server_override_ca_pem: bytes | None = None  # CA for that URL (else the cluster's)
    token_expiration_seconds: int = 86400  # asked of TokenRequest (the server may shorten it)
    token_rotate_fraction: float = 0.8  # replace a token after this part of its lifetime
    token_mode: kubeconfigs.TokenMode = kubeconfigs.TokenMode.BOUND
    drain_interval: float = 10.0  # recheck period while LoadBalancers etc. are being deleted
    pending_interval: float = 5.0  # recheck period while the namespace is still terminating
    # The Envoy settings the infrastructure in use cannot honour, each with why (the Tenant's
    # SettingsApplied condition); None: the condition is not written.
    not_applicable: Callable[[api_config.EnvoyProxy], Sequence[str]] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.token_rotate_fraction < 1.0:
            raise ValueError("token_rotate_fraction must be in (0, 1)")
        if self.token_expiration_seconds < 600:
            raise ValueError("token_expiration_seconds must be at least 600 (TokenRequest)")


def tenant_of_namespace(obj: objects.RawObject) -> Iterable[Key]:
    """The Tenant owning the object's namespace (`tenant-X` -> X)."""
    is_namespace = obj.get("kind") == "Namespace"
    namespace = objects.name(obj) if is_namespace else objects.namespace(obj)
    if not namespace.startswith(api_tenant.NAMESPACE_PREFIX):
        return ()
    return (Key("", api_tenant.tenant_name_for(namespace)),)


def _named(name: str) -> str:
    return f"metadata.name={name}"


class TenantReconciler:
    name = "tenants"

    def __init__(
        self,
        informers: informer.Informers,
        writer: kube_writer.Writer,
        events: kube_events.EventRecorder,
        options: TenantControllerOptions,
    ) -> None:
        self._writer = writer
        self._client = writer.client
        self._events = events
        self.options = options
        secondary = watches.generation_changed
        every_tenant = self._every_tenant
        self.primary = watches.Watch(resource=resources.TENANTS, predicate=watches.spec_changed)
        managed = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE}"
        ccm = _named(tenantobjects.CCM_NAME)
        w = {
            "namespaces": watches.Watch(resource=resources.NAMESPACES, label_selector=managed,
                                        mapper=tenant_of_namespace,
                                        predicate=secondary),
            "accounts": watches.Watch(resource=resources.SERVICE_ACCOUNTS, field_selector=ccm,
                                      mapper=tenant_of_namespace, predicate=secondary),
            "roles": watches.Watch(resource=resources.ROLES, field_selector=ccm,
                                   mapper=tenant_of_namespace, predicate=secondary),
            "bindings": watches.Watch(resource=resources.ROLE_BINDINGS, field_selector=ccm,
                                      mapper=tenant_of_namespace, predicate=secondary),
            "secrets": watches.Watch(resource=resources.SECRETS,
                                     field_selector=_named(kubeconfigs.SECRET_NAME),
                                     mapper=tenant_of_namespace, predicate=secondary),
            # The token controller fills a long-lived token in: not a generation change.
            "token_secrets": watches.Watch(resource=resources.SECRETS,
                                           field_selector=_named(tenantobjects.TOKEN_SECRET_NAME),
                                           mapper=tenant_of_namespace),
            "states": watches.Watch(resource=resources.TENANT_STATES,
                                    field_selector=_named(tenantobjects.TENANT_STATE_NAME),
                                    mapper=tenant_of_namespace, predicate=secondary),
            "root_cas": watches.Watch(resource=resources.CONFIG_MAPS,
                                      field_selector=_named(kubeconfigs.ROOT_CA_CONFIG_MAP),
                                      mapper=tenant_of_namespace, predicate=secondary),
            # Unfiltered, like the LoadBalancer controller's, so the two share one informer.
            "configs": watches.Watch(resource=resources.CONFIGS, namespace=options.namespace,
                                     mapper=every_tenant, predicate=secondary),
            "cluster_info": watches.Watch(resource=resources.CONFIG_MAPS,
                                          namespace=kubeconfigs.CLUSTER_INFO_NAMESPACE,
                                          field_selector=_named(kubeconfigs.CLUSTER_INFO_NAME),
                                          mapper=every_tenant, predicate=secondary),
            "slices": watches.Watch(resource=resources.ENDPOINT_SLICES,
                                    namespace=kubeconfigs.KUBERNETES_SLICE_NAMESPACE,
                                    field_selector=_named(kubeconfigs.KUBERNETES_SLICE_NAME),
                                    mapper=every_tenant, predicate=secondary),
        }  # fmt: skip
        self.watches: Sequence[watches.Watch] = tuple(w.values())
        self._tenants = _store(informers, self.primary)
        self._namespaces = _store(informers, w["namespaces"])
        self._accounts = _store(informers, w["accounts"])
        self._roles = _store(informers, w["roles"])
        self._bindings = _store(informers, w["bindings"])
        self._secrets = _store(informers, w["secrets"])
        self._token_secrets = _store(informers, w["token_secrets"])
        self._states = _store(informers, w["states"])
        self._root_cas = _store(informers, w["root_cas"])
        self._configs = _store(informers, w["configs"])
        self._cluster_info = _store(informers, w["cluster_info"])
        self._slices = _store(informers, w["slices"])
        self.tokens_issued = 0  # TokenRequests made (tests and metrics)

    def _every_tenant(self, obj: objects.RawObject) -> Iterable[Key]:
        return self._tenants.keys()

    async def reconcile(self, key: Key) -> controller.Result:
        manager_metrics.TENANTS.set(len(self._tenants.keys()))  # a gone one is reconciled too
        tenant = self._tenants.get(key)
        if tenant is None:
            return controller.DONE  # gone; what it owned goes with it (finalizer, ownerRefs)
        if objects.is_deleting(tenant):
            return await self._finalize(tenant)
        problem = tenantobjects.namespace_problem(key.name)
        spec: api_tenant.Tenant | None = None
        if problem is None:
            try:
                spec = registry.parse_as(api_tenant.Tenant, tenant)
            except api_errors.APIValidationError as exc:
                problem = str(exc)
        if problem is not None or spec is None:
            logger.warning("tenant %s cannot be served: %s", logsafe.shown(key.name), problem)
            await self._set_status(tenant, Phase.FAILED, conditions.RECONCILIATION_FAILED,
                                   problem or "invalid Tenant")  # fmt: skip
            await self._events.warning(tenant, conditions.RECONCILIATION_FAILED, problem or "")
            return controller.DONE  # nothing to retry until the Tenant changes
        added = await self._writer.add_finalizer(resources.TENANTS, tenant, finalizers.CLEANUP)
        if added.obj is None:
            return controller.DONE
        tenant = added.obj
        try:
            return await self._apply(tenant, spec)
        except errors.ApiError as exc:
            logger.warning("tenant %s: reconcile failed: %s", logsafe.shown(key.name), exc)
            await self._events.warning(tenant, conditions.RECONCILIATION_FAILED, str(exc))
            try:
                await self._set_status(tenant, Phase.FAILED, conditions.RECONCILIATION_FAILED,
                                       str(exc))  # fmt: skip
            except errors.ApiError as status_exc:
                logger.warning(
                    "tenant %s: cannot write status: %s", logsafe.shown(key.name), status_exc
                )
            raise

    async def _apply(self, tenant: objects.RawObject, spec: api_tenant.Tenant) -> controller.Result:
        ns = api_tenant.namespace_for(objects.name(tenant))
        namespace = await self._ensure(resources.NAMESPACES, self._namespaces,
                                       tenantobjects.desired_namespace(tenant))  # fmt: skip
        if objects.is_deleting(namespace):
            message = f"namespace {ns} is still being deleted; waiting to recreate it"
            logger.info("tenant %s: %s", objects.name(tenant), message)
            await self._set_status(tenant, Phase.PENDING, conditions.PENDING, message)
            return controller.Result(requeue_after=self.options.pending_interval)
        account = await self._ensure(resources.SERVICE_ACCOUNTS, self._accounts,
                                     tenantobjects.desired_service_account(tenant))  # fmt: skip
        bound = self.options.token_mode is kubeconfigs.TokenMode.BOUND
        await self._ensure(resources.ROLES, self._roles,
                           tenantobjects.desired_role(tenant, renew_token=bound))  # fmt: skip
        await self._ensure(resources.ROLE_BINDINGS, self._bindings,
                           tenantobjects.desired_role_binding(tenant))  # fmt: skip
        if bound:
            await self._drop_long_lived_token(ns)
            rotate_at = await self._ensure_kubeconfig(tenant, account)
            result = controller.Result(requeue_after=max(rotate_at - time.time(), 1.0))
        elif await self._ensure_long_lived_kubeconfig(tenant):
            result = controller.DONE  # the token does not expire
        else:
            message = (f"waiting for the token controller to fill in Secret {ns}/"
                       f"{tenantobjects.TOKEN_SECRET_NAME}")  # fmt: skip
            await self._set_status(tenant, Phase.PENDING, conditions.PENDING, message)
            return controller.Result(requeue_after=self.options.pending_interval)
        await self._ensure_states(tenant, spec)
        not_applied = None
        if self.options.not_applicable is not None:
            envoy = tenant_effective.resolve(self._config(), spec).envoy
            not_applied = self.options.not_applicable(envoy)
        await self._set_status(tenant, Phase.READY, conditions.RECONCILED,
                               f"namespace {ns} and the tenant kubeconfig are ready",
                               not_applied=not_applied)  # fmt: skip
        return result

    async def _ensure(
        self, resource: resources.Resource, cache: store.Reader, desired: objects.RawObject
    ) -> objects.RawObject:
        written = await self._writer.ensure(resource, desired,
                                            current=cache.get(objects.key_of(desired)))  # fmt: skip
        assert written.obj is not None
        return written.obj

    async def _ensure_kubeconfig(
        self, tenant: objects.RawObject, account: objects.RawObject
    ) -> float:
        """Write the kubeconfig Secret (a new token only when the old one is due); return when
        the token in it is due for rotation."""
        ns = api_tenant.namespace_for(objects.name(tenant))
        secret_key = Key(ns, kubeconfigs.SECRET_NAME)
        cached = self._secrets.get(secret_key)
        token, rotate_at = self._usable_token(cached, account)
        if token is None and cached is not None:
            # The cache may lag behind a token we just wrote: look before minting another.
            fresh = await self._find(resources.SECRETS, secret_key)
            token, rotate_at = self._usable_token(fresh, account)
        if token is None:
            token, rotate_at = await self._issue_token(tenant, replacing=cached is not None)
        await self._write_kubeconfig(tenant, token)
        return rotate_at

    async def _ensure_long_lived_kubeconfig(self, tenant: objects.RawObject) -> bool:
        """Secret `kubelb-ccm` of type service-account-token and a kubeconfig with its token;
        False while the token controller has not filled the token in yet."""
        ns = api_tenant.namespace_for(objects.name(tenant))
        secret = await self._ensure(resources.SECRETS, self._token_secrets,
                                    tenantobjects.desired_token_secret(tenant))  # fmt: skip
        token = tenantobjects.secret_value(secret, tenantobjects.TOKEN_KEY)
        if not token:
            logger.info("tenant %s: waiting for the token controller to fill in Secret %s/%s",
                        objects.name(tenant), ns, tenantobjects.TOKEN_SECRET_NAME)  # fmt: skip
            return False
        await self._write_kubeconfig(tenant, token)
        return True

    async def _drop_long_lived_token(self, namespace: str) -> None:
        """Back to bound tokens: delete the long-lived token Secret, which revokes its token."""
        key = Key(namespace, tenantobjects.TOKEN_SECRET_NAME)
        secret = self._token_secrets.get(key)
        if secret is not None and secret.get("type") == tenantobjects.TOKEN_SECRET_TYPE:
            logger.info("tenant namespace %s: bound tokens now, deleting the long-lived token "
                        "Secret %s", namespace, key.name)  # fmt: skip
            await self._writer.delete(resources.SECRETS, key, uid=objects.uid(secret))

    async def _write_kubeconfig(self, tenant: objects.RawObject, token: str) -> None:
        ns = api_tenant.namespace_for(objects.name(tenant))
        server = await self._server(ns)
        text = kubeconfigs.desired_kubeconfig(server=server.url, ca_pem=server.ca_pem,
                                              token=token, namespace=ns)  # fmt: skip
        desired = tenantobjects.desired_kubeconfig_secret(tenant, kubeconfigs.SECRET_NAME,
                                                          kubeconfigs.SECRET_KEY, text)  # fmt: skip
        await self._ensure(resources.SECRETS, self._secrets, desired)

    def _usable_token(
        self, secret: objects.RawObject | None, account: objects.RawObject
    ) -> tuple[str | None, float]:
        text = tenantobjects.secret_value(secret, kubeconfigs.SECRET_KEY)
        parts = kubeconfigs.parse_kubeconfig(text) if text else None
        claims = kubeconfigs.token_claims(parts.token) if parts else None
        if parts is None or claims is None:
            return None, 0.0
        subject = kubeconfigs.service_account_subject(objects.namespace(account),
                                                      objects.name(account))  # fmt: skip
        if claims.subject != subject:
            return None, 0.0
        if claims.service_account_uid and claims.service_account_uid != objects.uid(account):
            return None, 0.0  # the account was recreated: the old token no longer works
        rotate_at = kubeconfigs.rotation_time(claims, self.options.token_rotate_fraction)
        return (parts.token, rotate_at) if time.time() < rotate_at else (None, 0.0)

    async def _issue_token(
        self, tenant: objects.RawObject, *, replacing: bool
    ) -> tuple[str, float]:
        ns = api_tenant.namespace_for(objects.name(tenant))
        issued = await self._client.create_token(
            ns, tenantobjects.CCM_NAME, expiration_seconds=self.options.token_expiration_seconds
        )
        self.tokens_issued += 1
        claims = kubeconfigs.token_claims(issued.token)
        if claims is not None:
            rotate_at = kubeconfigs.rotation_time(claims, self.options.token_rotate_fraction)
        else:  # not a JWT: trust the expiry the server reported
            now = time.time()
            lifetime = issued.expiration.timestamp() - now
            rotate_at = now + self.options.token_rotate_fraction * lifetime
        reason = "TokenRotated" if replacing else "TokenIssued"
        logger.info("tenant %s: %s, valid until %s", objects.name(tenant), reason,
                    issued.expiration.isoformat())  # fmt: skip
        await self._events.normal(tenant, reason, f"kubeconfig token for {ns}/"
                                  f"{tenantobjects.CCM_NAME} valid until "
                                  f"{meta.rfc3339(issued.expiration)}")  # fmt: skip
        return issued.token, rotate_at

    async def _server(self, namespace: str) -> kubeconfigs.Server:
        connection = await self._client.connection()
        return kubeconfigs.resolve_server(
            override=self.options.server_override,
            override_ca_pem=self.options.server_override_ca_pem,
            cluster_info=self._cluster_info.get(
                Key(kubeconfigs.CLUSTER_INFO_NAMESPACE, kubeconfigs.CLUSTER_INFO_NAME)),
            endpoint_slice=self._slices.get(
                Key(kubeconfigs.KUBERNETES_SLICE_NAMESPACE, kubeconfigs.KUBERNETES_SLICE_NAME)),
            root_ca=self._root_cas.get(Key(namespace, kubeconfigs.ROOT_CA_CONFIG_MAP)),
            manager_url=connection.server,
            manager_ca_pem=connection.ca_pem,
        )  # fmt: skip

    async def _ensure_states(self, tenant: objects.RawObject, spec: api_tenant.Tenant) -> None:
        """TenantState `default` and its status; Config `default`'s status version."""
        config = self._config()
        effective = tenant_effective.resolve(config, spec)
        state = await self._ensure(resources.TENANT_STATES, self._states,
                                   tenantobjects.desired_tenant_state(tenant))  # fmt: skip
        now = meta.rfc3339()
        await self._writer.update_status(
            resources.TENANT_STATES, objects.key_of(state),
            lambda s: tenantobjects.desired_tenant_state_status(
                s, load_balancer_disabled=effective.load_balancer_disabled, now=now),
            current=state,
        )  # fmt: skip
        raw_config = self._configs.get(Key(self.options.namespace, api_config.CONFIG_NAME))
        if raw_config is not None:
            await self._writer.update_status(resources.CONFIGS, objects.key_of(raw_config),
                                             tenantobjects.desired_config_status,
                                             current=raw_config)  # fmt: skip

    def _config(self) -> api_config.Config | None:
        raw = self._configs.get(Key(self.options.namespace, api_config.CONFIG_NAME))
        if raw is None:
            return None
        try:
            return registry.parse_as(api_config.Config, raw)
        except api_errors.APIValidationError as exc:
            logger.warning("Config %s/%s is invalid, using built-in defaults: %s",
                           self.options.namespace, api_config.CONFIG_NAME, exc)  # fmt: skip
            return None

    async def _finalize(self, tenant: objects.RawObject) -> controller.Result:
        if finalizers.CLEANUP not in objects.finalizers(tenant):
            return controller.DONE
        name = objects.name(tenant)
        ns = api_tenant.namespace_for(name)
        remaining = await self._drain(ns)
        if remaining:
            await self._set_status(tenant, Phase.TERMINATING, conditions.TERMINATING,
                                   f"waiting for {remaining} LoadBalancers, Routes and "
                                   f"SyncSecrets in {ns} to be deleted")  # fmt: skip
            return controller.Result(requeue_after=self.options.drain_interval)
        await self._set_status(tenant, Phase.TERMINATING, conditions.TERMINATING,
                               f"deleting namespace {ns} and the tenant's credentials")  # fmt: skip
        # The ServiceAccount first: deleting it invalidates every token issued for it.
        for resource, key in (
            (resources.SERVICE_ACCOUNTS, Key(ns, tenantobjects.CCM_NAME)),
            (resources.ROLE_BINDINGS, Key(ns, tenantobjects.CCM_NAME)),
            (resources.ROLES, Key(ns, tenantobjects.CCM_NAME)),
            (resources.SECRETS, Key(ns, kubeconfigs.SECRET_NAME)),
            (resources.SECRETS, Key(ns, tenantobjects.TOKEN_SECRET_NAME)),
            (resources.NAMESPACES, Key("", ns)),
        ):
            await self._writer.delete(resource, key)
        await self._writer.remove_finalizer(resources.TENANTS, tenant, finalizers.CLEANUP)
        logger.info("tenant %s: cleaned up, finalizer removed", logsafe.shown(name))
        return controller.DONE

    async def _drain(self, namespace: str) -> int:
        """Ask for every LoadBalancer, Route and SyncSecret in `namespace` to be deleted; return
        how many still exist."""
        remaining = 0
        for resource in _DRAINED:
            listed = await self._client.list(resource, namespace=namespace)
            remaining += len(listed.items)
            for item in listed.items:
                if not objects.is_deleting(item):
                    await self._writer.delete(resource, objects.key_of(item),
                                              uid=objects.uid(item))  # fmt: skip
        return remaining

    async def _set_status(
        self,
        tenant: objects.RawObject,
        phase: Phase,
        reason: str,
        message: str,
        *,
        not_applied: Sequence[str] | None = None,
    ) -> None:
        generation = objects.generation(tenant)

        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            return tenantobjects.desired_tenant_status(
                status, generation=generation, phase=phase, ready=phase is Phase.READY,
                reason=reason, message=message, not_applied=not_applied)  # fmt: skip

        with contextlib.suppress(errors.NotFoundError):  # deleted meanwhile: nothing to report
            await self._writer.update_status(resources.TENANTS, objects.key_of(tenant), mutate,
                                             current=tenant)  # fmt: skip

    async def _find(self, resource: resources.Resource, key: Key) -> objects.RawObject | None:
        try:
            return await self._client.get(resource, key.name, namespace=key.namespace or None)
        except errors.NotFoundError:
            return None


def _store(informers: informer.Informers, watch: watches.Watch) -> store.Reader:
    return informers.get(watch.resource, namespace=watch.namespace,
                         label_selector=watch.label_selector,
                         field_selector=watch.field_selector).store  # fmt: skip


def tenant_controller(
    informers: informer.Informers,
    writer: kube_writer.Writer,
    events: kube_events.EventRecorder,
    options: TenantControllerOptions,
    **controller_options: Any,
) -> controller.Controller:
    """The Tenant controller, registered on `informers` (run them and the controller's `run()`).
    `controller_options` go to `kubelb.kube.controller.Controller` (workers, resync_period,
    observer...)."""
    controller_options.setdefault("tenant_of", lambda key: api_tenant.namespace_for(key.name))
    return controller.Controller(TenantReconciler(informers, writer, events, options),
                                 informers, **controller_options)  # fmt: skip
