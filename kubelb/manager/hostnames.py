"""LoadBalancer hostnames: which hostname a LoadBalancer gets, and what serves it.

Pure, but for `HostnameStep`, which the LoadBalancer controller runs. Inputs: the LoadBalancer
(`spec.hostname`, the annotation `kubelb.k8c.io/request-wildcard-domain: "true"`, the hostname
recorded in `status.hostname`), the Config and the Tenant (`dns`, `certificates`; Tenant over
Config field by field). Outputs: a `Decision` (the hostname, or the reason and message of the
`Hostname` condition that says why there is none), the cert-manager Certificate to write, and
the Route through which the tenant's Envoy serves the hostname.

Rules: an explicit `spec.hostname` needs `dns.allowExplicitHostnames`; a generated one is 16
random hex characters under `dns.wildcardDomain` (leading `*.`/`**.` stripped), written to
`status.hostname` before anything serves it and reused from there for as long as the
annotation asks and it is still under the wildcard domain, so a manager restart never renames
it. Either must fall under `dns.allowedDomains` (a kubelb addition after upstream EE's
`allowedDomains`: `*` is one label, `**` any number of labels; unset means any).

Serving: upstream creates an Ingress `<lb>-ingress` (or an HTTPRoute `<lb>-httproute`) for a
third-party controller in the management cluster. kubelb's Layer 7 is the tenant's own Envoy, so
the same Ingress is embedded in a Route that exists only in memory (`hostname_route`) and is
built with the tenant's other Routes: a virtual host for the hostname on the tenant's L7 entry
(Service `envoy-<tenant-ns>-l7`, port 80), forwarding to the LoadBalancer's endpoints on its
first port. No Ingress or HTTPRoute object is written: nothing in the management cluster would
serve it, and a second copy of what the Route path already serves would only drift. With `dns`
(`useDNSAnnotations`) the entry Service carries external-dns's annotations for every hostname
it serves (`dns_annotations`), since its address is where the hostname answers. With
certificates (`useCertificateAnnotations` and a `defaultClusterIssuer`) the manager writes the
Certificate cert-manager acts on, `<lb>-ingress-tls` (the name cert-manager's ingress-shim gives
the Certificate of upstream's Ingress), whose Secret of the same name is the Ingress' TLS
secret; it is owned by the LoadBalancer and deleted with its hostname. cert-manager labels that
Secret `kubelb.k8c.io/origin-name: <lb>-ingress-tls` (the Certificate's `secretTemplate`), which
is how the Routes' TLS finds it: the hostname is then served over HTTPS on the L7 entry's port
443 too, its certificate by SDS, and a renewal reaches Envoy without a restart. The finalizer
`kubelb.k8c.io/cleanup-hostname` stays on the LoadBalancer while a Certificate may exist.
Upstream's live probes of DNS and HTTPS (`tlsEnabled`, `dnsRecordCreated`) are not made.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import (
    annotations as api_annotations,
    conditions,
    config as api_config,
    finalizers,
    labels,
    loadbalancer as api_lb,
    meta,
    ports as api_ports,
    route as api_route,
    tenant as api_tenant,
)
from kubelb.kube import errors, objects, resources, writer as kwriter
from kubelb.manager import lbservice
from kubelb.util import logsafe, naming

logger = logging.getLogger(__name__)

ANY_DOMAIN = "**"
DNS_TTL = "10"
INGRESS_SUFFIX = "-ingress"
TLS_SUFFIX = "-ingress-tls"
HTTP_PORT_NAME = "http"
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_GENERATED = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class Settings:
    """A tenant's hostname settings, Tenant over Config."""

    wildcard_domain: str | None = None
    allow_explicit: bool = False
    dns: bool = False
    certificates: bool = False
    cluster_issuer: str | None = None
    allowed_domains: tuple[str, ...] = (ANY_DOMAIN,)


