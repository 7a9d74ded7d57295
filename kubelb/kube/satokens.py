"""What a ServiceAccount token says about itself: its subject and, for a bound (TokenRequest)
token, when it was issued and when it expires.

Pure. Input: a bearer token. Output: `TokenClaims`, read from the JWT payload without checking
the signature (the API server does that; a client only needs to know when to replace it), or
None when the token is not a JWT naming a ServiceAccount. A legacy token (from a
`kubernetes.io/service-account-token` Secret) has no `iat`/`exp`: its claims have no expiry.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

SUBJECT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str  # system:serviceaccount:<namespace>:<name>
    service_account_uid: str
    issued_at: float | None  # seconds since the epoch; None for a legacy token
    expires_at: float | None

    @property
    def namespace(self) -> str:
        return self.subject.removeprefix(SUBJECT_PREFIX).partition(":")[0]

    @property
    def name(self) -> str:
        return self.subject.removeprefix(SUBJECT_PREFIX).partition(":")[2]

    @property
    def lifetime(self) -> float | None:
        if self.issued_at is None or self.expires_at is None:
            return None
        return self.expires_at - self.issued_at

    def renew_at(self, remaining_fraction: float) -> float | None:
        """When `remaining_fraction` of the lifetime is left (None: the token never expires)."""
        lifetime = self.lifetime
        if lifetime is None or self.expires_at is None:
            return None
        return self.expires_at - remaining_fraction * lifetime


def claims(token: str) -> TokenClaims | None:
    """The claims of a ServiceAccount JWT, or None when `token` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(payload, dict):
        return None
    subject = payload.get("sub")
    if not isinstance(subject, str) or not subject.startswith(SUBJECT_PREFIX):
        return None
    issued, expires = payload.get("iat"), payload.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        issued = expires = None  # a legacy token: no expiry
    private = payload.get("kubernetes.io")
    account = (private.get("serviceaccount") if isinstance(private, dict) else None) or {}
    uid = account.get("uid") if isinstance(account, dict) else None
    if uid is None:  # a legacy token names its account in flat claims
        uid = payload.get("kubernetes.io/serviceaccount/service-account.uid")
    return TokenClaims(
        subject=subject,
        service_account_uid=str(uid or ""),
        issued_at=None if issued is None else float(issued),
        expires_at=None if expires is None else float(expires),
    )
