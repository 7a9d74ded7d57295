"""The agent's token renewal, without an API server: where the Secret is, the options' limits, a
token that has expired refusing the start with what to do, and which of two tokens supersedes."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.agent import tokens
from kubelb.kube import kubeconfig

NS = "tenant-shop"


def account(uid: str) -> dict[str, Any]:
    return {"serviceaccount": {"name": "kubelb-ccm", "uid": uid}}


def jwt(**claims: Any) -> str:
    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    payload = {"sub": f"system:serviceaccount:{NS}:kubelb-ccm", "kubernetes.io": account("u1")}
    payload.update(claims)
    return f"{part({'alg': 'ES256'})}.{part(payload)}.c2ln"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("kubelb/kubelb-cluster", ("kubelb", "kubelb-cluster")),
     ("kubelb-cluster", ("pod-ns", "kubelb-cluster")),
     (" a/b ", ("a", "b"))],
)  # fmt: skip
def test_secret_reference(text, expected):
    ref = tokens.SecretRef.parse(text, "pod-ns")
    assert (ref.namespace, ref.name, ref.key) == (*expected, "kubelb")


@pytest.mark.parametrize("text", ["", "a/", "a/b/c"])
def test_bad_secret_reference(text):
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        tokens.SecretRef.parse(text, "pod-ns")


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"renew_remaining": 0.0}, "fraction"), ({"renew_remaining": 1.0}, "fraction"),
     ({"expiration_seconds": 599}, "600")],
)  # fmt: skip
def test_option_limits(options, problem):
    with pytest.raises(ValueError, match=problem):
        tokens.RenewalOptions(**options)


async def source_with(tmp_path: Path, token: str) -> kubeconfig.KubeconfigFile:
    path = tmp_path / "kubelb"
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": NS}}],
        "current-context": "c"}))  # fmt: skip
    source = kubeconfig.KubeconfigFile(path)
    await source.api()  # reads the file; no request is made
    return source


async def test_an_expired_token_refuses_the_start_with_what_to_do(tmp_path):
    now = time.time()
    source = await source_with(tmp_path, jwt(iat=now - 700, exp=now - 100))
    try:
        with pytest.raises(kubeconfig.ConfigError) as failed:
            tokens.check_usable(source)
    finally:
        await source.close()
    message = str(failed.value)
    assert str(tmp_path / "kubelb") in message
    assert "expired at" in message
    assert f"kubectl -n {NS} get secret kubelb-ccm-kubeconfig" in message


# Made when the test runs: a token made at collection time may expire before a long suite
# reaches it.
@pytest.mark.parametrize(
    "make_token",
    [lambda: jwt(iat=time.time() - 10, exp=time.time() + 590),  # valid
     lambda: jwt(iss="kubernetes/serviceaccount"),  # long-lived: never expires
     lambda: "opaque-token"],  # not a ServiceAccount JWT: nothing to judge
    ids=["valid", "long-lived", "opaque"],
)  # fmt: skip
async def test_a_usable_token_starts(tmp_path, make_token):
    source = await source_with(tmp_path, make_token())
    try:
        tokens.check_usable(source)
    finally:
        await source.close()


def test_which_token_supersedes():
    now = time.time()
    old = jwt(iat=now - 100, exp=now + 500)
    new = jwt(iat=now, exp=now + 600)
    assert tokens._supersedes(new, old)
    assert not tokens._supersedes(old, new)
    assert not tokens._supersedes(new, new)
    other_uid = jwt(iat=now, exp=now + 900, **{"kubernetes.io": account("u2")})
    assert not tokens._supersedes(other_uid, old)  # the account was recreated
    assert not tokens._supersedes(jwt(iss="legacy"), old)
    assert not tokens._supersedes(jwt(iat=now - 900, exp=now - 1), jwt(iat=now - 999, exp=now - 2))
