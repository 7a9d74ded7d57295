"""Which annotations of a tenant's object reach the management objects made for it. Pure.

Order: drop denied keys (shell globs; a malformed pattern matches literally); keep everything when
propagate-all is on, else keep keys matching an allow glob whose value list is empty or holds the
value; then add the kind's default annotations, then the `all` defaults, never overriding a key
already present. Nothing is propagated by default.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from kubelb.manager import effective

# Annotations of kubelb itself and kubectl bookkeeping never propagate.
NEVER = ("kubectl.kubernetes.io/last-applied-configuration",)


def propagate(
    source: Mapping[str, str], policy: effective.AnnotationPolicy, kind: str
) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in sorted(source.items()):
        if key in NEVER or any(_glob(pattern, key) for pattern in policy.denied):
            continue
        if policy.propagate_all or _allowed(key, value, policy.propagated):
            out[key] = value
    for group in (kind, "all"):
        for key, value in sorted(policy.defaults.get(group, {}).items()):
            out.setdefault(key, value)
    return out


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
