"""HTTPRoute and GRPCRoute rules -> IR routes, one per match (so precedence is per match). Pure.

A rule's filters become the route's header modifiers, rewrite, redirect and mirrors; its
backendRefs weighted backends; its `timeouts` the route's. What cannot be served is answered
the way Gateway API asks and reported: a rule with a filter kubelb does not implement
(ExtensionRef, CORS, ...) or an invalid combination answers 500 (Accepted False,
UnsupportedValue; an ExtensionRef: ResolvedRefs False, InvalidKind); a backendRef that does not
resolve keeps its share of the weights, and that share fails (ResolvedRefs False,
BackendNotFound or InvalidKind); a rule with no usable backend answers 500.

GRPCRoute: a method match becomes a path match (`/service/method` Exact when both are given,
else a regular expression) on POST; requests go to the upstream over HTTP/2.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubelb.ir import proxy
from kubelb.irbuild import routebackends, routechecks, routecontext, routeprecedence
from kubelb.util import naming

GATEWAY_GROUP = "gateway.networking.k8s.io"
UNSUPPORTED_VALUE = "UnsupportedValue"
INVALID_KIND = "InvalidKind"
_HTTP_FILTERS = frozenset(
    {
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
    }
)
_GRPC_FILTERS = frozenset({"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"})
_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True, slots=True)
class RuleRoute:
    """One match of one rule, with its place in the route (rule index, match index)."""

    route: proxy.HTTPRoute
    position: tuple[int, int]
    # `routeprecedence.match_order` (HTTPRoute) or `grpc_order` (GRPCRoute) of its match
    order: tuple[int, ...]


@dataclass
class Findings:
    """Why a route's conditions are not all True."""

    # ResolvedRefs False: (reason, message)
    refs: list[tuple[str, str]] = field(default_factory=list)
    # Accepted False, UnsupportedValue: messages
    unsupported: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Built:
    routes: tuple[RuleRoute, ...]
    findings: Findings


def build(rep: routecontext.Report, tenant: routecontext.Tenant, *, grpc: bool) -> Built:
    spec = rep.resource.get("spec") or {}
    findings = Findings()
    kind = "grpcroute" if grpc else "httproute"
    out: list[RuleRoute] = []
    prefix = naming.join(kind, rep.source_namespace, rep.source_name, "rule")
    for rule_index, rule in enumerate(spec.get("rules") or ()):
        rule_name = str(rule.get("name") or "")
        # An unnamed rule by position as `#0`: never the same as a rule named `0`.
        rule_id = naming.escape(rule_name) if rule_name else f"#{rule_index}"
        where = f"rule {rule_name!r}" if rule_name else f"rule {rule_index}"
        template = _Rule(rep, tenant, findings, where, grpc).template(rule)
        for match_index, raw in enumerate(rule.get("matches") or ({},)):
            name = f"{prefix}/{rule_id}/{match_index}"
            match = _grpc_match(raw) if grpc else _http_match(raw)
            if isinstance(match, str):
                _unsupported(rep, findings, f"{where} match {match_index}: {match}: not served")
                continue
            route = dataclasses.replace(template, name=name, match=match)
            if _needs_prefix(route) and match.path.kind is not proxy.PathMatchKind.PREFIX:
                _unsupported(
                    rep,
                    findings,
                    f"{where} match {match_index}: ReplacePrefixMatch needs a PathPrefix match",
                )
                route = proxy.HTTPRoute(name=name, match=match, direct_status=500)
            order = _grpc_order(raw, match) if grpc else routeprecedence.match_order(match)
            out.append(RuleRoute(route, (rule_index, match_index), order))
    return Built(tuple(out), findings)


def _grpc_order(raw: Mapping[str, Any], match: proxy.RouteMatch) -> tuple[int, ...]:
    method = raw.get("method") or {}
    return routeprecedence.grpc_order(
        match.path.kind,
        str(method.get("service") or ""),
        str(method.get("method") or ""),
        len(match.headers),
    )


def _weight(ref: Mapping[str, Any]) -> int:
    """A backendRef's weight (1 unless given); 0 for one that gets no requests."""
    weight = ref.get("weight", 1)
    return weight if isinstance(weight, int) and not isinstance(weight, bool) and weight > 0 else 0


def _unsupported(rep: routecontext.Report, findings: Findings, message: str) -> None:
    findings.unsupported.append(message)
    rep.problem(message)


