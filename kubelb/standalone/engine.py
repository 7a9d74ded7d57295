"""The standalone reconciler: file documents -> API objects -> placement -> IR and statuses.

Input: a `sources.file.Snapshot`. Output: an `Outcome` holding the IR for the host's one
data-plane node and a status per LoadBalancer (address, ports, `Ready` condition with a reason).
Level-triggered: every call recomputes everything from the documents and the persisted
assignments, so it can run at any time and twice in a row gives the same answer.

Bad input stays local: an invalid LoadBalancer keeps serving its last valid version (if it had
one) and says so in its condition; a LoadBalancer that cannot be placed is reported and the others
are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import (
    addresses as api_addresses,
    conditions,
    config as api_config,
    errors as api_errors,
    loadbalancer as api_lb,
    registry,
)
from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.placement import pool as address_pool
from kubelb.sources import file
from kubelb.standalone import state
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

NODE_ID = "standalone"
# On the Config object: the address pool, when --address-pool is not given.
ADDRESS_POOL_ANNOTATION = "kubelb.k8c.io/address-pool"
DEFAULT_POOL = ("127.0.0.1",)


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" | "False"
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class PortStatus:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class LoadBalancerStatus:
    namespace: str
    name: str
    origin: str
    address: str | None
    ports: tuple[PortStatus, ...]
    conditions: tuple[Condition, ...]

    @property
    def ready(self) -> bool:
        return any(c.type == conditions.READY and c.status == "True" for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Outcome:
    config: proxy.ProxyConfig
    loadbalancers: tuple[LoadBalancerStatus, ...]
    errors: tuple[str, ...]  # problems not tied to one LoadBalancer (files, other kinds)
    pool: tuple[str, ...]


@dataclass
class _Decoded:
    lbs: dict[str, tuple[api_lb.LoadBalancer, file.Document]] = field(default_factory=dict)
    invalid: dict[str, tuple[str, file.Document]] = field(default_factory=dict)
    addresses: dict[str, dict[str, api_addresses.Addresses]] = field(default_factory=dict)
    config: api_config.Config | None = None
    errors: list[str] = field(default_factory=list)


class Engine:
    """Holds what must survive between reconciles: last valid objects and the state store."""

    def __init__(
        self,
        *,
        store: state.StateStore,
        pool: Sequence[str] | None = None,
        reserved: Callable[[], Iterable[address_pool.Reservation]] = tuple,
        probe: address_pool.Probe | None = None,
    ) -> None:
        self._store = store
        self._reserved = reserved  # kubelb's own sockets: no LoadBalancer is placed there
        # Finds a new placement's socket held by another process (another kubelb's Envoy);
        # sockets this engine placed before are ours (our Envoy may still be draining them).
        self._probe = probe
        self._ours: set[tuple[str, int, str]] = set()
        self._pool_flag = tuple(pool) if pool else None
        self._last_valid: dict[str, api_lb.LoadBalancer] = {}

    def reconcile(self, snapshot: file.Snapshot) -> Outcome:
        decoded = self._decode(snapshot)
        errors = [f"{e.path}: {e.message}" for e in snapshot.errors] + decoded.errors
        pool = self._pool(decoded.config, errors)

        candidates: dict[str, tuple[api_lb.LoadBalancer, str, list[str]]] = {}
        for key, (lb, doc) in decoded.lbs.items():
            candidates[key] = (lb, doc.origin, [])
        for key, (message, doc) in decoded.invalid.items():
            last = self._last_valid.get(key)
            if last is not None:
                candidates[key] = (last, doc.origin, [f"{message}; serving the last valid version"])

        needs = {
            key: [(p.port, "UDP" if str(p.protocol) == "UDP" else "TCP") for p in lb.spec.ports]
            for key, (lb, _, _) in candidates.items()
        }
        assignment = address_pool.assign(
            pool, needs, self._store.load(), self._reserved(), self._probe and self._probe_free
        )
        self._ours.update(
            (address, port, transport)
            for key, address in assignment.addresses.items()
            for port, transport in needs[key]
        )
        self._store.save(assignment.addresses)

        placed = [
            (lb, irbuild.Placement(address=assignment.addresses[key]))
            for key, (lb, _, _) in candidates.items()
            if key in assignment.addresses
        ]
        built = irbuild.build_proxy_config(NODE_ID, placed, _addresses_by_name(decoded.addresses))
        served = {li.owner for li in built.config.listeners}
        statuses = [
            _status(key, lb, origin, warnings, assignment, built.problems.get(key, ()), served)
            for key, (lb, origin, warnings) in candidates.items()
        ]
        statuses.extend(
            _invalid_status(key, message, doc)
            for key, (message, doc) in decoded.invalid.items()
            if key not in candidates
        )
        for s in statuses:
            if not s.ready:
                logger.warning(
                    "LoadBalancer %s/%s: %s",
                    logsafe.shown(s.namespace),
                    logsafe.shown(s.name),
                    s.conditions[0].message,
                )
        return Outcome(
            config=built.config,
            loadbalancers=tuple(sorted(statuses, key=lambda s: (s.namespace, s.name))),
            errors=tuple(errors),
            pool=pool,
        )

    def _decode(self, snapshot: file.Snapshot) -> _Decoded:
        out = _Decoded()
        seen: dict[str, str] = {}
        for doc in snapshot.documents:
            kind = str(doc.body.get("kind", ""))
            key = f"{kind}/{_raw_key(doc.body)}"
            if key in seen:
                out.errors.append(f"{doc.origin}: duplicate {key}, already defined at {seen[key]}")
                continue
            seen[key] = doc.origin
            try:
                obj = registry.parse(dict(doc.body))
            except api_errors.APIValidationError as e:
                if kind == "LoadBalancer":
                    out.invalid[_raw_key(doc.body)] = (str(e), doc)
                else:
                    out.errors.append(f"{doc.origin}: {e}")
                continue
            except ValueError as e:
                out.errors.append(f"{doc.origin}: {e}")
                continue
            if isinstance(obj, api_lb.LoadBalancer):
                lb_key = irbuild.lb_key(obj)
                out.lbs[lb_key] = (obj, doc)
                self._last_valid[lb_key] = obj
            elif isinstance(obj, api_addresses.Addresses):
                ns = obj.metadata.namespace or "default"
                out.addresses.setdefault(ns, {})[obj.metadata.name or ""] = obj
            elif isinstance(obj, api_config.Config):
                out.config = obj
            else:
                out.errors.append(f"{doc.origin}: kind {kind} is not used in standalone mode")
        for gone in set(self._last_valid) - set(out.lbs) - set(out.invalid):
            del self._last_valid[gone]
        return out

    def _probe_free(self, address: str, port: int, transport: str) -> bool:
        if (address, port, transport) in self._ours or self._probe is None:
            return True
        return self._probe(address, port, transport)

    def _pool(self, config: api_config.Config | None, errors: list[str]) -> tuple[str, ...]:
        if self._pool_flag is not None:
            return self._pool_flag
        spec = (config.metadata.annotations or {}).get(ADDRESS_POOL_ANNOTATION) if config else None
        if spec:
            try:
                return address_pool.parse_pool(spec)
            except address_pool.PoolError as e:
                errors.append(f"Config {ADDRESS_POOL_ANNOTATION}: {e}; using {DEFAULT_POOL[0]}")
        return DEFAULT_POOL


def _addresses_by_name(
    by_namespace: Mapping[str, Mapping[str, api_addresses.Addresses]],
) -> dict[str, api_addresses.Addresses]:
    # One data-plane node serves every namespace here; references stay within a namespace.
    return {f"{ns}/{name}": obj for ns, objs in by_namespace.items() for name, obj in objs.items()}


def _raw_key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or '<unnamed>'}"


def _status(
    key: str,
    lb: api_lb.LoadBalancer,
    origin: str,
    warnings: list[str],
    assignment: address_pool.Assignment,
    problems: Sequence[str],
    served: set[str],
) -> LoadBalancerStatus:
    namespace, name = key.split("/", 1)
    ports = tuple(
        PortStatus(name=p.name or "", port=p.port, protocol=str(p.protocol)) for p in lb.spec.ports
    )
    address = assignment.addresses.get(key)
    unplaced = assignment.unplaced.get(key)
    if unplaced is not None:
        cond = Condition(conditions.READY, "False", unplaced.reason, unplaced.message)
    elif key not in served:
        message = "; ".join([*warnings, *problems]) or "no ports to serve"
        cond = Condition(conditions.READY, "False", conditions.INVALID_SPEC, message)
    elif problems or warnings:
        reason = conditions.INVALID_SPEC if warnings else "PartiallyServing"
        cond = Condition(conditions.READY, "True", reason, "; ".join([*warnings, *problems]))
    else:
        cond = Condition(conditions.READY, "True", "Serving", f"serving on {address}")
    return LoadBalancerStatus(namespace, name, origin, address, ports, (cond,))


def _invalid_status(key: str, message: str, doc: file.Document) -> LoadBalancerStatus:
    namespace, name = key.split("/", 1)
    cond = Condition(conditions.READY, "False", conditions.INVALID_SPEC, message)
    return LoadBalancerStatus(namespace, name, doc.origin, None, (), (cond,))