def settings(config: api_config.Config | None, tenant: api_tenant.Tenant | None) -> Settings:
    cfg = (config.spec if config is not None else api_config.ConfigSpec()).dns
    issuer = config.spec.certificates.default_cluster_issuer if config is not None else None
    ten = tenant.spec.dns if tenant is not None else api_tenant.TenantDNSSettings()
    if tenant is not None and tenant.spec.certificates.default_cluster_issuer:
        issuer = tenant.spec.certificates.default_cluster_issuer

    def pick(own: Any, inherited: Any) -> Any:
        return own if own is not None else inherited

    allowed = pick(ten.allowed_domains, cfg.allowed_domains)
    return Settings(
        wildcard_domain=ten.wildcard_domain or cfg.wildcard_domain,
        allow_explicit=bool(pick(ten.allow_explicit_hostnames, cfg.allow_explicit_hostnames)),
        dns=bool(pick(ten.use_dns_annotations, cfg.use_dns_annotations)),
        certificates=bool(pick(ten.use_certificate_annotations, cfg.use_certificate_annotations)),
        cluster_issuer=issuer or None,
        allowed_domains=tuple(allowed) if allowed is not None else (ANY_DOMAIN,),
    )


# --- names and patterns ---
def valid_hostname(name: str) -> bool:
    """A lower-case DNS name of at least two labels (no wildcard): what a certificate and a
    DNS record can be made for."""
    labels_ = name.split(".")
    return (
        len(name) <= 253
        and len(labels_) >= 2
        and all(len(label) <= 63 and _LABEL.fullmatch(label) for label in labels_)
    )


def domain_matches(pattern: str, hostname: str) -> bool:
    """Whether `hostname` falls under `pattern`: labels compare case-insensitively, `*` matches
    exactly one label and `**` one or more; `**` alone matches every hostname."""
    want = pattern.strip().lower().rstrip(".").split(".")
    have = hostname.lower().rstrip(".").split(".")

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "**":
            return any(match(i + 1, k) for k in range(j + 1, len(have) + 1))
        if j == len(have):
            return False
        return (want[i] == "*" or want[i] == have[j]) and match(i + 1, j + 1)

    return bool(pattern.strip()) and match(0, 0)


def allowed(hostname: str, patterns: Sequence[str]) -> bool:
    return any(domain_matches(p, hostname) for p in patterns)


def wildcard_base(domain: str) -> str:
    """The wildcard domain without its leading `**.`, `*.` or `*`."""
    base = domain.strip().lower().rstrip(".")
    for prefix in ("**.", "*.", "*"):
        if base.startswith(prefix):
            return base[len(prefix) :]
    return base


def random_label() -> str:
    return secrets.token_hex(8)


def generated_under(hostname: str, base: str) -> bool:
    """Whether `hostname` is one this module generates under `base`."""
    head, _, rest = hostname.partition(".")
    return rest == base and bool(_GENERATED.fullmatch(head))


# --- the decision ---
@dataclass(frozen=True, slots=True)
class Decision:
    """A hostname to publish and serve (None: none), and the `Hostname` condition's reason and
    message. `requested` is False when the LoadBalancer asks for no hostname at all."""

    hostname: str | None
    reason: str = ""
    message: str = ""
    requested: bool = True


NONE = Decision(None, requested=False)


def decide(
    lb: api_lb.LoadBalancer, policy: Settings, label: Callable[[], str] = random_label
) -> Decision:
    """The LoadBalancer's hostname under `policy`; `label` makes a generated one's first label."""
    explicit = lb.spec.hostname or None
    wildcard = (lb.metadata.annotations or {}).get(
        api_annotations.REQUEST_WILDCARD_DOMAIN
    ) == "true"
    if explicit is not None and (policy.allow_explicit or not wildcard):
        if not policy.allow_explicit:
            return Decision(None, conditions.HOSTNAME_NOT_ALLOWED,
                            f"spec.hostname {explicit}: explicit hostnames are not allowed "
                            "(dns.allowExplicitHostnames is not true in the Tenant or the "
                            "Config)")  # fmt: skip
        return _checked(explicit.lower().rstrip("."), policy, "spec.hostname")
    if not wildcard:
        return NONE
    base = wildcard_base(policy.wildcard_domain or "")
    if not base:
        return Decision(None, conditions.NO_WILDCARD_DOMAIN,
                        f"{api_annotations.REQUEST_WILDCARD_DOMAIN} is set, but neither the Tenant "
                        "nor the Config sets dns.wildcardDomain")  # fmt: skip
    recorded = lb.status.hostname.hostname if lb.status.hostname is not None else None
    if recorded and generated_under(recorded, base):
        return _checked(recorded, policy, "generated hostname")
    return _checked(f"{label()}.{base}", policy, "generated hostname")