def _needs_prefix(route: proxy.HTTPRoute) -> bool:
    return any(
        x is not None and x.path is not None and x.path.kind is proxy.PathRewriteKind.PREFIX
        for x in (route.rewrite, route.redirect)
    )


@dataclass
class _Rule:
    rep: routecontext.Report
    tenant: routecontext.Tenant
    findings: Findings
    where: str
    grpc: bool

    def template(self, rule: Mapping[str, Any]) -> proxy.HTTPRoute:
        """The rule's route without name and match; answers 500 when it cannot be served."""
        fields: dict[str, Any] = {}
        failed = False
        allowed = _GRPC_FILTERS if self.grpc else _HTTP_FILTERS
        mirrors: list[proxy.Mirror] = []
        for f in rule.get("filters") or ():
            kind = str(f.get("type", ""))
            if kind == "ExtensionRef":
                failed = True
                ref = f.get("extensionRef") or {}
                message = (
                    f"{self.where}: ExtensionRef {ref.get('kind', '')} "
                    f"{ref.get('name', '')!r} is not supported: the rule answers 500"
                )
                self.findings.refs.append((INVALID_KIND, message))
                self.rep.problem(message)
            elif kind not in allowed:
                failed = True
                self.fail(f"filter {kind} is not supported")
            elif kind == "RequestMirror":
                mirror = self.mirror(f.get("requestMirror") or {})
                if mirror is not None:
                    mirrors.append(mirror)
            elif kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
                key = "request_headers" if kind.startswith("Request") else "response_headers"
                # `requestHeaderModifier` / `responseHeaderModifier`
                raw = f.get(kind[0].lower() + kind[1:]) or {}
                modifier = _header_modifier(raw)
                if isinstance(modifier, str):
                    failed = True
                    self.fail(modifier)
                else:
                    fields.setdefault(key, modifier)
            elif kind == "RequestRedirect":
                redirect = self.redirect(f.get("requestRedirect") or {})
                failed = failed or redirect is None
                fields.setdefault("redirect", redirect)
            else:
                rewrite = self.rewrite(f.get("urlRewrite") or {})
                failed = failed or rewrite is None
                fields.setdefault("rewrite", rewrite)
        if fields.get("redirect") is not None and fields.get("rewrite") is not None:
            failed = True
            self.fail("RequestRedirect and URLRewrite cannot be combined")
        if any(b.get("filters") for b in rule.get("backendRefs") or ()):
            failed = True
            self.fail("filters on a backendRef are not supported")
        timeouts = rule.get("timeouts") or {}
        for key, field_name in (
            ("request", "timeout_seconds"),
            ("backendRequest", "backend_timeout_seconds"),
        ):
            if key in timeouts:
                seconds = parse_duration(str(timeouts[key]))
                if seconds is None:
                    self.fail(f"timeouts.{key} {timeouts[key]!r} is not a duration", serve=True)
                else:
                    fields[field_name] = seconds
        if failed:
            return proxy.HTTPRoute(name="", direct_status=500)
        fields["mirrors"] = tuple(mirrors)
        if fields.get("redirect") is None:
            fields.pop("redirect", None)
            backends = self.backends(rule.get("backendRefs") or ())
            if backends:
                fields["backends"] = backends
            else:
                fields["direct_status"] = 500
                if not any(_weight(ref) for ref in rule.get("backendRefs") or ()):
                    self.rep.problem(f"{self.where}: no backendRef with a weight: answers 500")
        else:
            fields.pop("rewrite", None)
            fields["mirrors"] = ()
        return proxy.HTTPRoute(name="", **fields)

    def fail(self, what: str, *, serve: bool = False) -> None:
        tail = "ignored" if serve else "the rule answers 500"
        _unsupported(self.rep, self.findings, f"{self.where}: {what}: {tail}")

    def backends(self, refs: Any) -> tuple[proxy.WeightedCluster, ...]:
        """The weighted shares, an unresolved one failing on its own; none when no share
        resolves."""
        shares: list[tuple[str | None, int]] = []
        for ref in refs:
            weight = _weight(ref)
            if weight:
                shares.append((self.cluster(ref, "backendRef"), weight))
        if all(cluster is None for cluster, _ in shares):
            return ()
        return tuple(
            proxy.WeightedCluster(
                cluster=cluster or self.tenant.clusters.unresolved(), weight=weight
            )
            for cluster, weight in shares
        )

    def cluster(self, ref: Mapping[str, Any], what: str) -> str | None:
        group = ref.get("group") or ""
        kind = ref.get("kind") or "Service"
        name = str(ref.get("name") or "")
        if group != "" or kind != "Service":
            message = (
                f"{self.where}: {what} {group or 'core'}/{kind} {name!r}: only Services "
                "are supported"
            )
            self.findings.refs.append((INVALID_KIND, message))
            self.rep.problem(message)
            return None
        port = ref.get("port")
        backend = routebackends.BackendRef(
            str(ref.get("namespace") or self.rep.source_namespace),
            name,
            port if isinstance(port, int) else None,
        )
        upstream = proxy.UpstreamProtocol.HTTP2 if self.grpc else proxy.UpstreamProtocol.HTTP1
        resolved = self.rep.resolve(backend, upstream, tenant=self.tenant)
        if resolved.cluster is None:
            message = f"{self.where}: {what} {resolved.problem}"
            self.findings.refs.append((resolved.reason, message))
            self.rep.problem(message)
        return resolved.cluster

    def mirror(self, raw: Mapping[str, Any]) -> proxy.Mirror | None:
        cluster = self.cluster(raw.get("backendRef") or {}, "RequestMirror")
        if cluster is None:
            return None
        percent = 100.0
        if isinstance(raw.get("percent"), int):
            percent = float(raw["percent"])
        elif isinstance(raw.get("fraction"), Mapping):
            fraction = raw["fraction"]
            numerator, denominator = fraction.get("numerator", 0), fraction.get("denominator", 100)
            if isinstance(numerator, int) and isinstance(denominator, int) and denominator > 0:
                percent = 100.0 * numerator / denominator
            else:
                percent = -1.0
        if not 0.0 <= percent <= 100.0:
            self.fail("RequestMirror: the share must be between 0 and 100 percent", serve=True)
            return None
        return proxy.Mirror(cluster=cluster, percent=percent)

    def redirect(self, raw: Mapping[str, Any]) -> proxy.Redirect | None:
        problems: list[str] = []
        status = raw.get("statusCode", 302)
        if status not in proxy.REDIRECT_CODES:
            problems.append(f"redirect statusCode {status!r} is not supported")
        scheme = raw.get("scheme") or None
        if scheme not in (None, "http", "https"):
            problems.append(f"redirect scheme {scheme!r} is not supported")
        port = raw.get("port")
        if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
            problems.append(f"redirect port {port!r} is outside 1-65535")
        hostname = _hostname(raw.get("hostname"), problems)
        path = _path_modifier(raw.get("path"), problems)
        if problems:
            self.fail("; ".join(problems))
            return None
        return proxy.Redirect(
            scheme=scheme, hostname=hostname, port=port, path=path, status_code=status
        )

    def rewrite(self, raw: Mapping[str, Any]) -> proxy.URLRewrite | None:
        problems: list[str] = []
        hostname = _hostname(raw.get("hostname"), problems)
        path = _path_modifier(raw.get("path"), problems)
        if problems:
            self.fail("; ".join(problems))
            return None
        return proxy.URLRewrite(hostname=hostname, path=path)


