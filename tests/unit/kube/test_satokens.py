"""Reading a ServiceAccount token's claims (bound and legacy), its renewal point, and swapping
the token inside a kubeconfig's text."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from kubelb.kube import kubeconfig, satokens

SUBJECT = "system:serviceaccount:tenant-a:kubelb-ccm"


def jwt(payload: Any) -> str:
    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256'})}.{part(payload)}.c2ln"


def test_bound_token_claims_and_renewal_point():
    account = {"name": "kubelb-ccm", "uid": "u1"}
    token = jwt(
        {"iat": 1000, "exp": 1600, "sub": SUBJECT, "kubernetes.io": {"serviceaccount": account}}
    )
    read = satokens.claims(token)
    assert read is not None
    assert (read.namespace, read.name, read.service_account_uid) == ("tenant-a", "kubelb-ccm", "u1")
    assert (read.issued_at, read.expires_at, read.lifetime) == (1000, 1600, 600)
    assert read.renew_at(0.2) == 1480  # when a fifth of the lifetime is left
    assert read.renew_at(0.995) == pytest.approx(1003)


def test_legacy_token_never_expires():
    token = jwt({"iss": "kubernetes/serviceaccount", "sub": SUBJECT,
                 "kubernetes.io/serviceaccount/service-account.uid": "u2"})  # fmt: skip
    read = satokens.claims(token)
    assert read is not None
    assert read.service_account_uid == "u2"
    assert (read.expires_at, read.lifetime, read.renew_at(0.2)) == (None, None, None)


@pytest.mark.parametrize(
    "token",
    ["", "opaque", "a.b", "a.!!!.c", jwt(["not", "a", "mapping"]),
     jwt({"iat": 1, "exp": 2, "sub": "system:admin"}), jwt({"iat": 1, "exp": 2})],
)  # fmt: skip
def test_not_a_service_account_token(token):
    assert satokens.claims(token) is None


def config(user: dict[str, Any]) -> str:
    return yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1"}}],
        "users": [{"name": "u", "user": user}, {"name": "other", "user": {"token": "keep"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}},
                     {"name": "y", "context": {"cluster": "c", "user": "other"}}],
        "current-context": "x",
    })  # fmt: skip


def test_token_of_the_current_context_is_read_and_replaced():
    text = config({"token": "old"})
    assert kubeconfig.user_token(text) == "old"
    assert kubeconfig.user_token(text, "y") == "keep"
    updated = kubeconfig.with_token(text, "new")
    assert updated is not None
    assert kubeconfig.user_token(updated) == "new"
    assert kubeconfig.user_token(updated, "y") == "keep"
    assert yaml.safe_load(updated.replace("new", "old")) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text", [config({"tokenFile": "/t"}), config({"exec": {"command": "x"}}), "[not", "{}", ""]
)
def test_nothing_to_replace(text):
    assert kubeconfig.user_token(text) is None
    assert kubeconfig.with_token(text, "new") is None
