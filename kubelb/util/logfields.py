"""The tenant and object a log record is about, for JSON logs' `tenant` and `object` keys.

A record gets them from `extra={"tenant": ..., "object": ...}`, else from the `scope` it is
logged in: a controller wraps each reconcile in `scope(object=key, tenant=...)`, so every line a
reconcile logs names its object without each call passing it. Context variables are per asyncio
task, so concurrent reconciles do not see each other's scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

TENANT: ContextVar[str | None] = ContextVar("kubelb_log_tenant", default=None)
OBJECT: ContextVar[str | None] = ContextVar("kubelb_log_object", default=None)


@contextlib.contextmanager
def scope(*, object: str | None = None, tenant: str | None = None) -> Iterator[None]:
    """Records logged inside carry `object` and `tenant` (when given)."""
    tokens = [(var, var.set(value)) for var, value in ((OBJECT, object), (TENANT, tenant)) if value]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str]:
    """The fields of the innermost scope."""
    fields = {"tenant": TENANT.get(), "object": OBJECT.get()}
    return {k: v for k, v in fields.items() if v}
