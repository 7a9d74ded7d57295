"""The agent keeps its management-cluster credential alive.

The manager issues each tenant a kubeconfig with a bound (TokenRequest) token, which expires (a
day by default) and which the manager renews only in its own Secret. So the agent renews its
copy itself: when `renew_remaining` of the token's lifetime is left (read from the token's own
`iat`/`exp`), it asks the management API server for a new token for its own ServiceAccount (the
Tenant's Role allows `create` on `serviceaccounts/token` for exactly that account), swaps it into
its client in place (open watches keep running), and, given a Secret (`--kubelb-kubeconfig-
secret`), writes the kubeconfig with the new token into that Secret in the tenant cluster, so a
restarted agent starts with a valid token. A failed renewal is retried every `retry_interval`
seconds. A token without expiry (a long-lived token from a `kubernetes.io/service-account-token`
Secret, `--tenant-token=long-lived` on the manager) needs nothing.

Inputs: the management `KubeconfigFile` (the token in use), a management `Client` (TokenRequest),
a tenant `Client` and the Secret's name (optional). Outputs: the swapped token, the rewritten
Secret, log lines, and `renewals`/`secret_writes` counters. `check_usable` refuses to start with a
token that has already expired: it can no longer renew itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import logging
import time
from dataclasses import dataclass

from kubelb.kube import client, errors, kubeconfig, objects, resources, satokens

logger = logging.getLogger(__name__)

SECRET_KEY = "kubelb"  # as upstream's Secret kubelb-cluster
MIN_EXPIRATION_SECONDS = 600  # TokenRequest refuses less
MANAGER_SECRET = "kubelb-ccm-kubeconfig"  # where the manager keeps the tenant's kubeconfig


@dataclass(frozen=True, slots=True)
class SecretRef:
    """The tenant-cluster Secret that holds the agent's management kubeconfig."""

    namespace: str
    name: str
    key: str = SECRET_KEY

    @classmethod
    def parse(cls, text: str, default_namespace: str) -> SecretRef:
        """`NAMESPACE/NAME` or `NAME` (in `default_namespace`)."""
        namespace, _, name = text.strip().rpartition("/")
        if not name or "/" in namespace:
            raise ValueError(f"{text!r} is not NAMESPACE/NAME")
        return cls(namespace or default_namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewalOptions:
    expiration_seconds: int = 86400  # asked of TokenRequest (the server may shorten it)
    renew_remaining: float = 0.2  # renew when this part of the token's lifetime is left
    retry_interval: float = 30.0  # after a failed renewal or Secret write
    check_interval: float = 5.0  # how often the token in use is looked at (the file may change)
    secret: SecretRef | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.renew_remaining < 1.0:
            raise ValueError("the renewal point must be a fraction of the lifetime in (0, 1)")
        if self.expiration_seconds < MIN_EXPIRATION_SECONDS:
            raise ValueError(f"a token lifetime must be at least {MIN_EXPIRATION_SECONDS} "
                             "seconds (TokenRequest's minimum)")  # fmt: skip


def check_usable(source: kubeconfig.KubeconfigFile) -> None:
    """Raise ConfigError when the token in use has expired: renewing needs a valid one."""
    read = satokens.claims(source.bearer_token() or "")
    if read is None or read.expires_at is None or read.expires_at > time.time():
        return
    raise kubeconfig.ConfigError(
        f"the token in --kubelb-kubeconfig {source.path} ({read.subject}) expired at "
        f"{_when(read.expires_at)}, so the agent cannot renew it. Fetch a fresh kubeconfig from "
        f"the management cluster: kubectl -n {read.namespace} get secret {MANAGER_SECRET} "
        "-o jsonpath='{.data.kubelb}' | base64 -d > kubelb.kubeconfig; put it where "
        "--kubelb-kubeconfig reads it (the Secret mounted there, e.g. kubectl -n kubelb "
        "create secret generic kubelb-cluster --from-file=kubelb=kubelb.kubeconfig "
        "--dry-run=client -o yaml | kubectl apply -f -) and restart the agent"
    )


class TokenRenewer:
    """Renews the management token before it expires; `run()` until cancelled."""

    def __init__(
        self,
        source: kubeconfig.KubeconfigFile,
        management: client.Client,
        options: RenewalOptions,
        *,
        tenant: client.Client | None = None,
    ) -> None:
        self._source = source
        self._management = management
        self._tenant = tenant
        self.options = options
        self._renewed: str | None = None  # the last token we obtained
        self._unwritten: str | None = None  # a renewed token the Secret does not hold yet
        self._expired_reported: float | None = None  # said once per token
        self.renewals = 0
        self.secret_writes = 0

    async def start(self) -> None:
        """Before serving: take the Secret's token when it is newer than the file's (the kubelet
        updates a mounted Secret a while after it changes), then refuse an expired token."""
        if self.options.secret is not None and self._tenant is not None:
            text = await self._read_secret()
            token = kubeconfig.user_token(text) if text else None
            current = self._source.bearer_token()
            if token and current and _supersedes(token, current):
                self._source.replace_token(token)
                logger.info("using the newer management token from Secret %s",
                            self.options.secret)  # fmt: skip
        check_usable(self._source)

    async def run(self) -> None:
        while True:
            await self._source.api()  # picks up a changed file
            read = self._current()
            due = read.renew_at(self.options.renew_remaining) if read is not None else None
            if read is None or due is None:
                await asyncio.sleep(self.options.check_interval)  # nothing to renew (yet)
                continue
            if time.time() < due:
                await self._idle(due)
                continue
            self._report_expired(read)
            try:
                await self.renew(read)
            except errors.ApiError as exc:
                self._report(exc, read)
                await asyncio.sleep(self.options.retry_interval)

    async def renew(self, read: satokens.TokenClaims) -> str:
        """A new token for the account `read` names, in use from now on (and in the Secret)."""
        issued = await self._management.create_token(
            read.namespace, read.name, expiration_seconds=self.options.expiration_seconds
        )
        self._source.replace_token(issued.token)
        self._renewed = issued.token
        self.renewals += 1
        logger.info("renewed the management token of %s/%s, valid until %s", read.namespace,
                    read.name, issued.expiration.isoformat())  # fmt: skip
        if self.options.secret is not None and not await self._write_secret(issued.token):
            self._unwritten = issued.token
        else:
            self._unwritten = None
        return issued.token

    def _current(self) -> satokens.TokenClaims | None:
        """The claims of the token in use. A changed file may bring an older token of the same
        account (a mounted Secret updated late): the one we renewed, lasting longer, stays."""
        token = self._source.bearer_token()
        read = satokens.claims(token) if token else None
        renewed = self._renewed
        if token is None or read is None or renewed is None or renewed == token:
            return read
        if not _supersedes(renewed, token):
            self._renewed = None  # a new identity or a newer token: follow the file
            return read
        self._source.replace_token(renewed)
        logger.debug("kept the renewed management token over the older one from the file")
        return satokens.claims(renewed)

    async def _idle(self, due: float) -> None:
        """Until `due` (or the next look at the file), storing a renewed token the Secret did
        not take yet."""
        wait = self.options.check_interval
        if self._unwritten is not None:
            if await self._write_secret(self._unwritten):
                self._unwritten = None
            else:
                wait = min(wait, self.options.retry_interval)
        await asyncio.sleep(max(0.0, min(due - time.time(), wait)))

    def _report_expired(self, read: satokens.TokenClaims) -> None:
        expires = read.expires_at
        if expires is None or expires > time.time() or expires == self._expired_reported:
            return
        self._expired_reported = expires
        logger.error("the management token expired at %s; if renewing keeps failing, fetch a "
                     "fresh kubeconfig (kubectl -n %s get secret %s)", _when(expires),
                     read.namespace, MANAGER_SECRET)  # fmt: skip

    def _report(self, exc: errors.ApiError, read: satokens.TokenClaims) -> None:
        until = _when(read.expires_at) if read.expires_at is not None else "?"
        if isinstance(exc, errors.ForbiddenError):
            logger.warning(
                "cannot renew the management token: the management cluster does not let "
                "%s create tokens for itself (the Tenant's Role needs `create` on "
                "serviceaccounts/token for %s; a manager with --tenant-token=bound grants it). "
                "The token is valid until %s: before then, fetch a fresh kubeconfig "
                "(kubectl -n %s get secret %s). Retrying in %ss: %s",
                read.subject, read.name, until, read.namespace, MANAGER_SECRET,
                self.options.retry_interval, exc,
            )  # fmt: skip
        else:
            logger.warning("cannot renew the management token (valid until %s), retrying in "
                           "%ss: %s", until, self.options.retry_interval, exc)  # fmt: skip

    async def _read_secret(self) -> str | None:
        ref, tenant = self.options.secret, self._tenant
        if ref is None or tenant is None:
            return None
        try:
            secret = await tenant.get(resources.SECRETS, ref.name, namespace=ref.namespace)
        except errors.ApiError as exc:
            logger.warning("cannot read Secret %s: %s", ref, exc)
            return None
        return _decoded(secret, ref.key)

    async def _write_secret(self, token: str) -> bool:
        """Put `token` into the Secret's kubeconfig unless it holds it or a newer one already;
        False when that failed (retried later)."""
        ref, tenant = self.options.secret, self._tenant
        if ref is None or tenant is None:
            return True
        try:
            secret = await tenant.get(resources.SECRETS, ref.name, namespace=ref.namespace)
        except errors.ApiError as exc:
            logger.warning("cannot read Secret %s to store the renewed token: %s", ref, exc)
            return False
        text = _decoded(secret, ref.key)
        held = kubeconfig.user_token(text) if text else None
        if held == token or (held is not None and _supersedes(held, token)):
            return True
        updated = kubeconfig.with_token(text, token) if text else None
        if updated is None:
            logger.warning("Secret %s has no kubeconfig with a token under key %r: the renewed "
                           "token is not stored there", ref, ref.key)  # fmt: skip
            return True  # nothing a retry could fix
        patch = {"metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                 "data": {ref.key: base64.b64encode(updated.encode()).decode()}}  # fmt: skip
        try:
            await tenant.patch(resources.SECRETS, ref.name, patch, namespace=ref.namespace)
        except errors.ApiError as exc:
            logger.warning("cannot store the renewed token in Secret %s: %s", ref, exc)
            return False
        self.secret_writes += 1
        logger.info("stored the renewed management token in Secret %s", ref)
        return True


def _supersedes(token: str, other: str) -> bool:
    """`token` is for the same ServiceAccount (name and uid) as `other`, still valid, and
    lasts longer."""
    new, old = satokens.claims(token), satokens.claims(other)
    if new is None or old is None or new.expires_at is None or old.expires_at is None:
        return False
    same = (new.subject, new.service_account_uid) == (old.subject, old.service_account_uid)
    return same and new.expires_at > max(old.expires_at, time.time())


def _decoded(secret: objects.RawObject, key: str) -> str | None:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value).decode()
    except (ValueError, binascii.Error):
        return None


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds")
