"""The duplicate-listener guard: first listener in name order wins its bind address."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy


def _config(*binds: str) -> proxy.ProxyConfig:
    """Each bind is "name address port protocol"."""
    listeners = []
    for bind in binds:
        name, address, port, protocol = bind.split()
        listeners.append(
            proxy.Listener(
                name=name,
                address=address,
                port=int(port),
                protocol=proxy.Protocol(protocol),
                clusters=(name,),
            )
        )
    clusters = tuple(proxy.Cluster(name=li.name, protocol=li.protocol) for li in listeners)
    return proxy.ProxyConfig(node_id="n", listeners=tuple(listeners), clusters=clusters)


@pytest.mark.parametrize(
    ("binds", "kept"),
    [
        pytest.param(["a 0.0.0.0 80 TCP", "b 0.0.0.0 80 TCP"], ["a"], id="same"),
        pytest.param(["b 0.0.0.0 80 TCP", "a 0.0.0.0 80 TCP"], ["a"], id="by-name"),
        pytest.param(["a 0.0.0.0 53 TCP", "b 0.0.0.0 53 UDP"], ["a", "b"], id="tcp-udp"),
        pytest.param(["a 0.0.0.0 80 HTTP", "b 0.0.0.0 80 TCP"], ["a"], id="http-is-tcp"),
        pytest.param(["a 127.0.0.2 80 TCP", "b 0.0.0.0 80 TCP"], ["a"], id="specific-first"),
        pytest.param(["a 0.0.0.0 80 TCP", "b 127.0.0.2 80 TCP"], ["a"], id="wildcard-first"),
        pytest.param(["a 127.0.0.2 80 TCP", "b 127.0.0.3 80 TCP"], ["a", "b"], id="two-ips"),
        pytest.param(["a 127.0.0.2 80 TCP", "b :: 80 TCP"], ["a", "b"], id="v4-vs-v6-any"),
        pytest.param(["a ::1 80 TCP", "b 0.0.0.0 80 TCP"], ["a", "b"], id="v6-vs-v4-any"),
        pytest.param(["a ::1 80 TCP", "b :: 80 TCP"], ["a"], id="v6-specific-first"),
        pytest.param(["a :: 80 TCP", "b ::1 80 TCP"], ["a"], id="v6-wildcard-first"),
        pytest.param(["a ::1 80 TCP", "b 0:0:0:0:0:0:0:1 80 TCP"], ["a"], id="v6-canonical"),
        pytest.param(["a 0.0.0.0 80 TCP", "b 0.0.0.0 81 TCP"], ["a", "b"], id="ports"),
    ],
)
def test_first_listener_per_bind_address_wins(binds, kept) -> None:
    result = proxy.drop_conflicting_listeners(_config(*binds))
    assert [li.name for li in result.listeners] == kept
    assert sorted(li.name for li in result.dropped_listeners) == sorted(
        {b.split()[0] for b in binds} - set(kept)
    )
    # A dropped listener's cluster goes with it; the winners' clusters stay.
    assert [c.name for c in result.clusters] == kept


def test_no_conflict_returns_the_same_config() -> None:
    config = _config("a 0.0.0.0 80 TCP", "b 0.0.0.0 81 TCP")
    assert proxy.drop_conflicting_listeners(config) is config


def test_shared_cluster_survives_when_one_user_is_dropped() -> None:
    shared = proxy.Cluster(name="shared", protocol=proxy.Protocol.TCP)
    listeners = tuple(
        proxy.Listener(
            name=n, address="0.0.0.0", port=80, protocol=proxy.Protocol.TCP, clusters=("shared",)
        )
        for n in ("a", "b")
    )
    config = proxy.ProxyConfig(node_id="n", listeners=listeners, clusters=(shared,))
    result = proxy.drop_conflicting_listeners(config)
    assert [li.name for li in result.listeners] == ["a"]
    assert result.clusters == (shared,)