def _hostname(raw: Any, problems: list[str]) -> str | None:
    if not raw:
        return None
    hostname = str(raw).lower()
    problem = routechecks.hostname_problem(hostname, wildcard=False)
    if problem is not None:
        problems.append(problem)
    return hostname


def _path_modifier(raw: Any, problems: list[str]) -> proxy.PathRewrite | None:
    if not raw:
        return None
    kind = raw.get("type")
    if kind == "ReplaceFullPath":
        rewrite = proxy.PathRewrite(
            kind=proxy.PathRewriteKind.FULL, value=str(raw.get("replaceFullPath") or "/")
        )
    elif kind == "ReplacePrefixMatch":
        rewrite = proxy.PathRewrite(
            kind=proxy.PathRewriteKind.PREFIX, value=str(raw.get("replacePrefixMatch") or "/")
        )
    else:
        problems.append(f"path modifier type {kind!r} is not supported")
        return None
    problem = routechecks.path_problem(rewrite.value)
    if problem is not None:
        problems.append(problem)
    return rewrite


def _header_modifier(raw: Mapping[str, Any]) -> proxy.HeaderModifier | str:
    """The modifier, or why it cannot be served."""
    problems: list[str] = []

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        out = []
        for h in raw.get(key) or ():
            name, value = str(h.get("name", "")), str(h.get("value", ""))
            problems.extend(
                p
                for p in (
                    routechecks.header_name_problem(name),
                    routechecks.header_value_problem(value),
                )
                if p is not None
            )
            out.append((name.lower(), value))
        return tuple(out)

    modifier = proxy.HeaderModifier(
        set=pairs("set"),
        add=pairs("add"),
        remove=tuple(str(n).lower() for n in raw.get("remove") or ()),
    )
    problems.extend(
        p for n in modifier.remove if (p := routechecks.header_name_problem(n)) is not None
    )
    return "; ".join(problems) if problems else modifier


