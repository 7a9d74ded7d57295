"""Who we are and where the API server is: a kubeconfig's current context, or the Pod's
ServiceAccount.

Input: a parsed kubeconfig document (plus the directory its relative paths start from), or the
in-cluster environment. Output: an `Endpoint` — server URL, the CA to trust, TLS options, proxy,
client certificate, the context's namespace, and an `Auth` that yields the Authorization header.

Supported, as kubectl reads them: `certificate-authority[-data]`, `insecure-skip-tls-verify`,
`tls-server-name`, `proxy-url`; `client-certificate[-data]`/`client-key[-data]`; `token`,
`tokenFile` (re-read, so a rotated file is followed), `username`/`password`, and `exec`
credential plugins (client.authentication.k8s.io ExecCredential: a token, re-run when it expires
or after a 401, or a client certificate). Legacy `auth-provider` plugins are refused with a
pointer to their exec replacements.

Written here rather than taken from kubernetes_asyncio: importing any part of that package loads
its generated API models (about 40 MiB of resident memory), which kubelb never uses.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # as client-go: a projected token is rotated well before it expires
EXEC_EXPIRY_MARGIN_SECONDS = 10.0


class CredentialsError(RuntimeError):
    """The kubeconfig or in-cluster environment does not describe a usable connection."""


class Auth(Protocol):
    """Where a request's Authorization header comes from."""

    async def authorization(self) -> str | None:
        """The header value to send now (None: no header)."""
        ...

    async def refresh(self) -> bool:
        """After a 401: True when the credentials changed (retrying may help)."""
        ...


@dataclass(frozen=True)
class StaticAuth:
    """A fixed header (basic auth)."""

    value: str

    async def authorization(self) -> str | None:
        return self.value

    async def refresh(self) -> bool:
        return False


class BearerToken:
    """A bearer token from the kubeconfig that its holder may replace (a renewed or reloaded
    token): every request from then on carries the new one, and open watches stay open."""

    def __init__(self, token: str) -> None:
        self._token = token

    @property
    def token(self) -> str:
        return self._token

    def replace(self, token: str) -> None:
        if not token:
            raise CredentialsError("an empty bearer token")
        self._token = token

    async def authorization(self) -> str | None:
        return f"Bearer {self._token}"

    async def refresh(self) -> bool:
        return False


class TokenFileAuth:
    """A bearer token read from a file, re-read at most every `reread_seconds` and after a 401
    (a projected ServiceAccount token is rotated in place)."""

    def __init__(self, path: Path, *, reread_seconds: float = TOKEN_REREAD_SECONDS) -> None:
        self.path = path
        self._reread_seconds = reread_seconds
        self._token = ""
        self._read_at = float("-inf")

    def load(self) -> None:
        """Read the token now (raises CredentialsError when the file is unreadable or empty)."""
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise CredentialsError(f"cannot read token file {self.path}: {exc}") from exc
        if not token:
            raise CredentialsError(f"token file {self.path} is empty")
        self._token, self._read_at = token, time.monotonic()

    async def authorization(self) -> str | None:
        if time.monotonic() - self._read_at >= self._reread_seconds:
            await self._reread()
        return f"Bearer {self._token}"

    async def refresh(self) -> bool:
        return await self._reread()

    async def _reread(self) -> bool:
        before = self._token
        try:
            await asyncio.to_thread(self.load)
        except CredentialsError:
            if not before:
                raise
            self._read_at = time.monotonic()  # keep the last good token; try again later
        return self._token != before


@dataclass(frozen=True)
class ExecResult:
    token: str | None
    expires_at: float | None  # time.time() seconds
    cert_pem: bytes
    key_pem: bytes


class ExecAuth:
    """A client-go credential plugin (`users[].user.exec`): runs the command, caches its token
    until the `expirationTimestamp`, and runs it again then or after a 401."""

    def __init__(self, spec: Mapping[str, Any], base: Path) -> None:
        command = spec.get("command")
        api_version = spec.get("apiVersion")
        if not command or not api_version:
            raise CredentialsError("exec: `command` and `apiVersion` are required")
        self.api_version = str(api_version)
        # A command given as a relative path is relative to the kubeconfig (as in client-go).
        cmd = str(command)
        if os.sep in cmd and not os.path.isabs(cmd):
            cmd = str(base / cmd)
        self.argv = [cmd, *(str(a) for a in spec.get("args") or ())]
        self.env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or ()}
        self._last: ExecResult | None = None
        self._lock = asyncio.Lock()

    async def run(self) -> ExecResult:
        """Run the plugin and return what it printed."""
        info = {"apiVersion": self.api_version, "kind": "ExecCredential",
                "spec": {"interactive": False}}  # fmt: skip
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            raise CredentialsError(f"exec: cannot run {self.argv[0]}: {exc}") from exc
        stdout, stderr = await proc.communicate()
        if proc.returncode != 0:
            detail = stderr.decode(errors="replace").strip()
            raise CredentialsError(f"exec: {self.argv[0]} exited with {proc.returncode}: {detail}")
        result = parse_exec_credential(stdout, self.api_version)
        self._last = result
        return result

    async def authorization(self) -> str | None:
        async with self._lock:
            last = self._last
            if last is None or _expired(last.expires_at):
                last = await self.run()
        return f"Bearer {last.token}" if last.token else None

    async def refresh(self) -> bool:
        async with self._lock:
            before = self._last
            after = await self.run()
        return after.token is not None and (before is None or after.token != before.token)


