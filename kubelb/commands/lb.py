"""List, show, create and delete KubeLB LoadBalancers on a management cluster, as kubectl would.

  kubelb lb list [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json]
  kubelb lb get NAME [-n NS] [-o wide|yaml|json]
  kubelb lb create NAME [-n NS] --port [NAME=]PORT[:ENDPOINT_PORT][/PROTOCOL]... \\
      (--endpoint ADDRESS... | --addresses-ref ADDRESSES) [--persistence SourceIP] \\
      [--type ClusterIP|NodePort|LoadBalancer] [--hostname HOST] [--dry-run] [-o yaml|json]
  kubelb lb delete NAME... [-n NS] [--ignore-not-found]

`--port 80:30080/TCP` exposes port 80 and sends it to port 30080 of every `--endpoint` (an IP or
a DNS name); ENDPOINT_PORT defaults to PORT and PROTOCOL to TCP. With more than one port, each
is named (`tcp-80` unless NAME= is given). Instead of `--endpoint`s, `--addresses-ref default`
takes the addresses from the tenant namespace's Addresses object of that name (the one the agent
keeps as the tenant's node addresses), so the LoadBalancer follows the nodes as an agent-made one
does. `--persistence SourceIP` pins each client IP to one endpoint (spec.persistence.type). The
object is validated as the API server would before it is written.

Connection flags as kubectl: --kubeconfig, --context, -n/--namespace, -A/--all-namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import (
    conditions,
    errors as api_errors,
    loadbalancer as api_lb,
    registry,
)
from kubelb.commands import kubeflags, tables
from kubelb.kube import errors, kubeconfig, objects, resources

PROG = "kubelb lb"
RESOURCE = resources.LOAD_BALANCERS
QUALIFIED = f"loadbalancer.{RESOURCE.group}"


class UsageError(ValueError):
    """A flag's value is not usable; the message says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{list,get,create,delete}")
    listing = verbs.add_parser("list", aliases=["ls"], help="list LoadBalancers")
    kubeflags.add_arguments(listing)
    listing.add_argument("-l", "--selector", help="label selector, e.g. app=web")
    listing.add_argument("-o", "--output", choices=["wide", *tables.OUTPUTS])
    get = verbs.add_parser("get", help="show one LoadBalancer")
    get.add_argument("name")
    kubeflags.add_arguments(get, all_namespaces=False)
    get.add_argument("-o", "--output", choices=["wide", *tables.OUTPUTS])
    create = verbs.add_parser("create", help="create a LoadBalancer from flags")
    create.add_argument("name")
    kubeflags.add_arguments(create, all_namespaces=False)
    create.add_argument(
        "--port",
        action="append",
        default=[],
        required=True,
        metavar="[NAME=]PORT[:ENDPOINT_PORT][/PROTOCOL]",
        help="an exposed port and the endpoints' port it forwards to "
        "(repeatable), e.g. 80:30080/TCP",
    )
    create.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an upstream IP or DNS name (repeatable); or --addresses-ref",
    )
    create.add_argument(
        "--addresses-ref",
        metavar="ADDRESSES",
        help="take the endpoints' addresses from this Addresses object in the namespace "
        "(the agent keeps `default`), instead of --endpoint",
    )
    create.add_argument(
        "--persistence",
        choices=[t.value for t in api_lb.PersistenceType],
        help="session persistence: SourceIP sends each client IP to one endpoint (default: none)",
    )
    create.add_argument(
        "--type",
        choices=[t.value for t in api_lb.ServiceType],
        help="the management Service type (default: ClusterIP)",
    )
    create.add_argument("--hostname", help="a domain name for the LoadBalancer")
    create.add_argument(
        "--dry-run", action="store_true", help="validate and print the object, write nothing"
    )
    create.add_argument("-o", "--output", choices=tables.OUTPUTS, help="print the created object")
    delete = verbs.add_parser("delete", aliases=["rm"], help="delete LoadBalancers")
    delete.add_argument("names", nargs="+", metavar="NAME")
    kubeflags.add_arguments(delete, all_namespaces=False)
    delete.add_argument(
        "--ignore-not-found", action="store_true", help="a missing LoadBalancer is not an error"
    )


def run(args: argparse.Namespace) -> int:
    verb = {"ls": "list", "rm": "delete"}.get(args.verb, args.verb)
    action: Callable[[kubeflags.Session, argparse.Namespace], Awaitable[int]] = {
        "list": _list,
        "get": _get,
        "create": _create,
        "delete": _delete,
    }[verb]
    if verb == "create":
        try:
            build(args.name, "placeholder", args.port, args.endpoint,  # flags first: no I/O
                  addresses_ref=args.addresses_ref, persistence=args.persistence)  # fmt: skip
        except (UsageError, api_errors.APIValidationError) as exc:
            return _fail(f"{PROG} create: {exc}")
    return asyncio.run(_session(action, args))


