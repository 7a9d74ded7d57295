import pytest

from kubelb.api import common, loadbalancer as api_lb, ports

Unpaired = ports.Unpaired


def lb_port(port: int, name: str | None = None, protocol: str = "TCP") -> api_lb.LoadBalancerPort:
    return api_lb.LoadBalancerPort.model_validate(
        {"name": name, "port": port, "protocol": protocol}
    )


def entry(*endpoint_ports: dict[str, object]) -> common.LoadBalancerEndpoints:
    return common.LoadBalancerEndpoints.model_validate(
        {"addresses": [{"ip": "10.0.0.1"}], "ports": list(endpoint_ports)}
    )


def test_port_key_is_name_or_number_and_protocol():
    assert ports.port_key(lb_port(80, "http")) == ("http", "TCP")
    assert ports.port_key(lb_port(53, protocol="UDP")) == ("53", "UDP")


def test_named_port_pairs_by_name_whatever_the_position():
    e = entry({"name": "https", "port": 30443}, {"name": "http", "port": 30080})
    assert ports.pair(lb_port(80, "http"), 0, e).target == 30080
    assert ports.pair(lb_port(443, "https"), 1, e).target == 30443


def test_named_port_prefers_the_same_protocol_among_equal_names():
    e = entry({"name": "dns", "port": 30053}, {"name": "dns", "port": 30054, "protocol": "UDP"})
    assert ports.pair(lb_port(53, "dns", "UDP"), 0, e).target == 30054
    assert ports.pair(lb_port(53, "dns", "TCP"), 1, e).target == 30053


def test_unnamed_port_pairs_by_position():
    e = entry({"port": 30080}, {"port": 30081})
    assert ports.pair(lb_port(81), 1, e).target == 30081


@pytest.mark.parametrize(
    ("port", "position", "endpoint_port", "problem"),
    [
        (lb_port(80, "web"), 0, {"name": "http", "port": 1}, Unpaired.MISSING),
        (lb_port(80), 1, {"port": 1}, Unpaired.MISSING),
        (lb_port(80, "http"), 0, {"name": "http", "port": 1, "protocol": "UDP"},
         Unpaired.PROTOCOL_MISMATCH),
        (lb_port(80), 0, {"port": 1, "protocol": "UDP"}, Unpaired.PROTOCOL_MISMATCH),
    ],
)  # fmt: skip
def test_unpaired_ports_say_why(port, position, endpoint_port, problem):
    pairing = ports.pair(port, position, entry(endpoint_port))
    assert pairing.problem is problem
    assert pairing.target is None


def test_upstream_port_comes_from_the_first_entry_that_pairs():
    without = entry({"name": "http", "port": 30080})
    with_https = entry({"name": "http", "port": 31080}, {"name": "https", "port": 31443})
    https = lb_port(443, "https")
    assert ports.upstream_port(https, 1, [without, with_https]) == 31443
    assert ports.upstream_port(lb_port(80, "http"), 0, [without, with_https]) == 30080
    assert ports.upstream_port(https, 1, [without]) is None


def test_endpoint_port_outside_1_65535_is_refused_by_the_api_and_unpaired_if_built_in_code():
    for bad in (0, 70000):
        with pytest.raises(ValueError, match="port"):
            entry({"port": bad})
    # A model built in code skips validation: pairing still refuses the port.
    built = common.LoadBalancerEndpoints.model_construct(
        addresses=(common.EndpointAddress(ip="10.0.0.1"),),
        ports=(
            common.EndpointPort.model_construct(
                name=None, port=70000, protocol=common.Protocol.TCP
            ),
        ),
    )
    pairing = ports.pair(lb_port(80), 0, built)
    assert pairing.problem is Unpaired.OUT_OF_RANGE
    assert pairing.target is None