def _checked(hostname: str, policy: Settings, what: str) -> Decision:
    if not valid_hostname(hostname):
        return Decision(None, conditions.HOSTNAME_NOT_ALLOWED,
                        f"{what} {hostname}: not a valid DNS name (lower-case labels of at "
                        "most 63 characters, at least two labels, no wildcard)")  # fmt: skip
    if not allowed(hostname, policy.allowed_domains):
        domains = ", ".join(policy.allowed_domains) or "(none)"
        return Decision(None, conditions.HOSTNAME_NOT_ALLOWED,
                        f"{what} {hostname} is outside the allowed domains {domains} "
                        "(dns.allowedDomains of the Tenant, else the Config)")  # fmt: skip
    return Decision(hostname, conditions.HOSTNAME_ASSIGNED, f"{hostname} is served")


# --- what serves it ---
def ingress_name(lb_name: str) -> str:
    return naming.truncate(f"{lb_name}{INGRESS_SUFFIX}")


def tls_secret_name(lb_name: str) -> str:
    return naming.truncate(f"{lb_name}{TLS_SUFFIX}")


def dns_annotations(hostnames: Sequence[str]) -> dict[str, str]:
    """external-dns's annotations for the Service whose address serves `hostnames`."""
    if not hostnames:
        return {}
    return {api_annotations.EXTERNAL_DNS_HOSTNAME: ",".join(sorted(set(hostnames))),
            api_annotations.EXTERNAL_DNS_TTL: DNS_TTL}  # fmt: skip


def desired_certificate(lb: objects.RawObject, hostname: str, issuer: str) -> dict[str, Any]:
    """The cert-manager Certificate for `hostname`, owned by the LoadBalancer `lb`."""
    name, namespace = objects.name(lb), objects.namespace(lb)
    secret = tls_secret_name(name)
    return {
        "apiVersion": resources.CERTIFICATES.api_version,
        "kind": resources.CERTIFICATES.kind,
        "metadata": {
            "name": secret,
            "namespace": namespace,
            "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.LB_NAME: name,
                       labels.LB_NAMESPACE: namespace},
            "ownerReferences": [objects.owner_reference(lb)],
        },
        "spec": {
            "secretName": secret,
            # The origin label is what the Routes' TLS reads Secrets by (`irbuild.routetls`:
            # without an origin namespace, a reference by this name from the tenant finds it).
            "secretTemplate": {"labels": {labels.ORIGIN_NAME: secret,
                                          labels.MANAGED_BY: labels.MANAGED_BY_VALUE}},
            "dnsNames": [hostname],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    }  # fmt: skip


