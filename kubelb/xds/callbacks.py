"""Hooks into the ADS server's stream lifecycle, and the ones kubelb ships (metrics).

`Callbacks` is a base class of no-op methods: subclass it and override what you need, then pass
instances to `XdsServer(callbacks=[...])`. Hooks run on the event loop, in the stream's task, so
they must be quick and must not block. An exception raised by `on_stream_open` or `on_request`
closes the stream (Envoy reconnects); one raised elsewhere is logged and ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubelb.observe import metrics
from kubelb.xds import delta as delta_ads, sotw

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class StreamInfo:
    """One ADS stream, as the hooks see it. `node_id` is empty until the first request."""

    stream_id: int
    peer: str
    node_id: str = ""
    state: sotw.StreamState = field(default_factory=sotw.StreamState, repr=False)
    # Set on delta streams; `state` is then its ordering machine.
    delta: delta_ads.DeltaStreamState | None = field(default=None, repr=False)


class Callbacks:
    """No-op hooks; see the module docstring."""

    def on_stream_open(self, stream: StreamInfo) -> None:
        """A stream was opened (before its first request: `node_id` is still empty)."""

    def on_stream_closed(self, stream: StreamInfo) -> None:
        """A stream ended, for any reason."""

    def on_request(self, stream: StreamInfo, request: Any, outcome: sotw.Outcome) -> None:
        """A DiscoveryRequest (or DeltaDiscoveryRequest) arrived and was understood as
        `outcome` (ACK, NACK, ...)."""

    def on_response(self, stream: StreamInfo, response: Any) -> None:
        """A DiscoveryResponse (or DeltaDiscoveryResponse) was sent."""


class MetricsCallbacks(Callbacks):
    """Feeds the `kubelb_envoy_control_plane_grpc_*` and NACK metrics."""

    def on_stream_open(self, stream: StreamInfo) -> None:
        metrics.XDS_GRPC_CONNECTIONS.inc()

    def on_stream_closed(self, stream: StreamInfo) -> None:
        metrics.XDS_GRPC_CONNECTIONS.dec()

    def on_request(self, stream: StreamInfo, request: Any, outcome: sotw.Outcome) -> None:
        metrics.XDS_GRPC_REQUESTS.labels(type_url=request.type_url).inc()
        if outcome is sotw.Outcome.NACK:
            metrics.XDS_NACKS.labels(snapshot_name=stream.node_id, type_url=request.type_url).inc()

    def on_response(self, stream: StreamInfo, response: Any) -> None:
        metrics.XDS_GRPC_RESPONSES.labels(type_url=response.type_url).inc()
