"""Shared API building blocks: the model base class, ObjectMeta, Condition and core shapes.

Input: raw Kubernetes JSON (dicts from YAML, JSON or the API server). Output: frozen pydantic
models whose attributes are snake_case and whose aliases are the camelCase wire names. Every
model keeps fields it does not know (`extra="allow"`), so parse -> dump loses nothing. Schema
hints that only the CRD generator reads (`format`, CEL rules, CRD defaults) ride on the models
as JSON-schema extras; see `kubelb.api.crd`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

import pydantic
from pydantic import JsonValue, alias_generators

# JSON-schema keys read by kubelb.api.crd. A default is copied into the CRD only when the field
# is marked with CRD_DEFAULT: Python defaults exist for convenience, upstream defaults are few.
CRD_DEFAULT = "x-kubelb-crd-default"
CEL_RULES = "x-kubernetes-validations"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# Pydantic gives every instance its own set of the fields that were set (for dumps with
# `exclude_unset`) and, with extra="allow", its own dict of unknown fields: about 300 bytes,
# 13 instances per LoadBalancer. Frozen instances never change them (a copy gets copies), so
# equal ones are shared: one set per combination of fields, one empty dict. Unknown field names
# are the tenant's to choose: past `_MAX_SHARED_FIELD_SETS` combinations, instances keep theirs.
_MAX_SHARED_FIELD_SETS = 4096
_shared_field_sets: dict[frozenset[str], set[str]] = {}
_NO_EXTRA: dict[str, Any] = {}


def _shared_fields_set(fields: set[str]) -> set[str]:
    key = frozenset(fields)
    shared = _shared_field_sets.get(key)
    if shared is not None:
        return shared
    if len(_shared_field_sets) >= _MAX_SHARED_FIELD_SETS:
        return fields
    return _shared_field_sets.setdefault(key, fields)


def share_bookkeeping(model: pydantic.BaseModel, *, also_set: Iterable[str] = ()) -> None:
    """Replace `model`'s fields-set record (with `also_set` added) and its empty extras with
    the shared equal ones. Only for a frozen model, right after validation."""
    fields = model.__pydantic_fields_set__
    if also_set:
        fields = fields.union(also_set)
    object.__setattr__(model, "__pydantic_fields_set__", _shared_fields_set(fields))
    if model.__pydantic_extra__ == {}:
        object.__setattr__(model, "__pydantic_extra__", _NO_EXTRA)


class KubeModel(pydantic.BaseModel):
    """Base of every API model: frozen, camelCase aliases, unknown fields preserved."""

    model_config = pydantic.ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=alias_generators.to_camel,
        use_attribute_docstrings=True,
        serialize_by_alias=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        # Not a model validator: one on this base class would add a validator layer to every
        # model's schema (about 0.5 MiB resident across the API); a post-init hook adds none.
        share_bookkeeping(self)


def crd_default(value: Any, **kwargs: Any) -> Any:
    """A field default that upstream's CRD also declares, so the API server applies it too."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[CRD_DEFAULT] = True
    return pydantic.Field(default=value, json_schema_extra=extra, **kwargs)


# --- CEL rules: one definition drives both the CRD (`x-kubernetes-validations`) and Python. ---


class CELRule:
    """A CEL validation rule on an object, with the Python predicate that mirrors it."""

    __slots__ = ("check", "message", "rule")

    def __init__(self, rule: str, message: str, check: Callable[[Any], bool]) -> None:
        self.rule = rule
        self.message = message
        self.check = check

    def schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def cel_schema(*rules: CELRule) -> dict[str, Any]:
    """`json_schema_extra` for a model or field carrying these rules."""
    return {CEL_RULES: [r.schema() for r in rules]}


def _add_cel_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[CELRule, ...] = getattr(cls, "cel_rules", ())
    if rules:
        schema.update(cel_schema(*rules))


class CELValidated(KubeModel):
    """A model with object-level CEL rules, checked in Python after field validation."""

    model_config = pydantic.ConfigDict(json_schema_extra=_add_cel_rules)
    cel_rules: ClassVar[tuple[CELRule, ...]] = ()

    @pydantic.model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        for rule in self.cel_rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self


# --- Integer formats: Kubernetes declares int32/int64 and the API server enforces the range. ---


def _int_range(low: int, high: int, name: str) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must fit in {name} ({low}..{high})")
        return value

    return check


Int32 = Annotated[
    int,
    pydantic.AfterValidator(_int_range(INT32_MIN, INT32_MAX, "int32")),
    pydantic.Field(json_schema_extra={"format": "int32"}),
]
Int64 = Annotated[
    int,
    pydantic.AfterValidator(_int_range(INT64_MIN, INT64_MAX, "int64")),
    pydantic.Field(json_schema_extra={"format": "int64"}),
]
IntOrString = Annotated[int | str, pydantic.Field(json_schema_extra={INT_OR_STRING: True})]
# An embedded object we do not model (core types, raw status JSON): kept verbatim.
Unstructured = Annotated[
    dict[str, Any], pydantic.Field(json_schema_extra={"type": "object", PRESERVE_UNKNOWN: True})
]
DateTime = Annotated[str, pydantic.Field(json_schema_extra={"format": "date-time"})]

