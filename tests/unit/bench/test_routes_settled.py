"""The Route benchmark counts API writes once the manager has written what it will: every Route
finalized and applied at its generation, the Gateway counting every HTTPRoute."""

from __future__ import annotations

from typing import Any

from bench.controlplane import routes


def route(name: str, *, generation: int = 1, applied_at: int | None = 1, finalized: bool = True,
          attached: int | None = None) -> dict[str, Any]:  # fmt: skip
    conditions = [] if applied_at is None else [
        {"type": "ResourceAppliedSuccessfully", "status": "True",
         "observedGeneration": applied_at}]  # fmt: skip
    served = {} if attached is None else {"listeners": [{"attachedRoutes": attached}]}
    return {
        "metadata": {"name": name, "generation": generation,
                     "finalizers": ["kubelb.k8c.io/cleanup"] if finalized else []},
        "status": {"resources": {"route": {"conditions": conditions, "status": served}}},
    }  # fmt: skip


def test_settled_only_when_every_route_is_applied_and_attached() -> None:
    gateway = route("gw-kubelb", attached=2)
    assert routes._settled_in([gateway, route("hr-1"), route("hr-2")])
    assert not routes._settled_in([route("gw-kubelb", attached=1), route("hr-1"), route("hr-2")])
    assert not routes._settled_in([gateway, route("hr-1"), route("hr-2", finalized=False)])
    assert not routes._settled_in([gateway, route("hr-1"), route("hr-2", applied_at=None)])
    assert not routes._settled_in([gateway, route("hr-1"), route("hr-2", generation=2)])
    assert not routes._settled_in([route("hr-1")])  # no Gateway yet
