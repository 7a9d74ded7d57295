import pytest

from kubelb.manager import ports

HTTP = ("http", "TCP")
DNS = ("dns", "UDP")


def test_deterministic_and_independent_of_input_order():
    a = ports.allocate({"lb-a": [HTTP, DNS], "lb-b": [HTTP]}, {})
    b = ports.allocate({"lb-b": [HTTP], "lb-a": [DNS, HTTP]}, {})
    assert a.ports == b.ports
    all_ports = [p for m in a.ports.values() for p in m.values()]
    assert len(set(all_ports)) == 3
    assert all(ports.RANGE_START <= p < ports.RANGE_END for p in all_ports)


def test_recorded_ports_always_win():
    recorded = {"lb-a": {HTTP: 12345}}
    result = ports.allocate({"lb-a": [HTTP, DNS]}, recorded)
    assert result.ports["lb-a"][HTTP] == 12345
    assert result.healed == 0


def test_restart_with_stale_status_changes_nothing():
    first = ports.allocate({"lb-a": [HTTP], "lb-b": [HTTP]}, {})
    # lb-b's status write never happened before the restart: it gets the same port again.
    again = ports.allocate({"lb-a": [HTTP], "lb-b": [HTTP]}, {"lb-a": first.ports["lb-a"]})
    assert again.ports == first.ports


def test_duplicate_recorded_ports_heal_deterministically():
    recorded = {"lb-a": {HTTP: 20000}, "lb-b": {HTTP: 20000}}
    result = ports.allocate({"lb-a": [HTTP], "lb-b": [HTTP]}, recorded)
    assert result.ports["lb-a"][HTTP] == 20000  # first in key order keeps it
    assert result.ports["lb-b"][HTTP] != 20000
    assert result.healed == 1


def test_removed_port_is_freed_and_mapping_goes_by_name():
    first = ports.allocate({"lb": [HTTP, DNS]}, {})
    # The LB's port list is reordered and one port removed: the survivor keeps its port.
    second = ports.allocate({"lb": [DNS]}, first.ports)
    assert second.ports == {"lb": {DNS: first.ports["lb"][DNS]}}


def test_reserved_and_out_of_range_recorded_ports_move():
    recorded = {"lb": {HTTP: 19003, DNS: 80}}
    result = ports.allocate({"lb": [HTTP, DNS]}, recorded)
    assert result.ports["lb"][HTTP] not in ports.RESERVED
    assert result.ports["lb"][DNS] >= ports.RANGE_START


def test_exhaustion_is_a_clear_error():
    with pytest.raises(ports.PortsExhaustedError, match="no free listener port"):
        ports.allocate({"a": [HTTP], "b": [HTTP]}, {}, start=30000, end=30001, reserved=frozenset())
