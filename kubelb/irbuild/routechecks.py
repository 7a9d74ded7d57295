"""Checks of the values a Route brings into the IR. Pure.

The tenant writes its Routes, and nothing proves its cluster's API server (with Gateway API's
validation) ever saw the embedded object. A value Envoy would reject (a hostname with a `*`
inside, a header name with a space, a regular expression RE2 cannot compile) would make the
whole snapshot of the tenant fail, so each is checked here and refused with a message, in the
shape Gateway API's CRDs allow.
"""

from __future__ import annotations

import re

_HOSTNAME = re.compile(
    r"^(?:\*\.)?[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_GRPC_SERVICE = re.compile(r"^\.?[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*$")
_GRPC_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")
_PATH = re.compile(r"^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$")
# What Python's `re` accepts and RE2 does not: lookaround, backreferences, atomic groups,
# possessive quantifiers, conditionals.
_NOT_RE2 = re.compile(r"\(\?[=!>(]|\(\?<[=!]|\\[1-9]|\\g<|\(\?P=|[*+?}]\+")
MAX_HOSTNAME = 253


def hostname_problem(hostname: str, *, wildcard: bool = True) -> str | None:
    """Why `hostname` (lower-case) cannot be served, or None."""
    if len(hostname) > MAX_HOSTNAME or not _HOSTNAME.fullmatch(hostname):
        return f"hostname {hostname!r} is not a valid DNS name"
    if hostname.startswith("*") and not wildcard:
        return f"hostname {hostname!r} may not be a wildcard"
    return None


def header_name_problem(name: str) -> str | None:
    if not _HEADER_NAME.fullmatch(name):
        return f"header name {name!r} is not a valid HTTP header name"
    return None


def header_value_problem(value: str) -> str | None:
    if any(c in value for c in "\r\n\0"):
        return f"header value {value!r} holds a line break or NUL"
    return None


def path_problem(path: str) -> str | None:
    """For an Exact or prefix path, and the path of a rewrite or redirect."""
    if not _PATH.fullmatch(path):
        return f"path {path!r} must start with `/` and hold only URL path characters"
    return None


def regex_problem(regex: str) -> str | None:
    """Whether both data planes (RE2 in Envoy, Python's `re`) take the expression alike."""
    if _NOT_RE2.search(regex) or "\0" in regex:
        return f"regular expression {regex!r} uses syntax RE2 does not have"
    try:
        re.compile(regex)
    except re.error as e:
        return f"regular expression {regex!r} is invalid: {e}"
    return None


def grpc_problem(service: str, method: str) -> str | None:
    """For an Exact GRPCRoute method match (either part may be empty)."""
    if service and not _GRPC_SERVICE.fullmatch(service):
        return f"gRPC service {service!r} is not a valid service name"
    if method and not _GRPC_METHOD.fullmatch(method):
        return f"gRPC method {method!r} is not a valid method name"
    return None
