"""One connection pool to one API server as one identity: kubelb's HTTP transport.

Input: a `credentials.Endpoint` (or, for tests and the test control plane, a kubernetes_asyncio
ApiClient, used through its session without importing that package). Output: `Api.open()`, which
sends one request with the Authorization header and returns the open aiohttp response, whatever
its status; `kubelb.kube.client` decodes answers and maps errors.

The session does not trust the environment: the proxy is settled once from `proxy-url` or
`$HTTPS_PROXY`/`$NO_PROXY`, and `~/.netrc` is never read (aiohttp looked both up in a worker thread
on every request: about 8% of the manager's CPU in a burst of writes, and a netrc entry could only
break requests next to a bearer token).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp

from kubelb.kube import credentials

CONNECTIONS_PER_SERVER = 100
# Watch events with large objects can exceed aiohttp's default read buffer; etcd's default
# request limit is 1.5 MiB.
READ_BUFFER_BYTES = 2**21


class ApiClientLike(Protocol):
    """What we use of a kubernetes_asyncio ApiClient (typed here so as not to import it)."""

    configuration: Any
    rest_client: Any


class Api:
    """Requests to `server`, each with the current Authorization header from `auth`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        *,
        ca_pem: bytes = b"",
        auth: credentials.Auth | None = None,
        proxy: str | None = None,
        tls_server_name: str | None = None,
        owns_session: bool = True,
    ) -> None:
        self.session = session
        self.server = server.rstrip("/")
        self.ca_pem = ca_pem
        self.auth = auth
        self.proxy = proxy
        self.tls_server_name = tls_server_name
        self._owns_session = owns_session

    @classmethod
    def connect(cls, endpoint: credentials.Endpoint) -> Api:
        """A new connection pool for `endpoint` (call from within the event loop)."""
        connector = aiohttp.TCPConnector(limit=CONNECTIONS_PER_SERVER, ssl=ssl_context(endpoint))
        session = aiohttp.ClientSession(
            connector=connector, trust_env=False, read_bufsize=READ_BUFFER_BYTES
        )
        return cls(
            session,
            endpoint.server,
            ca_pem=endpoint.ca_pem,
            auth=endpoint.auth,
            proxy=endpoint.proxy or env_proxy(endpoint.server),
            tls_server_name=endpoint.tls_server_name,
        )

    @classmethod
    def of_api_client(cls, api: ApiClientLike) -> Api:
        """Requests through a kubernetes_asyncio ApiClient's session and credentials; its owner
        closes it."""
        configuration = api.configuration
        ca_file = configuration.ssl_ca_cert
        return cls(
            api.rest_client.pool_manager,
            str(configuration.host),
            ca_pem=Path(ca_file).read_bytes() if ca_file else b"",
            auth=_ConfigurationAuth(configuration),
            proxy=configuration.proxy,
            tls_server_name=configuration.tls_server_name,
            owns_session=False,
        )

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; the response is open (the caller reads and releases it)."""
        url = self.server + path
        if query:
            url += "?" + urlencode(list(query))
        sent = dict(headers or {})
        authorization = await self.auth.authorization() if self.auth is not None else None
        if authorization:
            sent["Authorization"] = authorization
        data = body if body is None or isinstance(body, bytes) else json.dumps(body)
        timeout = request_timeout
        if not isinstance(timeout, aiohttp.ClientTimeout):
            timeout = aiohttp.ClientTimeout(total=timeout)
        extra: dict[str, Any] = {}
        if self.proxy:
            extra["proxy"] = self.proxy
        if self.tls_server_name:
            extra["server_hostname"] = self.tls_server_name
        return await self.session.request(
            method, url, headers=sent, data=data, timeout=timeout, **extra
        )

    async def refresh(self) -> bool:
        """After a 401: True when the credentials changed."""
        return self.auth is not None and await self.auth.refresh()

    async def close(self) -> None:
        if self._owns_session:
            await self.session.close()


class _ConfigurationAuth:
    """The bearer token of a kubernetes_asyncio Configuration (its refresh hook included)."""

    def __init__(self, configuration: Any) -> None:
        self._configuration = configuration

    async def authorization(self) -> str | None:
        settings = await self._configuration.auth_settings()
        bearer = settings.get("BearerToken") or {}
        value = bearer.get("value")
        return str(value) if value else None

    async def refresh(self) -> bool:
        return False


def ssl_context(endpoint: credentials.Endpoint) -> ssl.SSLContext:
    """Trust `ca_pem` (the system's CAs when empty); present the client certificate, if any."""
    if endpoint.ca_pem:
        context = ssl.create_default_context(cadata=endpoint.ca_pem.decode("ascii"))
    else:
        context = ssl.create_default_context()
    if endpoint.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if endpoint.cert_pem:
        _load_client_certificate(context, endpoint.cert_pem, endpoint.key_pem)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # The ssl module loads certificates from files only: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="kubelb-cert-") as directory:
        cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
        for path, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise credentials.CredentialsError(f"client certificate: {exc}") from exc


def env_proxy(server: str) -> str | None:
    """The proxy `$HTTPS_PROXY`/`$HTTP_PROXY` name for `server`, unless `$NO_PROXY` exempts it."""
    url = urlsplit(server)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    return proxy
