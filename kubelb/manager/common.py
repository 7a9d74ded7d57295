"""What the manager's reconcilers share: the informers they read and typed views of them.

Input: a `kube.informer.Informers` and the manager's namespace. Output: `Inputs`, which holds the
informers (tenant namespaces, LoadBalancers, Addresses, Tenants, Config, management Services) and
answers the questions every reconciler asks: is this namespace a tenant's, what are the tenant's
effective settings and endpoint policy, which LoadBalancers live there, parsed. Parsing goes through
a cache holding the model of each object's current resourceVersion (one entry per object, dropped
when the object is deleted), so a tenant of 100 LoadBalancers is not re-validated on every event,
and a `lbindex.LoadBalancerIndex` follows the LoadBalancer informer, so the live LoadBalancers of a
namespace are known without listing or parsing it. Only tenant namespaces' LoadBalancers are
parsed and indexed: those of other namespaces are stored, and indexed when their namespace
becomes a tenant's. `pieces` holds each LoadBalancer's IR piece,
built once for the LoadBalancer controller and envoycp alike.

Invalid objects never stop anything: an invalid LoadBalancer is reported to its own reconciler
(`ParsedLB.error`); an invalid Config or Tenant is logged, naming the object and the fields, and
the built-in defaults stand in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from kubelb.api import (
    addresses as api_addresses,
    config as api_config,
    errors as api_errors,
    labels,
    loadbalancer as api_lb,
    meta,
    registry,
    tenant as api_tenant,
)
from kubelb.irbuild import endpointpolicy
from kubelb.kube import informer, objects, resources, watches
from kubelb.manager import effective as tenant_effective, endpoints, lbindex, pieces

logger = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE}"
# Management Services of LoadBalancers carry the LB's name in this label.
SERVICE_SELECTOR = labels.LB_NAME
# Secrets synced from tenant clusters (a SyncSecret's copy) carry their origin: the only
# Secrets the manager caches, for the certificates of Routes' TLS.
SECRET_SELECTOR = labels.ORIGIN_NAME

T = TypeVar("T", bound=meta.KubeObject)

_CACHE_LIMIT = 20000


@dataclass(frozen=True, slots=True)
class ParsedLB:
    raw: objects.RawObject
    model: api_lb.LoadBalancer | None
    error: str | None  # why the object does not validate (model is None then)

    @property
    def key(self) -> objects.ObjectKey:
        return objects.key_of(self.raw)


class Inputs:
    """Read side of the manager, shared by its reconcilers (one per process)."""

    def __init__(self, informers: informer.Informers, *, namespace: str) -> None:
        self.namespace = namespace
        self.namespaces = informers.get(resources.NAMESPACES, label_selector=MANAGED_SELECTOR)
        self.load_balancers = informers.get(resources.LOAD_BALANCERS)
        self.addresses = informers.get(resources.ADDRESSES)
        self.tenants = informers.get(resources.TENANTS)
        self.configs = informers.get(resources.CONFIGS, namespace=namespace)
        self.services = informers.get(resources.SERVICES, label_selector=SERVICE_SELECTOR)
        self.secrets = informers.get(resources.SECRETS, label_selector=SECRET_SELECTOR)
        # (kind, uid) -> (resourceVersion, model or validation error)
        self._parsed: dict[tuple[str, str], tuple[str, object]] = {}
        self.lb_index = lbindex.LoadBalancerIndex(lambda raw: self.load_balancer(raw).model)
        # Each LoadBalancer's IR piece, shared by its status and its tenant's snapshot.
        self.pieces = pieces.Pieces()
        # The hub's own sockets and the built-in denied CIDRs: set by the composition root once
        # the manager has bound its servers, before any reconciler runs.
        self.endpoint_base = endpoints.Base()
        self.load_balancers.add_handler(self._load_balancer_changed)
        self.namespaces.add_handler(self._namespace_changed)

    # --- watches other reconcilers declare on these informers ---
    def watch_namespaces(self, mapper: watches.Mapper = watches.own_key) -> watches.Watch:
        labelled = watches.fields_changed("metadata.labels")
        return watches.Watch(resource=resources.NAMESPACES, label_selector=MANAGED_SELECTOR,
                             mapper=mapper, predicate=labelled)  # fmt: skip

    def watch_config(self, mapper: watches.Mapper) -> watches.Watch:
        return watches.Watch(resource=resources.CONFIGS, namespace=self.namespace, mapper=mapper,
                             predicate=watches.generation_changed)  # fmt: skip

    def watch_tenants(self, mapper: watches.Mapper) -> watches.Watch:
        return watches.Watch(resource=resources.TENANTS, mapper=mapper,
                             predicate=watches.generation_changed)  # fmt: skip

    def watch_services(
        self, mapper: watches.Mapper, predicate: watches.Predicate = watches.always
    ) -> watches.Watch:
        return watches.Watch(resource=resources.SERVICES, label_selector=SERVICE_SELECTOR,
                             mapper=mapper, predicate=predicate)  # fmt: skip

    def watch_secrets(self, mapper: watches.Mapper) -> watches.Watch:
        """Synced Secrets whose content or origin changed (a certificate rotated)."""
        changed = watches.fields_changed("data", "metadata.labels")
        return watches.Watch(resource=resources.SECRETS, label_selector=SECRET_SELECTOR,
                             mapper=mapper, predicate=changed)  # fmt: skip

    # --- questions ---
    def managed(self, namespace: str) -> bool:
        """Only namespaces labelled managed-by=kubelb are tenants': LoadBalancers elsewhere are
        left alone."""
        return objects.ObjectKey("", namespace) in self.namespaces.store

    def config(self) -> api_config.Config | None:
        raw = self.configs.store.get(objects.ObjectKey(self.namespace, api_config.CONFIG_NAME))
        return self._parse_or_log(api_config.Config, raw) if raw is not None else None

    def tenant(self, namespace: str) -> api_tenant.Tenant | None:
        raw = self.tenants.store.get(objects.ObjectKey("", api_tenant.tenant_name_for(namespace)))
        return self._parse_or_log(api_tenant.Tenant, raw) if raw is not None else None

    def effective(self, namespace: str) -> tenant_effective.Effective:
        return tenant_effective.resolve(self.config(), self.tenant(namespace))

    def endpoint_policy(self, namespace: str) -> endpointpolicy.EndpointPolicy:
        """What the tenant's endpoints must pass: the hub's sockets, the built-in denies and
        the Config's and Tenant's CIDR lists."""
        return endpoints.policy(self.endpoint_base, self.effective(namespace).endpoint_cidrs)

    def disabled_reason(self, namespace: str) -> str | None:
        """ "Config" or "Tenant" when L4 load balancing is off for this namespace."""
        config = self.config()
        if config is not None and config.spec.load_balancer.disable:
            return "Config"
        tenant = self.tenant(namespace)
        if tenant is not None and tenant.spec.load_balancer.disable:
            return "Tenant"
        return None

    def load_balancer(self, raw: objects.RawObject) -> ParsedLB:
        parsed = self._parse(api_lb.LoadBalancer, raw)
        if isinstance(parsed, str):
            return ParsedLB(raw, None, parsed)
        return ParsedLB(raw, parsed, None)

    def load_balancers_in(self, namespace: str) -> list[ParsedLB]:
        """Every LoadBalancer of the namespace, sorted by name."""
        raws = sorted(self.load_balancers.store.list(namespace), key=objects.name)
        return [self.load_balancer(raw) for raw in raws]

    def live_load_balancers_in(self, namespace: str) -> list[api_lb.LoadBalancer]:
        """The valid LoadBalancers of the namespace that are not being deleted, by name."""
        return self.lb_index.live(namespace)

    def addresses_in(self, namespace: str) -> dict[str, api_addresses.Addresses]:
        """Valid Addresses objects keyed "namespace/name" (irbuild's form)."""
        out = {}
        for raw in self.addresses.store.list(namespace):
            parsed = self._parse_or_log(api_addresses.Addresses, raw)
            if parsed is not None:
                out[f"{namespace}/{objects.name(raw)}"] = parsed
        return out

    def service(self, namespace: str, name: str) -> objects.RawObject | None:
        return self.services.store.get(objects.ObjectKey(namespace, name))

    # --- mappers ---
    def lbs_of_namespace(self, obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        """Every LoadBalancer key in the namespace the object names (a Namespace) or lives in."""
        ns = objects.name(obj) if obj.get("kind") == "Namespace" else objects.namespace(obj)
        return [objects.key_of(lb) for lb in self.load_balancers.store.list(ns)]

    def lbs_of_tenant(self, obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        ns = api_tenant.namespace_for(objects.name(obj))
        return [objects.key_of(lb) for lb in self.load_balancers.store.list(ns)]

    def all_lbs(self, obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        return [key for key in self.load_balancers.store if self.managed(key.namespace)]

    # --- parsing with a cache ---
    def _load_balancer_changed(self, change: informer.Change) -> None:
        key = objects.key_of(change.obj)
        if change.new is None or not self.managed(key.namespace):
            self._forget_load_balancer(change.obj)
        else:
            self.lb_index.update(key, change.new)

    def _namespace_changed(self, change: informer.Change) -> None:
        """A namespace that becomes a tenant's gets its LoadBalancers indexed; one that stops
        being one (label removed, deleted) has them forgotten. LoadBalancers of other namespaces
        are stored but neither parsed nor indexed (another user's 1,000 cost the parsed models
        nothing)."""
        if change.type is informer.ChangeType.UPDATE:
            return
        namespace = objects.name(change.obj)
        for raw in self.load_balancers.store.list(namespace):
            if change.new is None:
                self._forget_load_balancer(raw)
            else:
                self.lb_index.update(objects.key_of(raw), raw)

    def _forget_load_balancer(self, raw: objects.RawObject) -> None:
        key = objects.key_of(raw)
        self._parsed.pop(_parse_key(api_lb.LoadBalancer, raw), None)
        self.pieces.forget(key)
        self.lb_index.update(key, None)

    def _parse(self, cls: type[T], raw: objects.RawObject, *, log: bool = False) -> T | str:
        key = _parse_key(cls, raw)
        version = objects.resource_version(raw)
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]  # type: ignore[return-value]
        hit: T | str
        try:
            hit = registry.parse_as(cls, raw)
        except api_errors.APIValidationError as exc:
            hit = str(exc)
            if log:  # once per object version, not on every read
                logger.error("%s %s is invalid and is ignored: %s", cls.KIND,
                             objects.key_of(raw), hit)  # fmt: skip
        if cached is None and len(self._parsed) >= _CACHE_LIMIT:
            self._parsed.clear()  # objects deleted unseen; entries are rebuilt on demand
        self._parsed[key] = (version, hit)
        return hit

    def _parse_or_log(self, cls: type[T], raw: objects.RawObject) -> T | None:
        parsed = self._parse(cls, raw, log=True)
        return None if isinstance(parsed, str) else parsed


def _parse_key(cls: type[meta.KubeObject], raw: objects.RawObject) -> tuple[str, str]:
    return (cls.KIND, objects.uid(raw) or str(objects.key_of(raw)))


def tenant_key(namespace: str) -> objects.ObjectKey:
    """The work-queue key of a per-tenant reconciler (the tenant namespace)."""
    return objects.ObjectKey("", namespace)


def tenant_of(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
    """Mapper: the tenant namespace key of any namespaced object (or of a Namespace itself)."""
    if obj.get("kind") == "Namespace":
        return (tenant_key(objects.name(obj)),)
    return (tenant_key(objects.namespace(obj)),)


def tenant_of_tenant(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
    return (tenant_key(api_tenant.namespace_for(objects.name(obj))),)


def every_tenant(inputs: Inputs) -> Callable[[objects.RawObject], Iterable[objects.ObjectKey]]:
    def mapper(obj: objects.RawObject) -> Iterable[objects.ObjectKey]:
        return list(inputs.namespaces.store.keys())

    return mapper
