"""Kubernetes-safe names: DNS-1035 labels of at most 63 characters.

Long names are truncated with a hash suffix so that two long names sharing a prefix stay distinct
(KubeLB #147, #159). The same input always gives the same output.
"""

from __future__ import annotations

import hashlib
import re

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
