"""Where API connections come from: a kubeconfig file (re-read when it changes) or in-cluster.

Input: a kubeconfig path (flag), or nothing: then `$KUBECONFIG`, in-cluster credentials, and
`~/.kube/config` are tried in that order. Output: an `ApiSource`, which `kubelb.kube.client.Client`
asks for the current `transport.Api` on every request.

`KubeconfigFile` re-reads its file (at most every `check_interval` seconds on use, and at once
after a 401) and swaps in a new Api when the content changed, so a kubeconfig mounted from a
Secret that is rotated in place needs no restart. When only the bearer token changed, the token
is swapped inside the current Api instead: connections and open watches stay as they are. Its
holder can also swap the token itself (`replace_token`: the agent renewing its own credential).
A file that does not parse (half written) keeps the previous Api. Swapped-out Apis stay open for
`retire_after` seconds so in-flight requests and watches finish, then are closed. The kubeconfig
itself is read by `kubelb.kube.credentials`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from kubelb.kube import credentials, transport

logger = logging.getLogger(__name__)

IN_CLUSTER_HOST_ENV = "KUBERNETES_SERVICE_HOST"


class ConfigError(RuntimeError):
    """No usable kubeconfig or in-cluster configuration."""


@runtime_checkable
class ApiSource(Protocol):
    """Hands out the Api to use now."""

    async def api(self) -> transport.Api: ...

    async def refresh(self) -> bool:
        """Called after a 401: True when new credentials are in place (retry the request)."""
        ...

    async def close(self) -> None: ...


class FixedApi:
    """One Api for good; closes it only when `owned`."""

    def __init__(self, api: transport.Api, *, owned: bool = False) -> None:
        self._api = api
        self._owned = owned

    async def api(self) -> transport.Api:
        return self._api

    async def refresh(self) -> bool:
        return await self._api.refresh()

    async def close(self) -> None:
        if self._owned:
            await self._api.close()


class KubeconfigFile:
    """An ApiSource built from a kubeconfig file that follows changes to the file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        context: str | None = None,
        check_interval: float = 5.0,
        retire_after: float = 600.0,
    ) -> None:
        self.path = Path(path)
        self._context = context
        self._check_interval = check_interval
        self._retire_after = retire_after
        self._api: transport.Api | None = None
        self._endpoint: credentials.Endpoint | None = None
        self._digest = b""
        self._checked_at = float("-inf")
        self._retired: list[tuple[float, transport.Api]] = []
        self._lock = asyncio.Lock()
        self.namespace = ""  # the current context's namespace (known once loaded), "" if unset
        self.reloads = 0  # how many times a changed file replaced the client

    async def api(self) -> transport.Api:
        if self._api is None or time.monotonic() - self._checked_at >= self._check_interval:
            await self._reload()
        assert self._api is not None
        return self._api

    async def refresh(self) -> bool:
        """A changed file, or else fresh credentials from the same one (a re-read token file,
        an exec plugin run again)."""
        if await self._reload(force=True):
            return True
        return self._api is not None and await self._api.refresh()

    def bearer_token(self) -> str | None:
        """The bearer token requests carry now (None before loading, or when the kubeconfig
        authenticates otherwise: a client certificate, a token file, an exec plugin)."""
        auth = self._api.auth if self._api is not None else None
        return auth.token if isinstance(auth, credentials.BearerToken) else None

    def replace_token(self, token: str) -> bool:
        """Send `token` from now on, in place: open watches keep running. False when the
        kubeconfig has no bearer token to replace. The file is not touched: a later change of
        the file replaces this token in turn."""
        auth = self._api.auth if self._api is not None else None
        if not isinstance(auth, credentials.BearerToken):
            return False
        auth.replace(token)
        return True

    async def close(self) -> None:
        clients = [api for _, api in self._retired]
        if self._api is not None:
            clients.append(self._api)
        self._retired.clear()
        self._api = None
        for api in clients:
            await api.close()

    async def _reload(self, *, force: bool = False) -> bool:
        async with self._lock:
            recent = time.monotonic() - self._checked_at < self._check_interval
            if not force and self._api is not None and recent:
                return False  # another caller just checked
            self._checked_at = time.monotonic()
            await self._close_retired()
            try:
                data = await asyncio.to_thread(self.path.read_bytes)
            except OSError as exc:
                if self._api is None:
                    raise ConfigError(f"cannot read kubeconfig {self.path}: {exc}") from exc
                logger.warning("cannot re-read kubeconfig %s, keeping the current one: %s",
                               self.path, exc)  # fmt: skip
                return False
            digest = hashlib.sha256(data).digest()
            if digest == self._digest:
                return False
            try:
                endpoint = await _endpoint_from_bytes(data, self._context, self.path.parent)
            except Exception as exc:
                if self._api is None:
                    raise ConfigError(f"invalid kubeconfig {self.path}: {exc}") from exc
                logger.warning("kubeconfig %s changed but does not load, keeping the current "
                               "one: %s", self.path, exc)  # fmt: skip
                return False
            self._digest = digest
            if self._api is not None and self._swap_token(endpoint):
                self.reloads += 1
                logger.info("kubeconfig %s changed: using its new token", self.path)
                return True
            api = transport.Api.connect(endpoint)
            if self._api is not None:
                self._retired.append((time.monotonic(), self._api))
                self.reloads += 1
                logger.info("kubeconfig %s changed: using the new credentials", self.path)
            self._api, self._endpoint, self.namespace = api, endpoint, endpoint.namespace
            return True

    def _swap_token(self, endpoint: credentials.Endpoint) -> bool:
        """When `endpoint` differs from the current one only in its bearer token (Endpoint
        equality leaves `auth` out), swap that token into the current Api."""
        new = endpoint.auth
        if endpoint != self._endpoint or not isinstance(new, credentials.BearerToken):
            return False
        return self.replace_token(new.token)

    async def _close_retired(self) -> None:
        now = time.monotonic()
        keep = []
        for retired_at, api in self._retired:
            if now - retired_at >= self._retire_after:
                await api.close()
            else:
                keep.append((retired_at, api))
        self._retired = keep