async def _session(
    action: Callable[[kubeflags.Session, argparse.Namespace], Awaitable[int]],
    args: argparse.Namespace,
) -> int:
    try:
        session = await kubeflags.connect(args)
    except kubeconfig.ConfigError as exc:
        return _fail(f"{PROG}: {exc}")
    try:
        return await action(session, args)
    except errors.TransportError as exc:
        return _fail(f"{PROG}: cannot reach the API server: {exc}")
    except errors.ApiError as exc:
        return _fail(f"Error from server ({exc.reason or exc.status}): {exc.message}")
    finally:
        await session.close()


async def _list(session: kubeflags.Session, args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else session.namespace
    found = await session.kube.list(RESOURCE, namespace=namespace, label_selector=args.selector)
    items = sorted(found.items, key=lambda o: (objects.namespace(o), objects.name(o)))
    if args.output in tables.OUTPUTS:
        print(tables.document(tables.as_list(items), args.output), end="")
        return 0
    if not items:
        where = "" if namespace is None else f" in {namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    print(render(items, wide=args.output == "wide", namespaces=namespace is None), end="")
    return 0


async def _get(session: kubeflags.Session, args: argparse.Namespace) -> int:
    obj = await session.kube.get(RESOURCE, args.name, namespace=session.namespace)
    if args.output in tables.OUTPUTS:
        print(tables.document(obj, args.output), end="")
    else:
        print(render([obj], wide=args.output == "wide"), end="")
    return 0


async def _create(session: kubeflags.Session, args: argparse.Namespace) -> int:
    obj = build(
        args.name,
        session.namespace,
        args.port,
        args.endpoint,
        service_type=args.type,
        hostname=args.hostname,
        addresses_ref=args.addresses_ref,
        persistence=args.persistence,
    )
    if args.dry_run:
        print(tables.document(obj, args.output or "yaml"), end="")
        return 0
    try:
        created = await session.kube.create(RESOURCE, obj)
    except errors.AlreadyExistsError:
        return _fail(
            f'{PROG} create: {QUALIFIED} "{args.name}" already exists in namespace '
            f"{session.namespace}"
        )
    if args.output:
        print(tables.document(created, args.output), end="")
    else:
        print(f"{QUALIFIED}/{args.name} created")
    return 0


async def _delete(session: kubeflags.Session, args: argparse.Namespace) -> int:
    code = 0
    for name in args.names:
        try:
            await session.kube.delete(RESOURCE, name, namespace=session.namespace)
        except errors.NotFoundError:
            if not args.ignore_not_found:
                print(
                    f'Error from server (NotFound): {QUALIFIED} "{name}" not found in '
                    f"namespace {session.namespace}",
                    file=sys.stderr,
                )
                code = 1
            continue
        print(f'{QUALIFIED} "{name}" deleted')
    return code


@dataclass(frozen=True)
class PortFlag:
    name: str | None
    port: int
    endpoint_port: int
    protocol: str


_PORT = re.compile(r"^(?:(?P<name>[^=]+)=)?(?P<port>\d+)(?::(?P<target>\d+))?(?:/(?P<proto>\w+))?$")


def parse_port(text: str) -> PortFlag:
    """`[NAME=]PORT[:ENDPOINT_PORT][/PROTOCOL]` (ranges are checked by the model)."""
    match = _PORT.match(text.strip())
    if match is None:
        raise UsageError(
            f"--port {text!r}: expected [NAME=]PORT[:ENDPOINT_PORT][/PROTOCOL], e.g. 80:30080/TCP"
        )
    protocol = (match["proto"] or "TCP").upper()
    if protocol not in ("TCP", "UDP"):
        raise UsageError(f"--port {text!r}: protocol must be TCP or UDP, not {match['proto']}")
    port = int(match["port"])
    return PortFlag(match["name"], port, int(match["target"] or port), protocol)


def build(
    name: str,
    namespace: str,
    port_flags: Sequence[str],
    endpoint_flags: Sequence[str],
    *,
    service_type: str | None = None,
    hostname: str | None = None,
    addresses_ref: str | None = None,
    persistence: str | None = None,
) -> dict[str, Any]:
    """The LoadBalancer the create flags describe, validated by its model (raises UsageError
    or api.errors.APIValidationError)."""
    if not port_flags:
        raise UsageError("at least one --port is required")
    if addresses_ref is not None and endpoint_flags:
        raise UsageError("--endpoint and --addresses-ref exclude each other: with a reference "
                         "the inline addresses would be ignored")  # fmt: skip
    if addresses_ref is None and not endpoint_flags:
        raise UsageError("at least one --endpoint (or --addresses-ref) is required")
    if addresses_ref is not None and not addresses_ref.strip():
        raise UsageError("--addresses-ref: an empty name")
    flags = [parse_port(p) for p in port_flags]
    named = len(flags) > 1
    ports, endpoint_ports = [], []
    for flag in flags:
        port_name = flag.name or (f"{flag.protocol.lower()}-{flag.port}" if named else None)
        exposed: dict[str, Any] = {"port": flag.port, "protocol": flag.protocol}
        upstream: dict[str, Any] = {"port": flag.endpoint_port, "protocol": flag.protocol}
        if port_name:
            exposed, upstream = {"name": port_name, **exposed}, {"name": port_name, **upstream}
        ports.append(exposed)
        endpoint_ports.append(upstream)
    group: dict[str, Any] = {"addresses": [_address(a) for a in endpoint_flags]}
    if addresses_ref is not None:
        group = {"addressesReference": {"name": addresses_ref.strip()}}
    spec: dict[str, Any] = {"endpoints": [{**group, "ports": endpoint_ports}], "ports": ports}
    if persistence:
        spec["persistence"] = {"type": persistence}
    if service_type:
        spec["type"] = service_type
    if hostname:
        spec["hostname"] = hostname
    obj: dict[str, Any] = {
        "apiVersion": RESOURCE.api_version,
        "kind": RESOURCE.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    registry.parse_as(api_lb.LoadBalancer, obj)
    names = [p.get("name") for p in ports]
    if len(set(names)) != len(names):
        raise UsageError(f"two --port flags share the name or port: {names}")
    return obj


def _address(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        raise UsageError("--endpoint: an empty address")
    is_ip = re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*", text) is not None
    return {"ip": text} if is_ip else {"hostname": text}


# --- tables ---

HEADERS = ("NAME", "TYPE", "ADDRESS", "PORTS", "READY", "AGE")
WIDE_HEADERS = (*HEADERS, "ENDPOINTS", "REASON")


def render(
    items: Sequence[Mapping[str, Any]], *, wide: bool = False, namespaces: bool = False
) -> str:
    """LoadBalancers as `kubelb lb list` prints them."""
    headers: tuple[str, ...] = WIDE_HEADERS if wide else HEADERS
    if namespaces:
        headers = ("NAMESPACE", *headers)
    rows = []
    for obj in items:
        row = [
            objects.name(obj),
            lb_type(obj),
            address(obj),
            ports(obj),
            ready(obj),
            tables.age((obj.get("metadata") or {}).get("creationTimestamp")),
        ]
        if wide:
            ready_condition = condition(obj, conditions.READY) or {}
            row += [endpoints(obj), str(ready_condition.get("reason") or "<none>")]
        if namespaces:
            row.insert(0, objects.namespace(obj))
        rows.append(row)
    return tables.table(headers, rows)


def lb_type(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("type") or api_lb.ServiceType.CLUSTER_IP.value)


def address(obj: Mapping[str, Any]) -> str:
    """The ingress IPs or hostnames, comma-separated; `<pending>` while there is none."""
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    found = [
        str(e.get("ip") or e.get("hostname"))
        for e in ingress
        if isinstance(e, Mapping) and (e.get("ip") or e.get("hostname"))
    ]
    return ",".join(found) or "<pending>"


def ports(obj: Mapping[str, Any]) -> str:
    """`80/TCP,53/UDP`, or with the allocated upstream ports known, as kubectl shows a
    Service's NodePorts: `80:30080/TCP`."""
    spec_ports = (obj.get("spec") or {}).get("ports") or ()
    service_ports = ((obj.get("status") or {}).get("service") or {}).get("ports") or ()
    target = {
        (p.get("port"), p.get("protocol") or "TCP"): p.get("upstreamTargetPort")
        for p in service_ports
        if isinstance(p, Mapping)
    }
    shown = []
    for p in spec_ports:
        protocol = p.get("protocol") or "TCP"
        upstream = target.get((p.get("port"), protocol))
        port = f"{p.get('port')}:{upstream}" if upstream else str(p.get("port"))
        shown.append(f"{port}/{protocol}")
    return ",".join(shown) or "<none>"


def endpoints(obj: Mapping[str, Any]) -> str:
    """The upstream addresses x ports, kubectl-style (`10.0.0.1:30080,...`), at most 3 shown."""
    shown = []
    for group in (obj.get("spec") or {}).get("endpoints") or ():
        if group.get("addressesReference"):
            shown.append(f"<addresses/{(group['addressesReference'] or {}).get('name')}>")
            continue
        for a in group.get("addresses") or ():
            host = a.get("ip") or a.get("hostname")
            shown.extend(f"{host}:{p.get('port')}" for p in group.get("ports") or ())
    if len(shown) > 3:
        return ",".join(shown[:3]) + f" + {len(shown) - 3} more..."
    return ",".join(shown) or "<none>"


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return None


def ready(obj: Mapping[str, Any]) -> str:
    """The Ready condition's status: True, False, or Unknown before the manager wrote one."""
    found = condition(obj, conditions.READY)
    return str(found.get("status") or "Unknown") if found else "Unknown"


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