_GO_DURATION = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def duration_seconds(value: str) -> float:
    """Parse a Go duration string (`1h30m`, `60s`, `500ms`) as metav1.Duration does."""
    rest = value
    sign = -1.0 if rest.startswith("-") else 1.0
    rest = rest.lstrip("+-")
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {value!r}")
    total = 0.0
    while rest:
        match = _GO_DURATION.match(rest)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: want e.g. 60s, 1m30s, 500ms")
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(3)]
        rest = rest[match.end() :]
    return sign * total


def _check_duration(value: str) -> str:
    duration_seconds(value)
    return value


Duration = Annotated[str, pydantic.AfterValidator(_check_duration)]


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """A Kubernetes timestamp (UTC, second precision); now when no moment is given."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Names: Kubernetes' DNS-1123 rules, checked here too since objects also come from files ---

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_PATTERN = rf"^{_LABEL}$"
DNS1123_SUBDOMAIN_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
_LABEL_RE = re.compile(DNS1123_LABEL_PATTERN)
_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_PATTERN)
_LABEL_RULE = (
    "must consist of lower case alphanumeric characters or '-', and must start and end with an "
    "alphanumeric character"
)
_SUBDOMAIN_RULE = (
    "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
    "an alphanumeric character"
)


def _matching(regex: re.Pattern[str], what: str, rule: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not regex.fullmatch(value):  # `$` in re.match would let a trailing newline by
            raise ValueError(f"{value!r}: a lowercase RFC 1123 {what} {rule}")
        return value

    return check


# Hostname fields where "" means unset, as upstream's CEL rules read them.
_SUBDOMAIN_OR_EMPTY = rf"^({_LABEL}(\.{_LABEL})*)?$"
_HOSTNAME_OR_EMPTY = rf"^((\*\.)?{_LABEL}(\.{_LABEL})*)?$"
_HOSTNAME = "subdomain (optionally prefixed by '*.')"

# Each checks the length first, so a 64 KiB name never reaches the pattern or a message.
DNS1123Label = Annotated[
    str,
    pydantic.Field(max_length=DNS1123_LABEL_MAX,
                   json_schema_extra={"pattern": DNS1123_LABEL_PATTERN}),
    pydantic.AfterValidator(_matching(_LABEL_RE, "label", _LABEL_RULE)),
]  # fmt: skip
DNS1123Subdomain = Annotated[
    str,
    pydantic.Field(max_length=DNS1123_SUBDOMAIN_MAX,
                   json_schema_extra={"pattern": DNS1123_SUBDOMAIN_PATTERN}),
    pydantic.AfterValidator(_matching(_SUBDOMAIN_RE, "subdomain", _SUBDOMAIN_RULE)),
]  # fmt: skip
Hostname = Annotated[
    str,
    pydantic.Field(max_length=DNS1123_SUBDOMAIN_MAX,
                   json_schema_extra={"pattern": _HOSTNAME_OR_EMPTY}),
    pydantic.AfterValidator(_matching(re.compile(_HOSTNAME_OR_EMPTY), _HOSTNAME,
                                      _SUBDOMAIN_RULE)),
]  # fmt: skip
EndpointHostname = Annotated[
    str,
    pydantic.Field(max_length=DNS1123_SUBDOMAIN_MAX,
                   json_schema_extra={"pattern": _SUBDOMAIN_OR_EMPTY}),
    pydantic.AfterValidator(_matching(re.compile(_SUBDOMAIN_OR_EMPTY), "subdomain",
                                      _SUBDOMAIN_RULE)),
]  # fmt: skip

MIN_PORT, MAX_PORT = 1, 65535
# A port a tenant asks for: the API server refuses anything outside 1-65535 (CRD bounds).
PortNumber = Annotated[Int32, pydantic.Field(ge=MIN_PORT, le=MAX_PORT)]


# --- ObjectMeta and references ---


class OwnerReference(KubeModel):
    """Points at the object that owns this one (garbage collection)."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """Kubernetes object metadata. Fields we do not model (managedFields ...) are kept."""

    name: DNS1123Subdomain | None = None
    """Kubernetes requires a DNS-1123 subdomain for the name of every kind KubeLB defines."""
    generate_name: str | None = pydantic.Field(default=None, max_length=DNS1123_SUBDOMAIN_MAX)
    namespace: DNS1123Label | None = None
    """Namespaces are DNS-1123 labels."""
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    finalizers: tuple[str, ...] = ()
    owner_references: tuple[OwnerReference, ...] = ()


class ObjectReference(KubeModel):
    """Core ObjectReference. KubeLB reads only `name` (same namespace) from it."""

    model_config = pydantic.ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    api_version: str | None = None
    """API version of the referent."""
    kind: str | None = None
    """Kind of the referent."""
    name: DNS1123Subdomain | None = None
    """Name of the referent."""
    namespace: str | None = None
    """Namespace of the referent."""
    uid: str | None = None
    """UID of the referent."""
    resource_version: str | None = None
    """Specific resourceVersion to which this reference is made, if any."""
    field_path: str | None = None
    """If referring to a piece of an object instead of an entire object, the field path."""


# --- Conditions (metav1.Condition) ---


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(KubeModel):
    """One aspect of an object's current state (the metav1.Condition shape)."""

    type: str = pydantic.Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Type of condition in CamelCase."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    observed_generation: Int64 | None = pydantic.Field(default=None, ge=0)
    """The metadata.generation the condition was set for."""
    last_transition_time: DateTime
    """Last time the condition changed status."""
    reason: str = pydantic.Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    """Programmatic identifier of the reason for the last transition, in CamelCase."""
    message: str = pydantic.Field(max_length=32768)
    """Human readable message about the transition."""


