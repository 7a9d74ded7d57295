"""Which annotations of a tenant's object reach the management objects made for it. Pure.

Order: drop denied keys (shell globs; a malformed pattern matches literally); keep everything when
propagate-all is on, else keep keys matching an allow glob whose value list is empty or holds the
value; then add the kind's default annotations, then the `all` defaults, never overriding a key
already present. Nothing is propagated by default.

One management object several tenant objects share (the tenant's L7 entry Service, for all its
Routes): `merge` takes their claims in order of precedence; the first to claim a key keeps it,
and a later claim of another value for it is refused (and told), never applied.

Removal: a management object carries the record `RECORD`, the keys of the annotations kubelb
set on it (`with_record`). A key kubelb no longer sets changes the record, so the live object no
longer covers the desired one and the writer applies it; server-side apply then drops the keys
kubelb's field manager alone held and leaves everyone else's. Unchanged keys and record: no
write. An object without a record (written by a version without it) gets one only with the next
key kubelb sets, so nothing is written just to remove keys nobody recorded.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.manager import effective

# On a management object: the keys of the annotations kubelb set there, sorted, comma-separated.
RECORD = "kubelb.k8c.io/propagated-annotations"
# Annotations of kubelb itself and kubectl bookkeeping never propagate.
NEVER = ("kubectl.kubernetes.io/last-applied-configuration", RECORD)


def propagate(
    source: Mapping[str, str], policy: effective.AnnotationPolicy, kind: str
) -> dict[str, str]:
    out = permitted(source, policy)
    for key, value in defaults(policy, kind).items():
        out.setdefault(key, value)
    return out


def permitted(source: Mapping[str, str], policy: effective.AnnotationPolicy) -> dict[str, str]:
    """The annotations of `source` the policy lets through (no defaults added)."""
    out: dict[str, str] = {}
    for key, value in sorted(source.items()):
        if key in NEVER or any(_glob(pattern, key) for pattern in policy.denied):
            continue
        if policy.propagate_all or _allowed(key, value, policy.propagated):
            out[key] = value
    return out


def defaults(policy: effective.AnnotationPolicy, *kinds: str) -> dict[str, str]:
    """The default annotations for an object of `kinds` (several: one object standing for
    objects of each): each kind's in turn, then `all`'s, the first to set a key keeping it."""
    out: dict[str, str] = {}
    for group in (*kinds, "all"):
        for key, value in sorted(policy.defaults.get(group, {}).items()):
            out.setdefault(key, value)
    return out


@dataclass(frozen=True, slots=True)
class Claim:
    """The annotations one tenant object asks of a shared management object."""

    name: str  # the claimant's key in `Merged.refused`
    holder: str  # how another claimant is told about it ("Route x (HTTPRoute default/shop)")
    annotations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Refusal:
    key: str
    value: str  # the value the claimant asked for
    holder: str  # who keeps the key
    held: str  # the value kept


@dataclass(frozen=True, slots=True)
class Merged:
    annotations: dict[str, str]
    refused: dict[str, tuple[Refusal, ...]]  # by claimant name; only those refused something


def merge(
    claims: Sequence[Claim], fixed: Mapping[str, str] | None = None, fixed_holder: str = "KubeLB"
) -> Merged:
    """The annotations of one shared object from `claims`, in order of precedence (the first to
    claim a key keeps it; the same value claimed again is no conflict). `fixed`: what the
    object carries whatever the claims say (kubelb's own annotations), held by `fixed_holder`."""
    out = dict(fixed or {})
    holders = dict.fromkeys(out, fixed_holder)
    refused: dict[str, list[Refusal]] = {}
    for claim in claims:
        for key, value in sorted(claim.annotations.items()):
            if key not in out:
                out[key], holders[key] = value, claim.holder
            elif out[key] != value:
                refusal = Refusal(key, value, holders[key], out[key])
                refused.setdefault(claim.name, []).append(refusal)
    return Merged(out, {name: tuple(found) for name, found in refused.items()})


def with_record(annotations: Mapping[str, str], recorded: str | None) -> dict[str, str]:
    """The annotations to apply to a management object: `annotations` (all kubelb sets there)
    and the record of their keys. `recorded`: the live object's record (None or empty: none, or
    nothing recorded). No record when there is nothing to set or to remove."""
    out = {key: value for key, value in annotations.items() if key != RECORD}
    if out or recorded:
        out[RECORD] = ",".join(sorted(out))
    return out


def recorded(live: Mapping[str, Any] | None) -> str | None:
    """The record on the live management object `live` (None: no object, or no record)."""
    if live is None:
        return None
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(RECORD)
    return str(value) if value is not None else None


def _allowed(key: str, value: str, allow: Mapping[str, str]) -> bool:
    for pattern, values in allow.items():
        if not _glob(pattern, key):
            continue
        wanted = [v.strip() for v in values.split(",") if v.strip()]
        if not wanted or value in wanted:
            return True
    return False


def _glob(pattern: str, key: str) -> bool:
    if pattern == key:
        return True
    # An unbalanced '[' makes a pattern malformed: it then only matches itself, literally.
    if pattern.count("[") != pattern.count("]"):
        return False
    return fnmatch.fnmatchcase(key, pattern)