def parse_duration(text: str) -> float | None:
    """Gateway API's duration (`1h`, `10s`, `500ms`, `1m30s`) in seconds; None if invalid."""
    if not _DURATION.match(text):
        return None
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _value_kind(raw: Mapping[str, Any]) -> proxy.ValueMatchKind | None:
    kind = raw.get("type", "Exact")
    if kind == "Exact":
        return proxy.ValueMatchKind.EXACT
    if kind == "RegularExpression":
        return proxy.ValueMatchKind.REGEX
    return None


METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


M = TypeVar("M", proxy.HeaderMatch, proxy.QueryParamMatch)


def _value_matches(entries: Any, cls: type[M], what: str) -> tuple[M, ...] | str:
    """Header (names lower-cased) or query parameter matches; of several on one name the
    first counts (Gateway API)."""
    out: dict[str, M] = {}
    for e in entries or ():
        kind = _value_kind(e)
        if kind is None:
            return f"{what} match type {e.get('type')!r} is not supported"
        name, value = str(e.get("name", "")), str(e.get("value", ""))
        problem = routechecks.header_name_problem(name) or (
            routechecks.regex_problem(value)
            if kind is proxy.ValueMatchKind.REGEX
            else routechecks.header_value_problem(value)
        )
        if problem is not None:
            return problem
        # Header names are case-insensitive, query parameter names are not.
        key = name.lower() if what == "header" else name
        out.setdefault(key, cls(name=key, value=value, kind=kind))
    return tuple(out.values())


def _http_match(raw: Mapping[str, Any]) -> proxy.RouteMatch | str:
    path = raw.get("path") or {}
    kind = path.get("type", "PathPrefix")
    value = str(path.get("value", "/"))
    if kind == "PathPrefix":
        path_match = proxy.PathMatch(
            kind=proxy.PathMatchKind.PREFIX, value=value.rstrip("/") or "/"
        )
    elif kind == "Exact":
        path_match = proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value=value)
    elif kind == "RegularExpression":
        path_match = proxy.PathMatch(kind=proxy.PathMatchKind.REGEX, value=value)
    else:
        return f"path match type {kind!r} is not supported"
    problem = (
        routechecks.regex_problem(value)
        if path_match.kind is proxy.PathMatchKind.REGEX
        else routechecks.path_problem(value)
    )
    if problem is not None:
        return problem
    headers = _value_matches(raw.get("headers"), proxy.HeaderMatch, "header")
    if isinstance(headers, str):
        return headers
    params = _value_matches(raw.get("queryParams"), proxy.QueryParamMatch, "query parameter")
    if isinstance(params, str):
        return params
    method = str(raw["method"]).upper() if raw.get("method") else None
    if method is not None and method not in METHODS:
        return f"method {method!r} is not supported"
    return proxy.RouteMatch(path=path_match, headers=headers, query_params=params, method=method)


def _grpc_match(raw: Mapping[str, Any]) -> proxy.RouteMatch | str:
    method = raw.get("method") or {}
    service = str(method.get("service") or "")
    name = str(method.get("method") or "")
    kind = method.get("type", "Exact")
    if kind == "Exact":
        problem = routechecks.grpc_problem(service, name)
        if service and name:
            path = proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value=f"/{service}/{name}")
        elif service or name:
            regex = f"/{re.escape(service) or '[^/]+'}/{re.escape(name) or '[^/]+'}"
            path = proxy.PathMatch(kind=proxy.PathMatchKind.REGEX, value=regex)
        else:
            path = proxy.PathMatch()
    elif kind == "RegularExpression":
        regex = f"/{service or '[^/]+'}/{name or '[^/]+'}"
        problem = routechecks.regex_problem(regex)
        path = proxy.PathMatch(kind=proxy.PathMatchKind.REGEX, value=regex)
    else:
        return f"method match type {kind!r} is not supported"
    if problem is not None:
        return problem
    headers = _value_matches(raw.get("headers"), proxy.HeaderMatch, "header")
    if isinstance(headers, str):
        return headers
    return proxy.RouteMatch(path=path, headers=headers, method="POST")
