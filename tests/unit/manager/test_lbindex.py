"""The per-namespace LoadBalancer index: follows store changes, and its allocator fast path
answers exactly what a full allocation would."""

from __future__ import annotations

import random
from typing import Any

from kubelb.api import loadbalancer as api_lb, ports as api_ports
from kubelb.kube import objects
from kubelb.manager import lbindex, lbservice, ports


def raw_lb(
    name: str,
    namespace: str = "tenant-a",
    *,
    lb_ports: tuple[str, ...] = ("p",),
    recorded: dict[str, int] | None = None,
    deleting: bool = False,
    version: str = "1",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": version}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec_ports = [{"name": p, "port": 80 + i} for i, p in enumerate(lb_ports)]
    status_ports = [
        {"name": p, "port": 80, "protocol": "TCP", "targetPort": port, "upstreamTargetPort": 1}
        for p, port in (recorded or {}).items()
    ]
    return {
        "metadata": meta,
        "spec": {"ports": spec_ports, "endpoints": [{"addresses": [{"ip": "10.0.0.1"}]}]},
        "status": {"service": {"ports": status_ports}},
    }


class Parser:
    """One model per raw object, as the manager's parse cache hands out."""

    def __init__(self) -> None:
        self.models: dict[int, api_lb.LoadBalancer | None] = {}
        self.seen: list[objects.RawObject] = []  # kept alive, so ids are not reused

    def __call__(self, raw: objects.RawObject) -> api_lb.LoadBalancer | None:
        if id(raw) not in self.models:
            self.seen.append(raw)
            try:
                self.models[id(raw)] = api_lb.LoadBalancer.model_validate(raw)
            except ValueError:
                self.models[id(raw)] = None
        return self.models[id(raw)]


def test_follows_adds_updates_deletes_and_deletion_marks():
    parse = Parser()
    index = lbindex.LoadBalancerIndex(parse)
    objs = {n: raw_lb(n) for n in ("c", "a", "b")}
    for raw in objs.values():
        index.update(objects.key_of(raw), raw)
    index.update(objects.ObjectKey("other", "x"), raw_lb("x", "other"))
    assert [lb.name for lb in index.live("tenant-a")] == ["a", "b", "c"]
    assert index.count("tenant-a") == 3
    assert index.held("tenant-a") == (3, 3)

    index.update(objects.ObjectKey("tenant-a", "b"), raw_lb("b", deleting=True))
    invalid = raw_lb("c")
    invalid["spec"]["ports"] = "nope"
    index.update(objects.ObjectKey("tenant-a", "c"), invalid)
    assert [lb.name for lb in index.live("tenant-a")] == ["a"]
    index.update(objects.ObjectKey("tenant-a", "a"), raw_lb("a", lb_ports=("p", "q"), version="2"))
    assert index.held("tenant-a") == (2, 1)
    index.update(objects.ObjectKey("tenant-a", "a"), None)
    assert index.live("tenant-a") == []
    assert index.count("tenant-a") == 0
    assert index.held("tenant-a") == (0, 0)
    assert index.count("other") == 1


def test_fast_path_only_for_the_indexed_version():
    parse = Parser()
    index = lbindex.LoadBalancerIndex(parse)
    raw = raw_lb("a", recorded={"p": 20000})
    index.update(objects.key_of(raw), raw)
    current = parse(raw)
    assert current is not None
    assert index.keeps_recorded(current) == {("p", "TCP"): 20000}
    stale = api_lb.LoadBalancer.model_validate(raw)
    assert index.keeps_recorded(stale) is None


def test_fast_path_agrees_with_a_full_allocation():
    """Random tenants with shared, reserved, out-of-range and missing recorded ports: whenever
    the index answers, the answer is what `ports.allocate` over the namespace gives."""
    rng = random.Random(5)
    answered = 0
    for _ in range(600):
        parse = Parser()
        index = lbindex.LoadBalancerIndex(parse)
        choices = [20000, 20001, 20002, 9001, 70000, 5]
        for i in range(rng.randint(1, 6)):
            names = tuple(rng.sample(["p", "q", "r"], rng.randint(1, 3)))
            recorded = {n: rng.choice(choices) for n in names if rng.random() < 0.8}
            raw = raw_lb(f"lb{i}", lb_ports=names, recorded=recorded)
            index.update(objects.key_of(raw), raw)
        lbs = index.live("tenant-a")
        wanted = {lb.name: [api_ports.port_key(p) for p in lb.spec.ports] for lb in lbs}
        recorded_all = {lb.name: lbservice.recorded_ports(lb) for lb in lbs}
        full = ports.allocate(wanted, recorded_all)
        for lb in lbs:
            fast = index.keeps_recorded(lb)
            if fast is not None:
                answered += 1
                assert dict(fast) == dict(full.ports[lb.name]), (lb.name, wanted, recorded_all)
    assert answered > 100  # the fast path is taken often enough for this to test something


def test_allocation_inputs_match_the_models_and_change_version_on_every_update():
    """The allocator allocates from these inputs and memoizes per version: the inputs must be
    what listing and parsing the namespace would give, and any change must show in `version`,
    including a namespace emptied and filled again (its versions are never reused)."""
    parse = Parser()
    index = lbindex.LoadBalancerIndex(parse)
    assert index.allocation_inputs("tenant-a").wanted == {}
    seen: set[int] = set()
    previous: Any = None
    rng = random.Random(7)
    for step in range(300):
        name = f"lb{rng.randint(0, 5)}"
        if rng.random() < 0.25:
            index.update(objects.ObjectKey("tenant-a", name), None)
        else:
            names = tuple(rng.sample(["p", "q", "r"], rng.randint(1, 3)))
            recorded = {n: rng.choice([20000, 20001, 5]) for n in names if rng.random() < 0.7}
            raw = raw_lb(name, lb_ports=names, recorded=recorded, version=str(step))
            index.update(objects.key_of(raw), raw)
        inputs = index.allocation_inputs("tenant-a")
        lbs = index.live("tenant-a")
        assert dict(inputs.models) == {lb.name: lb for lb in lbs}
        wanted = {
            lb.name: tuple(sorted({api_ports.port_key(p) for p in lb.spec.ports})) for lb in lbs
        }
        assert dict(inputs.wanted) == wanted
        full = ports.allocate(wanted, {lb.name: lbservice.recorded_ports(lb) for lb in lbs})
        assert ports.allocate(inputs.wanted, inputs.recorded) == full
        state = (dict(inputs.wanted), {n: dict(r) for n, r in inputs.recorded.items()})
        if state != previous and inputs.models:  # an empty namespace has nothing to memoize
            assert inputs.version not in seen, step
        seen.add(inputs.version)
        previous = state
