"""The address pool's reading of management Services."""

from __future__ import annotations

from typing import Any

from kubelb.api import conditions
from kubelb.infra import addresspool
from kubelb.placement import pool


def test_needs_are_unique_port_protocol_pairs():
    service = {
        "spec": {
            "ports": [
                {"port": 80},
                {"port": 80, "protocol": "UDP"},
                {"port": 80, "protocol": "TCP"},
                {"name": "broken"},
            ]
        }
    }
    assert addresspool.needs_of(service) == [(80, "TCP"), (80, "UDP")]


def test_service_ips_ignore_hostnames_and_junk():
    service = {
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "127.0.0.5", "ipMode": "VIP"}, {"hostname": "h"}, "junk"]
            }
        }
    }
    assert addresspool.service_ips(service) == ["127.0.0.5"]
    assert addresspool.service_ips({}) == []


class _Store:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def list(self) -> list[dict[str, Any]]:
        return list(self.items)


class _Informer:
    def __init__(self) -> None:
        self.store = _Store()

    def add_handler(self, handler) -> None:
        pass


class _Inputs:
    def __init__(self) -> None:
        self.services, self.namespaces = _Informer(), _Informer()

    def managed(self, namespace: str) -> bool:
        return True


class _Writer:
    async def update_status(self, resource, key, mutate, current) -> None:
        mutate(dict(current.get("status") or {}))


def _service(name: str, port: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "t", "name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": port}]}}  # fmt: skip


async def test_reserved_sockets_and_probe_with_our_own_sockets_exempt():
    busy: set[tuple[str, int, str]] = set()
    inputs = _Inputs()
    address_pool = addresspool.AddressPool(
        inputs, _Writer(), ["127.0.0.1"], on_unplaced=lambda key: None,  # type: ignore[arg-type]
        probe=lambda a, p, t: (a, p, t) not in busy,
    )  # fmt: skip
    address_pool.reserve([pool.Reservation("", 8001, "kubelb xDS server")])
    busy.add(("127.0.0.1", 9000, "TCP"))  # held by another process (another kubelb's Envoy)
    inputs.services.store.items = [_service("xds", 8001), _service("taken", 9000),
                                   _service("web", 80)]  # fmt: skip
    await address_pool.assign_all()
    assert address_pool.problem("t", "xds")[0] == conditions.PORT_RESERVED  # type: ignore[index]
    assert address_pool.problem("t", "taken")[0] == conditions.PORT_CONFLICT  # type: ignore[index]
    assert address_pool.problem("t", "web") is None

    # Our data plane now holds :80 (and drains it after "web" goes): a new LoadBalancer on it
    # is ours to place, not another process's.
    busy.add(("127.0.0.1", 80, "TCP"))
    inputs.services.store.items = [_service("web2", 80)]
    await address_pool.assign_all()
    assert address_pool.problem("t", "web2") is None
