"""Each tenant Envoy's xDS client certificate, issued and rotated by the manager.

`FileCerts` (process mode): the certificate directory `<root>/<node-id>/xds-tls`
(`kubelb.pki.files` layout) that the Envoy's bootstrap names. `ensure(node_id)` issues a
certificate when there is none or the one there is due (`kubelb.pki.model.due`);
`Rotation` (a `Runner`) looks again every `check_period` seconds, so a certificate is replaced
well before it expires and Envoy's file-based SDS picks it up without a restart.

`SecretCerts` (Kubernetes mode) keeps the same files in Secret `envoy-<tenant-ns>-xds-cert` in
the tenant namespace, which the Envoy Deployment mounts; the kubelet refreshes a mounted Secret
in place, so rotation needs no new pod.

The CA itself persists across restarts (`load_authority`): files in the state directory, or
Secret `CA_SECRET` in the manager's namespace (`load_authority_secret`: created when missing; a
replica that loses the race to create it reads the winner's). The manager's CA signs in a child
process (`kubelb.pki.isolated`): issuing runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.kube import client, errors, informer, objects, resources, writer as kwriter
from kubelb.pki import files, isolated, model
from kubelb.util import naming

logger = logging.getLogger(__name__)

CA_SECRET = "kubelb-xds-ca"
TLS_DIR = "xds-tls"
SECRET_LABEL = "kubelb.k8c.io/xds-certificate"
SECRET_SELECTOR = f"{SECRET_LABEL}=true"
MAX_CHECK_PERIOD = 60.0


def check_period(validity: datetime.timedelta) -> float:
    """How often to look for due certificates: a few times within the renewal margin."""
    margin = validity.total_seconds() * (1 - model.RENEW_AT)
    return max(0.2, min(MAX_CHECK_PERIOD, margin / 4))


class Issuer(Protocol):
    name: str
    check_period: float

    async def load_authority(self) -> model.Authority:
        """Load the persisted CA (created when missing); needed before anything is issued."""

    async def rotate(self) -> int:
        """Re-issue every due certificate; how many were."""


class _Certs:
    """The CA, once loaded (`load_authority`, or given)."""

    def __init__(self, authority: model.Authority | None, validity: datetime.timedelta) -> None:
        self._authority = authority
        self.validity = validity
        self.check_period = check_period(validity)
        self.issued = 0

    @property
    def authority(self) -> model.Authority:
        if self._authority is None:
            raise RuntimeError("the xDS CA is not loaded yet")
        return self._authority


class Rotation:
    """A `Runner`: re-issue due certificates until cancelled."""

    name = "xds-certificates"

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer

    async def run(self) -> None:
        while True:
            try:
                await self.issuer.rotate()
            except (errors.ApiError, OSError) as exc:
                logger.warning("xDS certificate rotation (%s): %s", self.issuer.name, exc)
            await asyncio.sleep(self.issuer.check_period)


class FileCerts(_Certs):
    name = "files"

    def __init__(
        self,
        root: Path,
        *,
        ca_dir: Path | None = None,
        authority: model.Authority | None = None,
        validity: datetime.timedelta = model.LEAF_VALIDITY,
    ) -> None:
        """Certificates under `root`; the CA persists in `ca_dir` (default `root/_ca`)."""
        super().__init__(authority, validity)
        self.root = Path(root)
        self.ca_dir = ca_dir or self.root / "_ca"  # no node id (DNS-1035) is "_ca"
        self.nodes: set[str] = set()
        # A node's directory is written by one thread at a time (its reconciler or rotation).
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )

    async def load_authority(self) -> model.Authority:
        self._authority = await asyncio.to_thread(files.load_or_create_authority, self.ca_dir)
        return self._authority

    def directory(self, node_id: str) -> Path:
        return self.root / naming.dns1035(node_id) / TLS_DIR

    async def ensure(self, node_id: str) -> Path:
        """The node's certificate directory, with a certificate that is not due."""
        self.nodes.add(node_id)
        async with self._locks[node_id]:
            return await asyncio.to_thread(self._ensure, node_id, self.authority)

    def _ensure(self, node_id: str, authority: model.Authority) -> Path:
        directory = self.directory(node_id)
        if authority.due(files.read(directory, files.CERT), node_id=node_id):
            leaf = authority.issue_node(node_id, validity=self.validity)
            files.write_dir(directory, files.leaf_files(leaf, str(directory)))
            self.issued += 1
            logger.info("xDS certificate for node %r issued, valid until %s", node_id,
                        leaf.not_after)  # fmt: skip
        return directory

    async def forget(self, node_id: str) -> None:
        self.nodes.discard(node_id)
        async with self._locks[node_id]:
            await asyncio.to_thread(shutil.rmtree, self.directory(node_id), ignore_errors=True)

    async def rotate(self) -> int:
        before = self.issued
        for node_id in sorted(self.nodes):
            async with self._locks[node_id]:
                if node_id in self.nodes:  # not forgotten meanwhile
                    await asyncio.to_thread(self._ensure, node_id, self.authority)
        return self.issued - before


