"""Active TCP connect health checks (upstream defaults: timeout and interval 5 s, unhealthy 3,
healthy 2, no-traffic interval 5 s). UDP clusters get none: there is no connect to check."""

from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2
from google.protobuf import wrappers_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import common


def build_health_check(hc: proxy.HealthCheck) -> health_check_pb2.HealthCheck:
    # An empty TcpHealthCheck (no send, no receive) is a pure connect check.
    return health_check_pb2.HealthCheck(
        timeout=common.duration(hc.timeout_seconds),
        interval=common.duration(hc.interval_seconds),
        no_traffic_interval=common.duration(hc.no_traffic_interval_seconds),
        unhealthy_threshold=wrappers_pb2.UInt32Value(value=hc.unhealthy_threshold),
        healthy_threshold=wrappers_pb2.UInt32Value(value=hc.healthy_threshold),
        tcp_health_check=health_check_pb2.HealthCheck.TcpHealthCheck(),
    )
