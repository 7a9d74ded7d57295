import collections

from kubelb.dataplane import balancer


class T:
    def __init__(self, key: str, state: str = "healthy") -> None:
        self.key = key
        self.state = state

    @property
    def available(self) -> bool:
        return self.state == "healthy"

    @property
    def pending(self) -> bool:
        return self.state == "pending"


def key(target: T | None) -> str:
    assert target is not None
    return target.key


class C:
    def __init__(self, targets: list[T]) -> None:
        self.targets = targets
        self.version = 0


def test_maglev_table_is_balanced_and_deterministic():
    keys = [f"10.0.0.{i}:80" for i in range(5)]
    table = balancer.maglev_table(keys)
    counts = collections.Counter(table)
    assert len(table) == balancer.TABLE_SIZE
    assert set(counts) == set(range(5))
    assert max(counts.values()) - min(counts.values()) <= len(table) * 0.02
    assert balancer.maglev_table(keys) == table


def test_maglev_moves_few_slots_when_a_target_is_added():
    keys = [f"10.0.0.{i}:80" for i in range(4)]
    before = [keys[i] for i in balancer.maglev_table(keys)]
    grown = [*keys, "10.0.0.9:80"]
    after = [grown[i] for i in balancer.maglev_table(grown)]
    moved = sum(1 for a, b in zip(before, after, strict=True) if a != b)
    # Ideal is 1/5 of the slots; Maglev stays close to it.
    assert moved < len(before) * 0.3
    to_new = sum(1 for a, b in zip(before, after, strict=True) if a != b and b == "10.0.0.9:80")
    assert to_new >= moved * 0.9


def test_round_robin_skips_unhealthy_targets():
    c = C([T("a"), T("b", "unhealthy"), T("c")])
    picker = balancer.Picker([c], persistent=False)
    picks = [key(picker.pick()) for _ in range(4)]
    assert sorted(set(picks)) == ["a", "c"]
    assert picks[0] != picks[1]


def test_pending_targets_serve_only_when_none_is_healthy():
    c = C([T("a", "pending"), T("b", "unhealthy")])
    picker = balancer.Picker([c], persistent=False)
    assert key(picker.pick()) == "a"
    c.targets[1].state = "healthy"
    c.version += 1
    assert {key(picker.pick()) for _ in range(3)} == {"b"}


def test_nothing_available_gives_none():
    picker = balancer.Picker([C([T("a", "unhealthy")])], persistent=False)
    assert picker.pick() is None


def test_persistence_is_sticky_and_follows_health():
    c = C([T("a"), T("b"), T("c")])
    picker = balancer.Picker([c], persistent=True)
    owners = {ip: key(picker.pick(ip)) for ip in (f"192.0.2.{i}" for i in range(50))}
    assert len(set(owners.values())) == 3
    assert all(key(picker.pick(ip)) == owner for ip, owner in owners.items())
    c.targets[0].state = "unhealthy"
    c.version += 1
    after = {ip: key(picker.pick(ip)) for ip in owners}
    # Only the clients of the failed target move.
    assert all(after[ip] == owner for ip, owner in owners.items() if owner != "a")
    assert "a" not in after.values()


def test_exclude_gives_another_target():
    c = C([T("a"), T("b")])
    picker = balancer.Picker([c], persistent=True)
    first = picker.pick("192.0.2.1")
    assert picker.pick("192.0.2.1", exclude=first) is not first


def weighted(*weights: int, persistent: bool = False) -> balancer.Weighted[T]:
    """Backend i has two endpoints, `bi-0` and `bi-1`."""
    return balancer.Weighted(
        [
            (balancer.Picker([C([T(f"b{i}-0"), T(f"b{i}-1")])], persistent=persistent), w)
            for i, w in enumerate(weights)
        ],
        persistent=persistent,
    )


def test_weights_are_followed_exactly_over_each_cycle():
    w = weighted(1, 3, 0, 6)
    seen = collections.Counter(key(w.pick()).split("-")[0] for _ in range(10 * 10))
    assert seen == {"b0": 10, "b1": 30, "b3": 60}


def test_the_endpoint_is_chosen_within_the_backend():
    w = weighted(1, 1)
    seen = collections.Counter(key(w.pick()) for _ in range(8))
    assert seen == {"b0-0": 2, "b0-1": 2, "b1-0": 2, "b1-1": 2}


def test_a_backend_without_endpoints_takes_its_share_as_no_target():
    w = balancer.Weighted(
        [(balancer.Picker([C([T("a")])], persistent=False), 1),
         (balancer.Picker([C([T("down", "unhealthy")])], persistent=False), 1)],
        persistent=False,
    )  # fmt: skip
    assert sorted(str(t and t.key) for t in (w.pick() for _ in range(4))) == [
        "None", "None", "a", "a",
    ]  # fmt: skip


def test_persistent_clients_stay_on_one_backend_and_spread_by_weight():
    w = weighted(1, 3, persistent=True)
    chosen = {}
    for i in range(400):
        ip = f"10.1.{i // 250}.{i % 250}"
        picks = {key(w.pick(ip)) for _ in range(3)}
        assert len(picks) == 1
        chosen[ip] = picks.pop().split("-")[0]
    share = collections.Counter(chosen.values())["b1"] / len(chosen)
    assert 0.65 < share < 0.85, share


def test_only_zero_weights_pick_nothing():
    assert weighted(0).pick() is None
