"""Install the shipped Gateway API CRDs in the tenant cluster and keep them as shipped
(`--install-gateway-api-crds`, `--gateway-api-crds-channel`; upstream's Gateway API CRD controller).

Inputs: the channel, the tenant cluster's client and informers. Outputs: `install()` writes every
CRD of the channel and returns once each is Established, so it runs before the controllers that
watch Gateway API kinds; `run()` then keeps them reconciled: a CRD whose spec, labels or
annotations were edited gets the shipped values back, a deleted one is created again. Each CRD
carries the label `kubelb.k8c.io/managed-by=kubelb` and conversion strategy None.
`require_served()` makes `--enable-gateway-api` without the CRDs a start-up error that names
`--install-gateway-api-crds`, instead of controllers that retry a 404 for ever.

Writes are server-side applies as the agent's field manager, made only when the live CRD lacks
something the shipped one sets (`kubelb.kube.writer`), so an unchanged CRD costs no write.
Labels and annotations that others add stay. The release's ValidatingAdmissionPolicy is not
installed: it only guards hand-made upgrades, and it would need admission-policy rights.
RBAC in the tenant cluster: get, list, watch, patch and create on customresourcedefinitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from kubelb.api import gatewayapi, labels, meta as api_meta
from kubelb.kube import (
    client,
    controller,
    errors,
    informer,
    interface,
    objects,
    resources,
    store,
    watches,
    writer,
)

logger = logging.getLogger(__name__)

CUSTOM_RESOURCE_DEFINITIONS = resources.Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
    namespaced=False,
)  # fmt: skip
MANAGED_SELECTOR = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE}"
# What the agent needs in the tenant cluster with the flag on (ClusterRole rule).
RBAC_RULE: dict[str, Any] = {
    "apiGroups": [CUSTOM_RESOURCE_DEFINITIONS.group],
    "resources": [CUSTOM_RESOURCE_DEFINITIONS.plural],
    "verbs": ["create", "get", "list", "patch", "watch"],
}
ESTABLISHED_TIMEOUT = 60.0
_POLL_INTERVAL = 0.2


class GatewayCRDError(RuntimeError):
    """The agent cannot start its Gateway API part; the message says what to do."""


class InstallError(GatewayCRDError):
    """The CRDs could not be written (e.g. missing RBAC) or were not served in time."""


class NotServedError(GatewayCRDError):
    """--enable-gateway-api, but the tenant cluster does not serve the kinds it watches."""


def desired(channel: gatewayapi.Channel) -> list[dict[str, Any]]:
    """The CRDs of `channel` as the agent writes them: label added, conversion None."""
    out = []
    for crd in gatewayapi.crds(channel):
        meta = crd["metadata"]
        meta["labels"] = {**meta.get("labels", {}), labels.MANAGED_BY: labels.MANAGED_BY_VALUE}
        crd["spec"]["conversion"] = {"strategy": "None"}
        out.append(crd)
    return out


async def require_served(
    kube: client.Client, wanted: Sequence[resources.Resource], *, wait_seconds: float = 0.0
) -> None:
    """Raise `NotServedError` naming the fix unless API discovery lists every Gateway API kind
    of `wanted` (other groups are skipped), checking again for up to `wait_seconds` (discovery
    follows a new CRD shortly after it is Established). Discovery needs no RBAC."""
    wanted = [r for r in wanted if r.group.startswith("gateway.networking.")]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    missing = await _not_served(kube, wanted)
    while missing and loop.time() < deadline:
        await asyncio.sleep(_POLL_INTERVAL)
        missing = await _not_served(kube, wanted)
    if missing:
        raise NotServedError(
            f"--enable-gateway-api: the tenant cluster does not serve "
            f"{', '.join(f'{r} {r.version}' for r in missing)}; install the Gateway API CRDs "
            f"or start the agent with --install-gateway-api-crds"
        )


async def _not_served(
    kube: client.Client, wanted: Sequence[resources.Resource]
) -> list[resources.Resource]:
    served: dict[str, set[str]] = {}
    for api_version in {r.api_version for r in wanted}:
        try:
            found = await kube.request("GET", f"/apis/{api_version}")
        except errors.NotFoundError:
            found = {}
        served[api_version] = {str(r.get("name")) for r in (found or {}).get("resources", [])}
    return [r for r in wanted if r.plural not in served[r.api_version]]


def established(crd: objects.RawObject) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(
        c.get("type") == "Established" and c.get("status") == api_meta.ConditionStatus.TRUE
        for c in conditions
    )


class GatewayCRDReconciler:
    """One key per shipped CRD (cluster-scoped: empty namespace). The watch sees only CRDs with
    kubelb's label; one that lost it looks deleted here, and the apply puts the label back."""

    name = "gateway-api-crds"

    def __init__(
        self, kube: interface.KubeApi, crds: Sequence[dict[str, Any]], cached: store.Reader
    ) -> None:
        self.writer = writer.Writer(kube)
        self.crds = {objects.key_of(c): c for c in crds}
        self.cached = cached
        self.primary = crd_watch()
        self.watches: Sequence[watches.Watch] = ()

    @property
    def keys(self) -> list[objects.ObjectKey]:
        return list(self.crds)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        crd = self.crds.get(key)
        if crd is None:  # labelled by someone else: not ours to keep
            return controller.DONE
        current = self.cached.get(key)
        if current is not None and objects.is_deleting(current):
            return controller.DONE  # recreated once it is gone (the delete event)
        written = await self.writer.ensure(CUSTOM_RESOURCE_DEFINITIONS, crd, current=current)
        if written.changed:
            logger.info("Gateway API CRD %s %s", key.name, "restored" if current else "created")
        return controller.DONE