def conditions_field() -> Any:
    """A `conditions` list keyed by type, as Kubernetes lists conditions."""
    extra: dict[str, JsonValue] = {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }
    return pydantic.Field(default=(), json_schema_extra=extra)


def set_condition(
    conditions: Iterable[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None = None,
    now: str | None = None,
) -> tuple[Condition, ...]:
    """Return `conditions` with one condition upserted, sorted by type.

    lastTransitionTime changes only when the status does, so rewriting an unchanged condition
    produces an equal tuple and the writer can skip the status patch.
    """
    previous = {c.type: c for c in conditions}
    old = previous.get(type)
    when = old.last_transition_time if old is not None and old.status == status else None
    fields: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "last_transition_time": when or now or rfc3339(),
    }
    if observed_generation is not None:
        fields["observed_generation"] = observed_generation
    previous[type] = Condition(**fields)
    return tuple(previous[k] for k in sorted(previous))


def readable_conditions(raw: Iterable[Any]) -> list[Condition]:
    """The conditions of a raw status that parse; a hand-edited one we cannot read is dropped
    (and so replaced), never fatal."""
    parsed = []
    for item in raw:
        try:
            parsed.append(Condition.model_validate(item))
        except ValueError:
            continue
    return parsed


def phase_status(
    current: Mapping[str, Any],
    *,
    phase: str,
    condition: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str | None = None,
) -> dict[str, Any]:
    """A raw status with `phase`, `observedGeneration` and condition `condition` upserted (its
    lastTransitionTime moves only when its status flips), the rest of `current` kept."""
    updated = set_condition(
        readable_conditions(current.get("conditions") or ()),
        type=condition,
        status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )
    dumped = [c.model_dump(mode="json", exclude_none=True) for c in updated]
    status = {**current, "phase": phase, "conditions": dumped}
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def find_condition(conditions: Iterable[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)


# --- Core Service shapes embedded in KubeLB statuses ---


class PortStatus(KubeModel):
    """Status of one port of a load-balancer ingress point."""

    port: Int32
    """Port number of the service port."""
    protocol: str = crd_default("TCP")
    """Protocol of the service port: TCP, UDP or SCTP."""
    error: str | None = pydantic.Field(default=None, max_length=316)
    """Problem with the service port, in CamelCase."""


class LoadBalancerIngress(KubeModel):
    """One ingress point of a load balancer: an IP or a hostname."""

    ip: str | None = None
    """IP of an IP-based ingress point."""
    hostname: str | None = None
    """Hostname of a DNS-based ingress point."""
    ip_mode: str | None = None
    """How the load-balancer IP behaves: VIP or Proxy."""
    ports: tuple[PortStatus, ...] = pydantic.Field(
        default=(), json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Status of each service port."""


class CoreLoadBalancerStatus(KubeModel):
    """The core Service `status.loadBalancer` shape."""

    ingress: tuple[LoadBalancerIngress, ...] = pydantic.Field(
        default=(), json_schema_extra={"x-kubernetes-list-type": "atomic"}
    )
    """Ingress points of the load balancer."""


class ServicePort(KubeModel):
    """A core ServicePort."""

    name: str | None = None
    """Name of this port within the service (a DNS_LABEL)."""
    protocol: str = crd_default("TCP")
    """IP protocol for this port: TCP, UDP or SCTP."""
    app_protocol: str | None = None
    """Application protocol for this port."""
    port: Int32
    """The port exposed by the service."""
    target_port: IntOrString | None = None
    """Number or name of the port on the selected pods."""
    node_port: Int32 | None = None
    """The port on each node on which this service is exposed."""


# --- Top-level objects ---

GROUP = "kubelb.k8c.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class KubeObject(KubeModel):
    """A top-level KubeLB object. Subclasses declare `api_version`/`kind` Literals and `KIND`.

    apiVersion and kind always count as set, so a dump of a model built in code carries them.
    """

    KIND: ClassVar[str] = ""

    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)

    @pydantic.model_validator(mode="after")
    def _type_meta_is_set(self) -> Self:
        share_bookkeeping(self, also_set=("api_version", "kind"))  # the set may be shared
        return self

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""