async def _endpoint_from_bytes(
    data: bytes, context: str | None, base: Path
) -> credentials.Endpoint:
    document: Any = yaml.safe_load(data)
    if not isinstance(document, dict):
        raise ConfigError("not a kubeconfig mapping")
    return await credentials.from_kubeconfig(document, context, base)


def in_cluster() -> FixedApi:
    """The Pod's ServiceAccount (its projected token re-read as the kubelet rotates it)."""
    try:
        endpoint = credentials.in_cluster()
    except credentials.CredentialsError as exc:
        raise ConfigError(f"in-cluster configuration: {exc}") from exc
    return FixedApi(transport.Api.connect(endpoint), owned=True)


async def open_source(path: str | os.PathLike[str] | None = None) -> ApiSource:
    """The ApiSource for `path`, or else `$KUBECONFIG`, in-cluster, `~/.kube/config`.

    The first client is built here, so a missing or broken kubeconfig fails at start-up.
    """
    chosen = path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not chosen and os.environ.get(IN_CLUSTER_HOST_ENV):
        return in_cluster()
    source = KubeconfigFile(chosen or Path.home() / ".kube" / "config")
    await source.api()
    return source


def user_token(text: str, context: str | None = None) -> str | None:
    """The inline bearer token of `context`'s user (default: the current context's), or None."""
    document = _load(text)
    user = _context_user(document, context) if document is not None else None
    token = user.get("token") if user is not None else None
    return token if isinstance(token, str) and token else None


def with_token(text: str, token: str, context: str | None = None) -> str | None:
    """The kubeconfig `text` with the bearer token of `context`'s user (default: the current
    context's) replaced by `token`; None when that user has no inline token to replace."""
    document = _load(text)
    user = _context_user(document, context) if document is not None else None
    if user is None or not isinstance(user.get("token"), str):
        return None
    user["token"] = token
    result: str = yaml.safe_dump(document, sort_keys=False)
    return result


def _load(text: str) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, dict) else None


def _context_user(document: dict[str, Any], context: str | None) -> dict[str, Any] | None:
    try:
        name = context or document["current-context"]
        ctx = next(c["context"] for c in document["contexts"] if c["name"] == name)
        user = next(u["user"] for u in document["users"] if u["name"] == ctx["user"])
    except (KeyError, TypeError, StopIteration):
        return None
    return user if isinstance(user, dict) else None
