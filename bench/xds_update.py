"""What one change costs on the wire: state-of-the-world vs delta xDS, in the same invocation.

A tenant with N LoadBalancer listeners is fully served to a simulated Envoy (the real per-stream
state machines, ACKing every response and subscribing to every EDS name); then one more
LoadBalancer is added, or one endpoint of an existing one moves, and every response until the
stream is in sync again is encoded as the server would send it. Reports bytes and responses per
change, and the control plane's time to plan and encode them (median of runs), for both flavours.

`python -m bench.xds_update [--listeners 1000] [--runs 7]`
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import time
from collections.abc import Collection
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from bench import results_file, xds_snapshot
from kubelb.ir import proxy
from kubelb.xds import delta, server, snapshot, sotw

FLAVOURS = ("sotw", "delta")


class SimulatedEnvoy:
    """One ADS stream: subscribes like Envoy, ACKs every response, counts what it receives."""

    def __init__(self, flavour: str) -> None:
        self.delta = flavour == "delta"
        self.state: Any = delta.DeltaStreamState() if self.delta else sotw.StreamState()
        self.nonces = itertools.count(1)
        self.subscribed: set[str] = set()
        self.bytes = 0
        self.responses = 0
        for type_url in (snapshot.CLUSTER, snapshot.LISTENER):
            self.state.receive(self._request(type_url, ""))

    def converge(self, snap: snapshot.Snapshot) -> None:
        while True:
            self._subscribe(snap)
            planned = self.state.plan(snap)
            if not planned:
                return
            for push in planned:
                if self.delta and not isinstance(push, delta.DeltaPush):
                    self.state.held(push)
                    continue
                nonce = str(next(self.nonces))
                encode = server.delta_response if self.delta else server.sotw_response
                self.bytes += len(encode(push, nonce).SerializeToString())
                self.responses += 1
                self.state.sent(push, nonce)
                self.state.receive(self._request(push.type_url, nonce))

    def _subscribe(self, snap: snapshot.Snapshot) -> None:
        wanted = set(snap.eds_names())
        if wanted != self.subscribed:
            added, dropped = wanted - self.subscribed, self.subscribed - wanted
            self.subscribed = wanted
            self.state.receive(self._request(snapshot.ENDPOINT, "", added, dropped))

    def _request(
        self, type_url: str, nonce: str, added: Collection[str] = (), dropped: Collection[str] = ()
    ) -> Any:
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, response_nonce=nonce,
                resource_names_subscribe=sorted(added), resource_names_unsubscribe=sorted(dropped),
            )  # fmt: skip
        names = sorted(self.subscribed) if type_url == snapshot.ENDPOINT else []
        return discovery_pb2.DiscoveryRequest(
            type_url=type_url, response_nonce=nonce, resource_names=names
        )


def changes(config: proxy.ProxyConfig) -> dict[str, proxy.ProxyConfig]:
    """Each change applied to `config`, by name."""
    grown = xds_snapshot.lb_config(len(config.listeners) + 1, len(config.clusters[0].endpoints))
    first = config.clusters[0]
    moved = dataclasses.replace(
        first, endpoints=(*first.endpoints[1:], proxy.Endpoint(address="10.99.0.1", port=30000))
    )
    return {
        "add one LoadBalancer": grown,
        "move one endpoint": dataclasses.replace(config, clusters=(moved, *config.clusters[1:])),
    }


def measure(flavour: str, before: snapshot.Snapshot, after: snapshot.Snapshot) -> dict[str, Any]:
    envoy = SimulatedEnvoy(flavour)
    envoy.converge(before)
    envoy.bytes = envoy.responses = 0
    start = time.perf_counter()
    envoy.converge(after)
    return {"seconds": time.perf_counter() - start, "bytes": envoy.bytes,
            "responses": envoy.responses}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.xds_update")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    results_file.add_arguments(parser, "20 listeners, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.listeners, args.runs = 20, 1
    config = xds_snapshot.lb_config(args.listeners, args.endpoints)
    before = xds_snapshot.build(config)
    result: dict[str, Any] = {"listeners": args.listeners, "runs": args.runs, "changes": {}}
    for change, changed in changes(config).items():
        after = xds_snapshot.build(changed)
        runs: dict[str, list[dict[str, Any]]] = {f: [] for f in FLAVOURS}
        for _ in range(args.runs):
            for flavour in FLAVOURS:  # interleaved, so both see the same machine
                runs[flavour].append(measure(flavour, before, after))
        row = {
            flavour: {
                "bytes": samples[0]["bytes"],
                "responses": samples[0]["responses"],
                "median_seconds": round(statistics.median(s["seconds"] for s in samples), 5),
            }
            for flavour, samples in runs.items()
        }
        row["delta_vs_sotw_bytes"] = round(row["delta"]["bytes"] / row["sotw"]["bytes"], 4)
        row["delta_vs_sotw_seconds"] = round(
            row["delta"]["median_seconds"] / row["sotw"]["median_seconds"], 3
        )
        result["changes"][change] = row
    results_file.write("xds_update", result, results_file.folder(args))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