def hostname_route(lb: api_lb.LoadBalancer, policy: Settings) -> api_route.Route | None:
    """The in-memory Route holding upstream's `<lb>-ingress` for the hostname recorded in the
    LoadBalancer's status: `/` to its first port's endpoints (None: nothing to serve)."""
    hostname = lb.status.hostname.hostname if lb.status.hostname is not None else None
    if not hostname or not lb.spec.ports:
        return None
    first = lb.spec.ports[0]
    upstream = api_ports.upstream_port(first, 0, lb.spec.endpoints)
    if upstream is None:
        return None
    namespace, service = lb.namespace, lbservice.service_name(lb.name)
    ingress_meta: dict[str, Any] = {
        "name": ingress_name(lb.name),
        "namespace": namespace,
        "labels": {labels.LB_NAME: lb.name, labels.LB_NAMESPACE: namespace},
    }
    notes = dns_annotations([hostname]) if policy.dns else {}
    if policy.certificates and policy.cluster_issuer:
        notes[api_annotations.CERT_MANAGER_CLUSTER_ISSUER] = policy.cluster_issuer
    if notes:
        ingress_meta["annotations"] = notes
    backend = {"service": {"name": service, "port": {"number": first.port}}}
    spec: dict[str, Any] = {"rules": [{"host": hostname, "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}  # fmt: skip
    if policy.certificates and policy.cluster_issuer:
        spec["tls"] = [{"hosts": [hostname], "secretName": tls_secret_name(lb.name)}]
    return api_route.Route.model_validate({
        "metadata": {"name": ingress_name(lb.name), "namespace": namespace,
                     "creationTimestamp": lb.metadata.creation_timestamp,
                     "labels": {labels.LB_NAME: lb.name, labels.LB_NAMESPACE: namespace}},
        "spec": {
            "endpoints": [e.model_dump(by_alias=True, exclude_defaults=True, mode="json")
                          for e in lb.spec.endpoints],
            "source": {"kubernetes": {
                "resource": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                             "metadata": ingress_meta, "spec": spec},
                "services": [{"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": service, "namespace": namespace},
                              "spec": {"ports": [{"name": HTTP_PORT_NAME, "port": first.port,
                                                  "protocol": "TCP",
                                                  "nodePort": upstream}]}}],
            }},
        },
    })  # fmt: skip


class HostnameRoutes:
    """Each tenant's hostname Routes, from its live LoadBalancers' statuses; a Route is made
    again only when its LoadBalancer's parsed model or the settings change."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], tuple[api_lb.LoadBalancer, Settings, Any]] = {}

    def of(self, lbs: Sequence[api_lb.LoadBalancer], policy: Settings) -> list[api_route.Route]:
        out = []
        for lb in lbs:
            if lb.status.hostname is None or not lb.status.hostname.hostname:
                self._made.pop((lb.namespace, lb.name), None)
                continue
            known = self._made.get((lb.namespace, lb.name))
            if known is not None and known[0] is lb and known[1] == policy:
                route = known[2]
            else:
                route = hostname_route(lb, policy)
                self._made[(lb.namespace, lb.name)] = (lb, policy, route)
            if route is not None:
                out.append(route)
        return out


def is_hostname_route(route: api_route.Route) -> bool:
    """Whether `route` is one `hostname_route` made (never an API object: those have a uid)."""
    return route.metadata.uid is None and labels.LB_NAME in (route.metadata.labels or {})


def served_hostnames(routes: Sequence[api_route.Route]) -> list[str]:
    """The hostnames whose Routes ask for external-dns records (useDNSAnnotations)."""
    out = []
    for route in routes:
        source = route.spec.source.kubernetes
        if source is None or not is_hostname_route(route):
            continue
        notes = (source.resource.get("metadata") or {}).get("annotations") or {}
        if api_annotations.EXTERNAL_DNS_HOSTNAME in notes:
            out.append(str(notes[api_annotations.EXTERNAL_DNS_HOSTNAME]))
    return out


# --- the LoadBalancer controller's step ---
class HostnameStep:
    """Adds the finalizer, keeps the Certificate, and removes both when the hostname goes. The
    Certificate is read from the API server when certificates are on (no informer: a cluster
    without cert-manager serves no Certificates to watch)."""

    def __init__(self, writer: kwriter.Writer) -> None:
        self.writer = writer

    async def apply(
        self, raw: objects.RawObject, lb: api_lb.LoadBalancer, policy: Settings
    ) -> tuple[objects.RawObject, Decision]:
        """The LoadBalancer after the finalizer write, and the decision its status records."""
        decision = decide(lb, policy)
        recorded = lb.status.hostname.hostname if lb.status.hostname is not None else None
        if decision.hostname != recorded:
            # Recorded before anything uses it: a generated name is chosen once.
            written = await self.writer.update_status(
                resources.LOAD_BALANCERS, objects.key_of(raw),
                lambda status: with_hostname(status, decision), current=raw)  # fmt: skip
            raw = written.obj or raw
        if decision.hostname is None:
            return await self.clean_up(raw), decision
        raw = (await self.writer.add_finalizer(resources.LOAD_BALANCERS, raw,
                                               finalizers.CLEANUP_HOSTNAME)).obj or raw  # fmt: skip
        if not (policy.certificates and policy.cluster_issuer):
            await self._delete_certificate(raw)
            if policy.certificates:
                return raw, Decision(decision.hostname, decision.reason,
                                     f"{decision.message} over HTTP; no Certificate: neither the "
                                     "Tenant nor the Config sets "
                                     "certificates.defaultClusterIssuer")  # fmt: skip
            return raw, decision
        desired = desired_certificate(raw, decision.hostname, policy.cluster_issuer)
        name = desired["metadata"]["name"]
        try:
            written = await self.writer.ensure(resources.CERTIFICATES, desired)
        except errors.ApiError as exc:
            logger.warning("LoadBalancer %s: Certificate %s not written: %s",
                           objects.key_of(raw), name, exc)  # fmt: skip
            return raw, Decision(decision.hostname, conditions.CERTIFICATE_FAILED,
                                 f"{decision.message} over HTTP, but Certificate {name} could "
                                 f"not be written (is cert-manager installed?): {exc}")  # fmt: skip
        if written.changed:
            logger.info("LoadBalancer %s: Certificate %s written for %s", objects.key_of(raw),
                        logsafe.shown(name), decision.hostname)  # fmt: skip
        return raw, Decision(decision.hostname, decision.reason,
                             f"{decision.message}; cert-manager issues its certificate into "
                             f"Secret {name} (ClusterIssuer {policy.cluster_issuer})")  # fmt: skip

    async def clean_up(self, raw: objects.RawObject) -> objects.RawObject:
        """No hostname (or the LoadBalancer is going): delete the Certificate, drop the
        finalizer."""
        if finalizers.CLEANUP_HOSTNAME not in objects.finalizers(raw):
            return raw
        await self._delete_certificate(raw)
        removed = await self.writer.remove_finalizer(resources.LOAD_BALANCERS, raw,
                                                     finalizers.CLEANUP_HOSTNAME)  # fmt: skip
        return removed.obj or raw

    async def _delete_certificate(self, raw: objects.RawObject) -> None:
        if finalizers.CLEANUP_HOSTNAME not in objects.finalizers(raw):
            return  # none was ever written
        key = objects.ObjectKey(objects.namespace(raw), tls_secret_name(objects.name(raw)))
        try:
            deleted = await self.writer.delete(resources.CERTIFICATES, key)
        except errors.NotFoundError:
            deleted = False  # the API server serves no Certificates: none exists
        if deleted:
            logger.info("LoadBalancer %s: Certificate %s deleted", objects.key_of(raw),
                        logsafe.shown(key.name))  # fmt: skip


def with_hostname(status: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """`status` with `hostname` recording `decision` (removed when there is no hostname)."""
    if decision.hostname:
        status["hostname"] = {**(status.get("hostname") or {}), "hostname": decision.hostname}
    else:
        status.pop("hostname", None)
    return status


def with_condition(current: Any, decision: Decision, generation: int | None) -> list[Any]:
    """`status.conditions` with the `Hostname` condition for `decision` (removed when no
    hostname is asked for)."""
    parsed = []
    for item in current or ():
        try:
            parsed.append(meta.Condition.model_validate(item))
        except ValueError:
            continue
    if not decision.requested:
        kept = [c for c in parsed if c.type != conditions.HOSTNAME]
    else:
        status = meta.ConditionStatus.TRUE if decision.hostname else meta.ConditionStatus.FALSE
        kept = list(meta.set_condition(parsed, type=conditions.HOSTNAME, status=status,
                                       reason=decision.reason, message=decision.message[:32768],
                                       observed_generation=generation))  # fmt: skip
    return [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in kept]
