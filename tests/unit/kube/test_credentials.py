"""Reading a kubeconfig's current context (or the Pod's ServiceAccount) into an Endpoint: the
server, CA, client certificate, namespace and the Authorization header each request carries."""

from __future__ import annotations

import base64
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kubelb.kube import credentials

SERVER = "https://10.0.0.1:6443"


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "clusters": [
            {"name": "one", "cluster": {"server": SERVER + "/", **(cluster or {})}},
            {"name": "two", "cluster": {"server": "https://10.0.0.2:6443"}},
        ],
        "users": [{"name": "me", "user": user}, {"name": "other", "user": {"token": "t2"}}],
        "contexts": [
            {"name": "a", "context": {"cluster": "one", "user": "me", "namespace": "ns-a"}},
            {"name": "b", "context": {"cluster": "two", "user": "other"}},
        ],
        "current-context": "a",
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def header(endpoint: credentials.Endpoint) -> str | None:
    assert endpoint.auth is not None
    return await endpoint.auth.authorization()


async def test_current_context_with_a_token_and_inline_ca():
    document = kubeconfig({"token": "abc"}, {"certificate-authority-data": b64(b"CA PEM")})
    endpoint = await credentials.from_kubeconfig(document)
    assert endpoint.server == SERVER  # the trailing slash dropped
    assert endpoint.ca_pem == b"CA PEM"
    assert endpoint.namespace == "ns-a"
    assert await header(endpoint) == "Bearer abc"
    assert not endpoint.insecure
    assert (endpoint.cert_pem, endpoint.key_pem, endpoint.proxy) == (b"", b"", None)


async def test_a_named_context_wins_over_current_context():
    endpoint = await credentials.from_kubeconfig(kubeconfig({"token": "abc"}), "b")
    assert endpoint.server == "https://10.0.0.2:6443"
    assert endpoint.namespace == ""
    assert await header(endpoint) == "Bearer t2"


async def test_files_are_relative_to_the_kubeconfig_directory(tmp_path: Path):
    (tmp_path / "ca.crt").write_bytes(b"CA FROM FILE")
    (tmp_path / "tls.crt").write_bytes(b"CERT")
    (tmp_path / "tls.key").write_bytes(b"KEY")
    document = kubeconfig(
        {"client-certificate": "tls.crt", "client-key": str(tmp_path / "tls.key")},
        {"certificate-authority": "ca.crt", "insecure-skip-tls-verify": True,
         "tls-server-name": "api.internal", "proxy-url": "http://proxy:3128"},
    )  # fmt: skip
    endpoint = await credentials.from_kubeconfig(document, base=tmp_path)
    assert (endpoint.ca_pem, endpoint.cert_pem, endpoint.key_pem) == (
        b"CA FROM FILE", b"CERT", b"KEY")  # fmt: skip
    assert endpoint.insecure
    assert endpoint.tls_server_name == "api.internal"
    assert endpoint.proxy == "http://proxy:3128"
    assert endpoint.auth is None  # the client certificate is the identity


async def test_token_file_is_read_again_when_it_changes(tmp_path: Path):
    (tmp_path / "token").write_text("first\n")
    document = kubeconfig({"tokenFile": "token"})
    endpoint = await credentials.from_kubeconfig(document, base=tmp_path)
    assert await header(endpoint) == "Bearer first"
    assert endpoint.auth is not None
    assert not await endpoint.auth.refresh()  # unchanged
    (tmp_path / "token").write_text("second")
    assert await endpoint.auth.refresh()
    assert await header(endpoint) == "Bearer second"
    (tmp_path / "token").unlink()  # gone for a moment: keep the last good token
    assert not await endpoint.auth.refresh()
    assert await header(endpoint) == "Bearer second"


async def test_basic_auth():
    endpoint = await credentials.from_kubeconfig(kubeconfig({"username": "u", "password": "p"}))
    assert await header(endpoint) == f"Basic {b64(b'u:p')}"


