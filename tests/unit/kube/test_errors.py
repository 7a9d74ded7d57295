from __future__ import annotations

import json

import pytest

from kubelb.kube import errors


def _status(code: int, reason: str, message: str, **details) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (400, "BadRequest", errors.BadRequestError),
        (401, "Unauthorized", errors.UnauthorizedError),
        (403, "Forbidden", errors.ForbiddenError),
        (404, "NotFound", errors.NotFoundError),
        (409, "Conflict", errors.ConflictError),
        (409, "AlreadyExists", errors.AlreadyExistsError),
        (410, "Expired", errors.GoneError),
        (422, "Invalid", errors.InvalidError),
        (429, "TooManyRequests", errors.TooManyRequestsError),
        (500, "InternalError", errors.ServerError),
        (503, "ServiceUnavailable", errors.ServerError),
        (418, "Teapot", errors.ApiError),
    ],
)
def test_status_maps_to_class(code, reason, cls):
    exc = errors.from_response(code, _status(code, reason, "it failed"), request="GET /x")
    assert type(exc) is cls
    assert isinstance(exc, errors.ApiError)
    assert (exc.status, exc.reason, exc.message) == (code, reason, "it failed")
    assert "GET /x" in str(exc)
    assert "it failed" in str(exc)


def test_already_exists_is_not_a_conflict():
    # A status writer retries conflicts; retrying a create of an existing name would loop.
    exc = errors.from_response(409, _status(409, "AlreadyExists", "exists"))
    assert not isinstance(exc, errors.ConflictError)


def test_invalid_carries_causes():
    data = _status(
        422,
        "Invalid",
        "bad",
        causes=[
            {"reason": "FieldValueInvalid", "message": "must be positive", "field": "spec.port"},
            {"reason": "FieldValueRequired", "message": "required", "field": "spec.name"},
        ],
    )
    exc = errors.from_response(422, data)
    assert isinstance(exc, errors.InvalidError)
    assert exc.causes == (
        errors.Cause("spec.port", "FieldValueInvalid", "must be positive"),
        errors.Cause("spec.name", "FieldValueRequired", "required"),
    )


def test_non_json_body_becomes_the_message():
    exc = errors.from_response(502, b"<html>bad gateway</html>")
    assert isinstance(exc, errors.ServerError)
    assert exc.message == "<html>bad gateway</html>"
