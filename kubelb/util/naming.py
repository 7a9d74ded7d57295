"""Kubernetes-safe names: DNS-1035 labels of at most 63 characters.

Long names are truncated with a hash suffix so that two long names sharing a prefix stay distinct
(KubeLB #147, #159). The same input always gives the same output.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse

MAX_NAME_LENGTH = 63
_INVALID = re.compile(r"[^a-z0-9-]+")


def truncate(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`name` when it fits, else a prefix plus `-` and 8 hex chars of its SHA-256."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: limit - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}"


def dns1035(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """Lower-case, replace invalid characters with `-`, start with a letter, then truncate."""
    cleaned = _INVALID.sub("-", name.lower()).strip("-")
    if not cleaned:
        cleaned = "k"
    elif not cleaned[0].isalpha():
        cleaned = f"k-{cleaned}"
    return truncate(cleaned, limit)


def join(*parts: str) -> str:
    """`parts` as one name, `/`-separated, each part `escape`d. Injective: `join("a-b", "c")`
    and `join("a", "b-c")` differ, where a `-` join gave both `a-b-c`. For data-plane resource
    names, which Envoy and the Python data plane take as opaque strings of any length."""
    return "/".join(escape(p) for p in parts)


def escape(part: str) -> str:
    """`part` percent-escaped (`/` as `%2F`, `%` as `%25`; DNS names stay as they are): it never
    holds `/`, nor `#`, which callers may use as a marker of their own."""
    return urllib.parse.quote(part, safe="")