def plugin(tmp_path: Path, status: dict[str, Any], api_version: str = "v1") -> dict[str, Any]:
    """An exec credential plugin: a script that counts its runs, records the ExecCredential it
    was given and its environment, and prints `status` with its run count in the token."""
    script = tmp_path / "plugin.py"
    script.write_text(f"""#!{sys.executable}
import json, os, pathlib
runs = pathlib.Path({str(tmp_path / "runs")!r})
count = len(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text("x" * count)
pathlib.Path({str(tmp_path / "info.json")!r}).write_text(os.environ["KUBERNETES_EXEC_INFO"])
status = json.loads({json.dumps(status)!r})
if "token" in status:
    status["token"] += f"-{{count}}-{{os.environ['EXTRA']}}"
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/{api_version}",
                  "kind": "ExecCredential", "status": status}}))
""")
    script.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.py",
                     "args": [], "env": [{"name": "EXTRA", "value": "e"}]}}  # fmt: skip


def runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text())


async def test_exec_plugin_token_is_cached_until_a_401(tmp_path: Path):
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    user = plugin(tmp_path, {"token": "tok", "expirationTimestamp": later.isoformat()})
    endpoint = await credentials.from_kubeconfig(kubeconfig(user), base=tmp_path)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["kind"] == "ExecCredential"
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"
    assert await header(endpoint) == "Bearer tok-1-e"  # run once, at load
    assert await header(endpoint) == "Bearer tok-1-e"
    assert runs(tmp_path) == 1
    assert endpoint.auth is not None
    assert await endpoint.auth.refresh()  # after a 401: run again
    assert await header(endpoint) == "Bearer tok-2-e"


async def test_exec_plugin_runs_again_once_its_token_expired(tmp_path: Path):
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    user = plugin(tmp_path, {"token": "tok", "expirationTimestamp": past.isoformat()})
    endpoint = await credentials.from_kubeconfig(kubeconfig(user), base=tmp_path)
    assert await header(endpoint) == "Bearer tok-2-e"
    assert await header(endpoint) == "Bearer tok-3-e"


async def test_exec_plugin_client_certificate(tmp_path: Path):
    user = plugin(tmp_path, {"clientCertificateData": "CERT", "clientKeyData": "KEY"})
    endpoint = await credentials.from_kubeconfig(kubeconfig(user), base=tmp_path)
    assert (endpoint.cert_pem, endpoint.key_pem, endpoint.auth) == (b"CERT", b"KEY", None)


async def test_exec_plugin_with_the_wrong_api_version_fails(tmp_path: Path):
    user = plugin(tmp_path, {"token": "tok"}, api_version="v1beta1")
    with pytest.raises(credentials.CredentialsError, match="v1beta1"):
        await credentials.from_kubeconfig(kubeconfig(user), base=tmp_path)


async def test_a_failing_exec_plugin_fails_with_its_message(tmp_path: Path):
    fail = ["-c", "raise SystemExit('no login')"]
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                     "command": sys.executable, "args": fail}}  # fmt: skip
    with pytest.raises(credentials.CredentialsError, match="no login"):
        await credentials.from_kubeconfig(kubeconfig(user))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**kubeconfig({}), "current-context": ""}, "no context"),
        ({**kubeconfig({}), "current-context": "missing"}, "no context named 'missing'"),
        (kubeconfig({"auth-provider": {"name": "oidc"}}), "exec credential plugin"),
        (kubeconfig({"client-certificate-data": b64(b"CERT")}), "both"),
        (kubeconfig({}, {"certificate-authority-data": "not base64!"}), "not base64"),
        (kubeconfig({}, {"certificate-authority": "/absent/ca.crt"}), "cannot read"),
    ],
)
async def test_unusable_kubeconfigs_fail_clearly(document: dict[str, Any], message: str):
    with pytest.raises(credentials.CredentialsError, match=message):
        await credentials.from_kubeconfig(document)


def test_in_cluster_reads_the_service_account(tmp_path: Path):
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(b"CLUSTER CA")
    (tmp_path / "namespace").write_text("kubelb\n")
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    endpoint = credentials.in_cluster(environ, tmp_path)
    assert endpoint.server == "https://[fd00::1]:443"
    assert (endpoint.ca_pem, endpoint.namespace) == (b"CLUSTER CA", "kubelb")
    assert isinstance(endpoint.auth, credentials.TokenFileAuth)


def test_in_cluster_without_a_token_fails(tmp_path: Path):
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(credentials.CredentialsError, match="token"):
        credentials.in_cluster(environ, tmp_path)
    with pytest.raises(credentials.CredentialsError, match="KUBERNETES_SERVICE_HOST"):
        credentials.in_cluster({}, tmp_path)
