"""What KubeLB serves, per tenant: its LoadBalancers and Routes, their addresses, whether the
tenant's Envoy is ready, and every condition that is not True, with its reason and message.

  kubelb status [-n NS | -A] [--kubeconfig PATH] [--context NAME] [-o yaml|json]
  kubelb status --admin-address 127.0.0.1:8081 [-o yaml|json]

Against a management cluster (the default) it reads Tenants, LoadBalancers, Routes and the
tenants' Envoy Deployments (or DaemonSets); without -n (or with -A) every namespace that has
any of them.
With --admin-address it asks a standalone kubelb (`kubelb --mode=standalone`) instead, through
its admin API (GET /api/loadbalancers); there the tenants are the objects' namespaces and the
one data plane serves them all. `-o yaml|json` prints the same facts as one document.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from kubelb.api import conditions, meta as api_meta, tenant as api_tenant
from kubelb.commands import kubeflags, lb, tables
from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.kube import errors, kubeconfig, objects, resources

PROG = "kubelb status"
STANDALONE_PATH = "/api/loadbalancers"
# Envoy as a DaemonSet (Config envoyProxy.useDaemonset) instead of a Deployment.
DAEMON_SETS = resources.Resource("apps", "v1", "daemonsets", "DaemonSet")
Document = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kubeflags.add_arguments(parser)
    parser.add_argument(
        "--admin-address",
        metavar="HOST:PORT",
        help="ask a standalone kubelb's admin API instead of a cluster",
    )
    parser.add_argument("-o", "--output", choices=tables.OUTPUTS)


def run(args: argparse.Namespace) -> int:
    try:
        if args.admin_address:
            namespace = None if args.all_namespaces else args.namespace
            document = asyncio.run(from_standalone(args.admin_address, namespace))
        else:
            document = asyncio.run(_from_flags(args))
    except StatusError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        print(tables.document(document, args.output), end="")
    else:
        print(render(document), end="")
    return 0


class StatusError(RuntimeError):
    """The cluster or the admin API could not be asked."""


# --- gathering: a management cluster ---


async def _from_flags(args: argparse.Namespace) -> Document:
    try:
        session = await kubeflags.connect(args)
    except kubeconfig.ConfigError as exc:
        raise StatusError(str(exc)) from exc
    try:
        return await from_cluster(session, None if args.all_namespaces else args.namespace)
    except errors.ApiError as exc:
        raise StatusError(str(exc)) from exc
    finally:
        await session.close()


async def from_cluster(session: kubeflags.Session, namespace: str | None) -> Document:
    """The status document of a management cluster (`namespace` None: every tenant)."""
    kube = session.kube
    tenants = await _optional_list(kube, resources.TENANTS, None)
    lbs, routes, deployments, daemon_sets = await asyncio.gather(
        kube.list(resources.LOAD_BALANCERS, namespace=namespace),
        kube.list(resources.ROUTES, namespace=namespace),
        _optional_list(kube, resources.DEPLOYMENTS, namespace, envoy_k8s.SELECTOR),
        _optional_list(kube, DAEMON_SETS, namespace, envoy_k8s.SELECTOR),
    )
    by_namespace: dict[str, Document] = {}

    def entry(ns: str) -> Document:
        if ns not in by_namespace:
            by_namespace[ns] = _tenant_entry(ns)
        return by_namespace[ns]

    for raw in tenants:
        ns = api_tenant.namespace_for(objects.name(raw))
        if namespace is None or ns == namespace:
            tenant = entry(ns)
            status = raw.get("status") or {}
            tenant["phase"] = status.get("phase")
            tenant["problems"].extend(_problems(f"Tenant {objects.name(raw)}", status))
    if namespace is not None:
        entry(namespace)
    for raw in sorted(lbs.items, key=objects.name):
        entry(objects.namespace(raw))["loadBalancers"].append(_lb_entry(raw))
    for raw in sorted(routes.items, key=objects.name):
        entry(objects.namespace(raw))["routes"].append(_route_entry(raw))
    workloads = {(objects.namespace(w), objects.name(w)): w for w in (*deployments, *daemon_sets)}
    for ns, tenant in by_namespace.items():
        tenant["envoy"] = _envoy(workloads.get((ns, envoy_k8s.workload_name(ns))))
        for item in (*tenant["loadBalancers"], *tenant["routes"]):
            tenant["problems"].extend(item.pop("_problems"))
    server = (await kube.connection()).server
    return {
        "source": "cluster",
        "server": server,
        "errors": [],
        "warnings": [],
        "tenants": [by_namespace[ns] for ns in sorted(by_namespace)],
    }


async def _optional_list(
    kube: Any, resource: resources.Resource, namespace: str | None, selector: str | None = None
) -> list[objects.RawObject]:
    """The objects, or none when this identity may not list them or the kind is not served."""
    try:
        found = await kube.list(resource, namespace=namespace, label_selector=selector)
    except (errors.ForbiddenError, errors.NotFoundError):
        return []
    items: list[objects.RawObject] = found.items
    return items


def _tenant_entry(namespace: str) -> Document:
    return {
        "name": api_tenant.tenant_name_for(namespace),
        "namespace": namespace,
        "phase": None,
        "envoy": None,
        "loadBalancers": [],
        "routes": [],
        "problems": [],
    }


def _lb_entry(raw: objects.RawObject) -> Document:
    ready = lb.ready(raw)
    return {
        "name": objects.name(raw),
        "type": lb.lb_type(raw),
        "address": lb.address(raw),
        "ports": lb.ports(raw),
        "ready": ready == api_meta.ConditionStatus.TRUE,
        "reason": _reason(lb.condition(raw, conditions.READY)),
        "_problems": _problems(
            f"LoadBalancer {objects.name(raw)}",
            raw.get("status") or {},
            unknown_ready=ready == api_meta.ConditionStatus.UNKNOWN,
        ),
    }


def _route_entry(raw: objects.RawObject) -> Document:
    source = ((raw.get("spec") or {}).get("source") or {}).get("kubernetes") or {}
    resource = source.get("resource") or {}
    meta = resource.get("metadata") or {}
    state = (((raw.get("status") or {}).get("resources") or {}).get("route")) or {}
    applied = next(
        (c for c in state.get("conditions") or () if c.get("type") == conditions.RESOURCE_APPLIED),
        None,
    )
    return {
        "name": objects.name(raw),
        "kind": resource.get("kind") or "",
        "object": f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}",
        "address": route_address(state.get("status") or {}),
        "ready": bool(applied and applied.get("status") == api_meta.ConditionStatus.TRUE),
        "reason": _reason(applied),
        "_problems": _problems(
            f"Route {objects.name(raw)}",
            state,
            unknown_ready=applied is None,
            expected=conditions.RESOURCE_APPLIED,
        ),
    }


def route_address(status: Mapping[str, Any]) -> str:
    """Where an embedded Ingress (status.loadBalancer.ingress) or Gateway (status.addresses)
    is served; `<pending>` while nowhere."""
    ingress = (status.get("loadBalancer") or {}).get("ingress") or ()
    found = [
        str(e.get("ip") or e.get("hostname"))
        for e in ingress
        if isinstance(e, Mapping) and (e.get("ip") or e.get("hostname"))
    ]
    found += [
        str(a.get("value"))
        for a in status.get("addresses") or ()
        if isinstance(a, Mapping) and a.get("value")
    ]
    return ",".join(found) or "<pending>"


def _envoy(workload: Mapping[str, Any] | None) -> Document:
    if workload is None:
        return {"workload": None, "ready": False, "readyReplicas": 0, "replicas": 0}
    status = workload.get("status") or {}
    if workload.get("kind") == DAEMON_SETS.kind:
        ready_count, wanted = status.get("numberReady"), status.get("desiredNumberScheduled")
    else:
        ready_count = status.get("readyReplicas")
        wanted = (workload.get("spec") or {}).get("replicas", 1)
    ready_count, wanted = int(ready_count or 0), int(wanted or 0)
    return {
        "workload": f"{workload.get('kind')}/{objects.name(workload)}",
        "ready": ready_count > 0,
        "readyReplicas": ready_count,
        "replicas": wanted,
    }


def _problems(
    what: str,
    status: Mapping[str, Any],
    *,
    unknown_ready: bool = False,
    expected: str = conditions.READY,
) -> list[Document]:
    """Every condition that is not True; a missing `expected` condition is one too."""
    found = [
        {"object": what, **{k: c.get(k) for k in ("type", "status", "reason", "message")}}
        for c in status.get("conditions") or ()
        if isinstance(c, Mapping) and c.get("status") != api_meta.ConditionStatus.TRUE
    ]
    if unknown_ready:
        found.append(
            {
                "object": what,
                "type": expected,
                "status": "Unknown",
                "reason": "NoStatus",
                "message": "the manager has not written a status yet",
            }
        )
    return found


def _reason(condition: Mapping[str, Any] | None) -> str:
    return str((condition or {}).get("reason") or "")


# --- gathering: standalone mode ---


async def from_standalone(address: str, namespace: str | None = None) -> Document:
    """The status document of a standalone kubelb, from its admin API."""
    base = address if "://" in address else f"http://{address}"
    url = base.rstrip("/") + STANDALONE_PATH
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
            if response.status != 200:
                raise StatusError(f"GET {url}: HTTP {response.status}")
            raw = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise StatusError(f"cannot read {url}: {str(exc) or type(exc).__name__}") from exc
    return standalone_document(raw, url, namespace)


def standalone_document(raw: Mapping[str, Any], url: str, namespace: str | None) -> Document:
    """A standalone status document (`kubelb.app.standalone`) reshaped per tenant (namespace)."""
    dataplane = dict(raw.get("dataplane") or {})
    envoy = {
        "workload": f"dataplane/{dataplane.get('kind') or 'unknown'}",
        "ready": bool(dataplane.get("ready")),
    }
    by_namespace: dict[str, Document] = {}
    for item in raw.get("loadBalancers") or ():
        ns = str(item.get("namespace") or "")
        tenant = by_namespace.setdefault(ns, {**_tenant_entry(ns), "envoy": envoy})
        ready_condition = next(
            (c for c in item.get("conditions") or () if c.get("type") == conditions.READY), None
        )
        ports = ",".join(
            f"{p.get('port')}/{p.get('protocol') or 'TCP'}" for p in item.get("ports") or ()
        )
        tenant["loadBalancers"].append(
            {
                "name": item.get("name"),
                "type": "LoadBalancer",
                "address": item.get("address") or "<pending>",
                "ports": ports or "<none>",
                "ready": bool(item.get("ready")),
                "reason": _reason(ready_condition),
                "source": item.get("source") or "",
            }
        )
        what = f"LoadBalancer {item.get('name')}"
        tenant["problems"].extend(_problems(what, item, unknown_ready=ready_condition is None))
        tenant["problems"].extend(_errors(what, item.get("errors") or ()))
    for item in raw.get("routes") or ():
        ns = str(item.get("namespace") or "")
        tenant = by_namespace.setdefault(ns, {**_tenant_entry(ns), "envoy": envoy})
        applied = next(iter(item.get("conditions") or ()), None)
        tenant["routes"].append(
            {
                "name": item.get("name"),
                "kind": item.get("kind") or "",
                "object": item.get("object") or "",
                "address": route_address(item.get("status") or {}),
                "ready": bool(item.get("applied")),
                "reason": _reason(applied),
                "source": item.get("source") or "",
            }
        )
        what = f"Route {item.get('name')}"
        tenant["problems"].extend(
            _problems(
                what, item, unknown_ready=applied is None, expected=conditions.RESOURCE_APPLIED
            )
        )
        tenant["problems"].extend(_errors(what, item.get("errors") or ()))
    if namespace is not None:
        by_namespace = {ns: t for ns, t in by_namespace.items() if ns == namespace}
    return {
        "source": "standalone",
        "server": url,
        "dataplane": dataplane,
        "pool": list(raw.get("pool") or ()),
        "errors": list(raw.get("errors") or ()),
        "warnings": list(raw.get("warnings") or ()),
        "tenants": [by_namespace[ns] for ns in sorted(by_namespace)],
    }


def _errors(what: str, messages: Iterable[str]) -> list[Document]:
    return [
        {
            "object": what,
            "type": "Error",
            "status": "False",
            "reason": "InvalidDocument",
            "message": m,
        }
        for m in messages
    ]


# --- rendering ---


def render(document: Mapping[str, Any]) -> str:
    """The status document as text: a summary table, then per tenant its objects and problems."""
    tenants: Sequence[Mapping[str, Any]] = document.get("tenants") or ()
    out = [f"Source: {document.get('source')} ({document.get('server')})\n"]
    if document.get("source") == "standalone":
        dataplane = document.get("dataplane") or {}
        state = "ready" if dataplane.get("ready") else "NOT ready"
        out.append(
            f"Data plane: {dataplane.get('kind')} {state}; address pool: "
            f"{', '.join(document.get('pool') or ()) or '<none>'}\n"
        )
    out += [f"Error: {e}\n" for e in document.get("errors") or ()]
    out += [f"Warning: {w}\n" for w in document.get("warnings") or ()]
    if not tenants:
        out.append("No tenants, LoadBalancers or Routes found.\n")
        return "".join(out)
    out.append("\n")
    out.append(
        tables.table(
            ("TENANT", "NAMESPACE", "ENVOY", "LOADBALANCERS", "ROUTES", "PROBLEMS"),
            [
                (
                    t["name"],
                    t["namespace"],
                    envoy_summary(t.get("envoy")),
                    _ready_count(t["loadBalancers"]),
                    _ready_count(t["routes"]),
                    str(len(t["problems"])),
                )
                for t in tenants
            ],
        )
    )
    for t in tenants:
        out.append(
            f"\nTenant {t['name']} (namespace {t['namespace']})"
            f"{': ' + t['phase'] if t.get('phase') else ''}\n"
        )
        out.append(f"  Envoy: {envoy_detail(t.get('envoy'))}\n")
        for title, rows, columns, fields in (
            ("LoadBalancers", t["loadBalancers"], ("NAME", "TYPE", "ADDRESS", "PORTS"),
             ("name", "type", "address", "ports")),
            ("Routes", t["routes"], ("NAME", "KIND", "OBJECT", "ADDRESS"),
             ("name", "kind", "object", "address")),
        ):  # fmt: skip
            if rows:
                out.append(f"  {title}:\n")
                cells = [(*(x[f] for f in fields), str(x["ready"]), x["reason"] or "<none>")
                         for x in rows]  # fmt: skip
                out.append(_indent(tables.table((*columns, "READY", "REASON"), cells)))
        if t["problems"]:
            out.append("  Not ready:\n")
            out.extend(f"    {problem_line(p)}\n" for p in t["problems"])
    return "".join(out)


def problem_line(problem: Mapping[str, Any]) -> str:
    """`LoadBalancer web: Ready=False (NoAddress): no ingress IP yet`"""
    message = f": {problem['message']}" if problem.get("message") else ""
    return (
        f"{problem['object']}: {problem.get('type')}={problem.get('status')} "
        f"({problem.get('reason') or 'NoReason'}){message}"
    )


def envoy_summary(envoy: Mapping[str, Any] | None) -> str:
    if not envoy or not envoy.get("workload"):
        return "<none>"
    if "replicas" not in envoy:
        return "Ready" if envoy.get("ready") else "NotReady"
    return f"{envoy['readyReplicas']}/{envoy['replicas']}"


def envoy_detail(envoy: Mapping[str, Any] | None) -> str:
    if not envoy or not envoy.get("workload"):
        return "no Envoy workload found (none needed yet, or the process deployer)"
    state = "ready" if envoy.get("ready") else "NOT ready"
    if "replicas" not in envoy:
        return f"{envoy['workload']} {state}"
    return f"{envoy['workload']} {state} ({envoy['readyReplicas']}/{envoy['replicas']} replicas)"


def _ready_count(items: Sequence[Mapping[str, Any]]) -> str:
    return f"{sum(1 for x in items if x['ready'])}/{len(items)} ready"


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line + "\n" for line in text.splitlines())