def _data(secret: objects.RawObject | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if isinstance(value, str) else None


def _encode(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in sorted(data.items())}


class SecretCerts(_Certs):
    """Kubernetes mode: one Secret per tenant namespace, read back through `secrets`; the CA in
    Secret `CA_SECRET` of the manager's `namespace`."""

    name = "secrets"

    def __init__(
        self,
        kube: client.Client,
        writer: kwriter.Writer,
        informers: informer.Informers,
        namespace: str,
        *,
        authority: model.Authority | None = None,
        validity: datetime.timedelta = model.LEAF_VALIDITY,
    ) -> None:
        super().__init__(authority, validity)
        self.kube = kube
        self.writer = writer
        self.namespace = namespace
        self.secrets = informers.get(resources.SECRETS, label_selector=SECRET_SELECTOR)

    async def load_authority(self) -> model.Authority:
        self._authority = await load_authority_secret(self.kube, self.namespace)
        return self._authority

    def desired(self, namespace: str, leaf: model.Leaf) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": envoy_k8s.xds_cert_secret(namespace),
                "namespace": namespace,
                "labels": {SECRET_LABEL: "true"},
            },
            "type": "Opaque",
            "data": _encode(files.leaf_files(leaf, envoy_k8s.XDS_TLS_MOUNT)),
        }

    async def ensure(self, namespace: str) -> bool:
        """Write the tenant's Secret when missing or due; True when written."""
        key = objects.ObjectKey(namespace, envoy_k8s.xds_cert_secret(namespace))
        current = self.secrets.store.get(key)
        cert = _data(current, files.CERT)
        if not await asyncio.to_thread(self.authority.due, cert, node_id=namespace):
            return False
        leaf = await asyncio.to_thread(self.authority.issue_node, namespace,
                                       validity=self.validity)  # fmt: skip
        await self.writer.ensure(resources.SECRETS, self.desired(namespace, leaf), current=current)
        self.issued += 1
        logger.info("tenant %s: xDS certificate Secret %s issued, valid until %s", namespace,
                    key.name, leaf.not_after)  # fmt: skip
        return True

    async def remove(self, namespace: str) -> None:
        key = objects.ObjectKey(namespace, envoy_k8s.xds_cert_secret(namespace))
        if key in self.secrets.store:
            await self.writer.delete(resources.SECRETS, key)

    def namespaces(self) -> Iterable[str]:
        return sorted({objects.namespace(s) for s in self.secrets.store.list()})

    async def rotate(self) -> int:
        before = self.issued
        for namespace in self.namespaces():
            await self.ensure(namespace)
        return self.issued - before


async def load_authority_secret(kube: client.Client, namespace: str) -> isolated.IsolatedAuthority:
    """The CA in Secret `CA_SECRET` of `namespace`; created when missing. Create-only, never
    overwritten: replicas racing at start-up all end up with the one that was written first."""
    key = objects.ObjectKey(namespace, CA_SECRET)
    for _ in range(2):
        found: objects.RawObject | None
        try:
            found = await kube.get(resources.SECRETS, CA_SECRET, namespace=namespace)
        except errors.NotFoundError:
            found = None
        cert, private = _data(found, "ca.crt"), _data(found, "ca.key")
        if cert and private:
            return await asyncio.to_thread(isolated.IsolatedAuthority.from_pem, cert, private)
        if found is not None:
            raise ValueError(f"Secret {key} holds no CA (ca.crt, ca.key): delete it to renew")
        authority = await asyncio.to_thread(isolated.IsolatedAuthority.create)
        secret = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CA_SECRET, "namespace": namespace},
            "type": "Opaque",
            "data": _encode({"ca.crt": authority.cert_pem, "ca.key": authority.key_pem()}),
        }  # fmt: skip
        try:
            await kube.create(resources.SECRETS, secret)
        except errors.AlreadyExistsError:
            continue  # another replica was first: use its CA
        logger.info("xDS CA created in Secret %s", key)
        return authority
    raise errors.ConflictError(f"Secret {key} was created and deleted again meanwhile")
