"""Typed errors for API requests, mapped from the HTTP status and the Status body the server sends.

`from_response(status, body)` picks the class; every class carries the HTTP `status`, the Status
`reason` (e.g. `AlreadyExists`, `Conflict`, `Expired`) and `message`. Catch the narrowest class:
`NotFoundError`, `ConflictError` (stale resourceVersion), `AlreadyExistsError` (create of an
existing name; also 409 but a different situation), `GoneError` (watch or continue token too
old: relist), `InvalidError` (422, with the field `causes`), `ForbiddenError`,
`UnauthorizedError`. `TransportError` covers connection failures and timeouts (status 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Cause:
    """One field-level reason of an Invalid (422) response."""

    field: str
    reason: str
    message: str


class ApiError(Exception):
    """An API request failed. `status` is the HTTP status (0 when no response arrived)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        body: dict[str, Any] | None = None,
        request: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body
        self.request = request
        prefix = f"{request}: " if request else ""
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{prefix}{status}{detail}: {message}")


class TransportError(ApiError):
    """No response: connection refused or reset, TLS failure, timeout."""


class BadRequestError(ApiError):
    """400."""


class UnauthorizedError(ApiError):
    """401: the credentials are missing, expired or rotated."""


class ForbiddenError(ApiError):
    """403: RBAC denies the request."""


class NotFoundError(ApiError):
    """404."""


class ConflictError(ApiError):
    """409 with a stale resourceVersion (or another write conflict): re-read and retry."""


class AlreadyExistsError(ApiError):
    """409 on create: an object of that name exists."""


class GoneError(ApiError):
    """410: the resourceVersion or continue token is too old; start from a fresh list."""


class InvalidError(ApiError):
    """422: the object fails validation; `causes` names the fields."""

    def __init__(self, message: str, *, causes: tuple[Cause, ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.causes = causes


class TooManyRequestsError(ApiError):
    """429: throttled; retry later."""


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}


def from_status_object(status: int, body: dict[str, Any] | None, *, request: str = "") -> ApiError:
    """The error for an HTTP status and its decoded Status body (or None)."""
    body = body if isinstance(body, dict) else None
    reason = str(body.get("reason") or "") if body else ""
    message = str(body.get("message") or "") if body else ""
    kwargs: dict[str, Any] = {"status": status, "reason": reason, "body": body, "request": request}
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(message, **kwargs)
    if status == 422:
        return InvalidError(message, causes=_causes(body), **kwargs)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, **kwargs)


def from_response(status: int, data: bytes, *, request: str = "") -> ApiError:
    """The error for an HTTP status and its raw body (a Status object, or anything else)."""
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = data.decode("utf-8", "replace").strip()[:500]
        return from_status_object(status, {"message": text}, request=request)
    return from_status_object(status, body, request=request)


def _causes(body: dict[str, Any] | None) -> tuple[Cause, ...]:
    details = body.get("details") if body else None
    raw = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(raw, list):
        return ()
    return tuple(
        Cause(str(c.get("field", "")), str(c.get("reason", "")), str(c.get("message", "")))
        for c in raw
        if isinstance(c, dict)
    )