def crd_watch() -> watches.Watch:
    return watches.Watch(
        resource=CUSTOM_RESOURCE_DEFINITIONS,
        label_selector=MANAGED_SELECTOR,
        predicate=watches.spec_changed,
    )


class GatewayCRDs:
    """`await install()` at start-up, then `await run()` (with the other controllers)."""

    def __init__(
        self,
        kube: interface.KubeApi,
        informers: informer.Informers,
        channel: gatewayapi.Channel = gatewayapi.DEFAULT_CHANNEL,
        *,
        resync_period: float | None = 600.0,
    ) -> None:
        self.kube = kube
        self.channel = channel
        self.crds = desired(channel)
        watch = crd_watch()
        cache = informers.get(watch.resource, label_selector=watch.label_selector)
        self.reconciler = GatewayCRDReconciler(kube, self.crds, cache.store)
        self.controller = controller.Controller(
            self.reconciler, informers, resync_period=resync_period
        )

    async def install(self, *, wait_seconds: float = ESTABLISHED_TIMEOUT) -> None:
        """Write every CRD (no informer needed yet) and wait until each is Established."""
        began = time.monotonic()
        names = [str(c["metadata"]["name"]) for c in self.crds]
        ensure = self.reconciler.writer.ensure
        # Every write finishes before a failure is reported: none outlives a failed start, and
        # none is cancelled halfway through its connection.
        outcomes = await asyncio.gather(
            *(ensure(CUSTOM_RESOURCE_DEFINITIONS, c) for c in self.crds), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        forbidden = [f for f in failures if isinstance(f, errors.ForbiddenError)]
        if forbidden:
            raise InstallError(
                f"--install-gateway-api-crds: the agent may not write CRDs in the tenant "
                f"cluster; grant it {RBAC_RULE} ({forbidden[0]})"
            ) from forbidden[0]
        if failures:
            raise failures[0]
        try:
            async with asyncio.timeout(wait_seconds):
                await asyncio.gather(*(self._wait_established(n) for n in names))
        except TimeoutError:
            raise InstallError(
                f"Gateway API CRDs not Established after {wait_seconds:.0f}s"
            ) from None
        logger.info(
            "Gateway API CRDs %s (%s channel) installed: %d in %.1fs",
            gatewayapi.version(), self.channel, len(names), time.monotonic() - began,
        )  # fmt: skip

    async def run(self) -> None:
        """Reconcile until cancelled; every shipped CRD is checked once at start, including those
        deleted (or stripped of the label) while no agent ran."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name="gateway-crd-controller")
            await self.controller.started.wait()
            for key in self.reconciler.keys:
                self.controller.enqueue(key)

    async def _wait_established(self, name: str) -> None:
        while True:
            try:
                if established(await self.kube.get(CUSTOM_RESOURCE_DEFINITIONS, name)):
                    return
            except errors.NotFoundError:
                pass
            await asyncio.sleep(_POLL_INTERVAL)