def parse_exec_credential(output: bytes, api_version: str) -> ExecResult:
    """An ExecCredential's status (as printed by a credential plugin)."""
    try:
        document = json.loads(output)
    except ValueError as exc:
        raise CredentialsError(f"exec: the plugin's output is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != "ExecCredential":
        raise CredentialsError("exec: the plugin did not print an ExecCredential")
    if document.get("apiVersion") != api_version:
        raise CredentialsError(
            f"exec: the plugin answered {document.get('apiVersion')}, not {api_version}"
        )
    status = document.get("status") or {}
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not (cert and key):
        raise CredentialsError("exec: the plugin gave neither a token nor a client certificate")
    expires_at = None
    if status.get("expirationTimestamp"):
        stamp = str(status["expirationTimestamp"]).replace("Z", "+00:00")
        expires_at = datetime.datetime.fromisoformat(stamp).timestamp()
    return ExecResult(token, expires_at, (cert or "").encode(), (key or "").encode())


def _expired(expires_at: float | None) -> bool:
    return expires_at is not None and time.time() >= expires_at - EXEC_EXPIRY_MARGIN_SECONDS


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open connections to one API server as one identity."""

    server: str
    ca_pem: bytes = b""
    insecure: bool = False
    tls_server_name: str | None = None
    proxy: str | None = None
    cert_pem: bytes = b""
    key_pem: bytes = b""
    auth: Auth | None = field(default=None, compare=False)
    namespace: str = ""


async def from_kubeconfig(
    document: Mapping[str, Any], context: str | None = None, base: Path = Path()
) -> Endpoint:
    """The Endpoint of `context` (default: `current-context`) in a parsed kubeconfig. Relative
    file paths are relative to `base`. An exec plugin is run once here (a broken one fails now)."""
    name = context or document.get("current-context")
    if not name:
        raise CredentialsError("no context chosen and no current-context set")
    ctx = _named(document, "contexts", str(name), "context")
    cluster = _named(document, "clusters", str(ctx.get("cluster") or ""), "cluster")
    user_name = ctx.get("user")
    user = _named(document, "users", str(user_name), "user") if user_name else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise CredentialsError(f"cluster {ctx.get('cluster')!r} has no server")
    cert_pem = _file_or_data(user, "client-certificate", base)
    key_pem = _file_or_data(user, "client-key", base)
    auth: Auth | None = None
    if user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name")
        raise CredentialsError(
            f"auth-provider {provider!r} is not supported: use an exec credential plugin "
            "(e.g. kubelogin for OIDC, gke-gcloud-auth-plugin for GKE)"
        )
    if user.get("exec"):
        plugin = ExecAuth(user["exec"], base)
        result = await plugin.run()
        if result.token:
            auth = plugin
        else:
            cert_pem, key_pem = result.cert_pem, result.key_pem
    elif user.get("tokenFile"):
        token_file = TokenFileAuth(_path(user["tokenFile"], base))
        await asyncio.to_thread(token_file.load)
        auth = token_file
    elif user.get("token"):
        auth = BearerToken(str(user["token"]))
    elif user.get("username") and user.get("password"):
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
        auth = StaticAuth(f"Basic {basic}")
    if bool(cert_pem) != bool(key_pem):
        raise CredentialsError("a client certificate needs both the certificate and its key")
    return Endpoint(
        server=server,
        ca_pem=_file_or_data(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy=cluster.get("proxy-url") or None,
        cert_pem=cert_pem,
        key_pem=key_pem,
        auth=auth,
        namespace=str(ctx.get("namespace") or ""),
    )


def in_cluster(
    environ: Mapping[str, str] = os.environ, directory: Path = SERVICE_ACCOUNT_DIR
) -> Endpoint:
    """The Pod's ServiceAccount: the API server from the service environment, its token (re-read
    as the kubelet rotates it) and CA from the mounted ServiceAccount directory."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise CredentialsError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    token = TokenFileAuth(directory / "token")
    token.load()
    try:
        ca_pem = (directory / "ca.crt").read_bytes()
        namespace = (directory / "namespace").read_text().strip()
    except OSError as exc:
        raise CredentialsError(f"in-cluster ServiceAccount files: {exc}") from exc
    return Endpoint(server=f"https://{host}:{port}", ca_pem=ca_pem, auth=token, namespace=namespace)


def _named(document: Mapping[str, Any], section: str, name: str, key: str) -> Mapping[str, Any]:
    for entry in document.get(section) or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if not isinstance(value, dict):
                raise CredentialsError(f"{section} entry {name!r} is not a mapping")
            return value
    raise CredentialsError(f"no {key} named {name!r} in the kubeconfig")


def _file_or_data(section: Mapping[str, Any], key: str, base: Path) -> bytes:
    """`<key>-data` (base64) or the file `<key>` names; b"" when neither is set."""
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except ValueError as exc:
            raise CredentialsError(f"{key}-data is not base64: {exc}") from exc
    if section.get(key):
        path = _path(section[key], base)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CredentialsError(f"cannot read {key} {path}: {exc}") from exc
    return b""


def _path(value: Any, base: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else base / path
