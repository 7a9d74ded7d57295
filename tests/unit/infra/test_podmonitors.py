"""The PodMonitor setting without prometheus-operator's CRD: said once per tenant, not retried
as an error, and said again after the CRD came and went."""

from __future__ import annotations

import logging
from typing import Any

from kubelb.infra import podmonitors
from kubelb.kube import errors, writer as kwriter


class _Writer:
    """Answers like an API server that has no PodMonitor resource, until `crd` is set."""

    def __init__(self) -> None:
        self.crd = False
        self.client = self

    async def ensure(self, resource: Any, desired: dict[str, Any]) -> kwriter.Written:
        if not self.crd:
            raise errors.NotFoundError("the server could not find the requested resource")
        return kwriter.Written(desired, True)


async def test_missing_crd_is_said_once_per_tenant(caplog):
    writer = _Writer()
    monitors = podmonitors.PodMonitors(writer)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger=podmonitors.__name__):
        for _ in range(3):
            await monitors.ensure("tenant-a", enabled=True)
        await monitors.ensure("tenant-b", enabled=True)
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 2
        assert all(podmonitors.NO_CRD in m for m in warned)
        writer.crd = True
        await monitors.ensure("tenant-a", enabled=True)
        writer.crd = False
        await monitors.ensure("tenant-a", enabled=True)
    assert len(caplog.records) == 3
