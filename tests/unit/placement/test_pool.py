import pytest

from kubelb.placement import pool


def test_parse_pool_ips_and_cidrs_keep_order_and_dedupe():
    assert pool.parse_pool("127.0.0.5, 127.0.0.1/30,127.0.0.5") == (
        "127.0.0.5",
        "127.0.0.1",
        "127.0.0.2",
    )
    assert pool.parse_pool("10.0.0.7/32") == ("10.0.0.7",)
    assert pool.parse_pool(["::1", "fd00::/127"]) == ("::1", "fd00::", "fd00::1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("127.0.0.1,nope", "'nope' is not an IP address or CIDR"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.0/8", "more than 65536"),
    ],
)
def test_parse_pool_errors_name_the_entry(spec, message):
    with pytest.raises(pool.PoolError, match=message):
        pool.parse_pool(spec)


TCP80 = [(80, "TCP")]


def test_first_free_address_in_pool_order():
    result = pool.assign(["127.0.0.1", "127.0.0.2"], {"a/x": TCP80, "a/y": TCP80}, {})
    assert result.addresses == {"a/x": "127.0.0.1", "a/y": "127.0.0.2"}
    assert not result.unplaced


def test_tcp_and_udp_share_a_port():
    result = pool.assign(["127.0.0.1"], {"a": [(53, "TCP")], "b": [(53, "UDP")]}, {})
    assert result.addresses == {"a": "127.0.0.1", "b": "127.0.0.1"}


def test_existing_assignment_is_sticky_even_when_a_newcomer_sorts_first():
    previous = {"z/late": "127.0.0.1"}
    result = pool.assign(["127.0.0.1", "127.0.0.2"], {"a/new": TCP80, "z/late": TCP80}, previous)
    assert result.addresses == {"z/late": "127.0.0.1", "a/new": "127.0.0.2"}


def test_conflict_on_single_address_names_the_holder():
    result = pool.assign(["127.0.0.1"], {"a/one": TCP80, "b/two": [(80, "TCP"), (81, "TCP")]}, {})
    assert result.addresses == {"a/one": "127.0.0.1"}
    why = result.unplaced["b/two"]
    assert why.reason == "PortConflict"
    assert "a/one (127.0.0.1:80/TCP)" in why.message


def test_exhausted_pool_reason():
    result = pool.assign(["127.0.0.1", "127.0.0.2"], {"a": TCP80, "b": TCP80, "c": TCP80}, {})
    assert result.unplaced["c"].reason == "AddressPoolExhausted"


def test_freed_address_is_reused_by_a_pending_lb():
    first = pool.assign(["127.0.0.1"], {"a": TCP80, "b": TCP80}, {})
    assert "b" in first.unplaced
    second = pool.assign(["127.0.0.1"], {"b": TCP80}, first.addresses)
    assert second.addresses == {"b": "127.0.0.1"}


def test_previous_address_outside_pool_is_replaced():
    result = pool.assign(["127.0.0.2"], {"a": TCP80}, {"a": "127.0.0.1"})
    assert result.addresses == {"a": "127.0.0.2"}
