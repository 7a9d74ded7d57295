"""An xDS client for mTLS tests: open an ADS stream as some node with some credentials and see
what comes back; and which client certificate an Envoy holds."""

from __future__ import annotations

import json

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from kubelb.envoy import supervisor
from kubelb.pki import model
from kubelb.xds import snapshot

CLUSTERS = snapshot.CLUSTER


async def ask(
    port: int, node: str, credentials: grpc.ChannelCredentials | None
) -> tuple[list[str], grpc.StatusCode | None]:
    """Open an ADS stream as `node` and ask for clusters: (the responses' resource type URLs
    until the first response or the end, the status the stream ended with)."""
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    got: list[str] = []
    try:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources(timeout=20)
        try:
            await call.write(discovery_pb2.DiscoveryRequest(node={"id": node}, type_url=CLUSTERS))
            async for response in call:
                got.append(response.type_url)
                break  # one response is enough to have leaked a configuration
            else:
                return got, await call.code()
        except grpc.aio.AioRpcError as e:
            return got, e.code()
        call.cancel()
        return got, None
    finally:
        await channel.close()


async def envoy_client_serials(envoys: supervisor.EnvoySupervisor, node_id: str) -> set[int]:
    """Serial numbers of the client certificates the node's Envoy holds (admin /certs)."""
    _, body = await envoys.admin(node_id, "GET", "/certs")
    return {
        int(cert["serial_number"], 16)
        for entry in json.loads(body)["certificates"]
        for cert in entry.get("cert_chain", ())
    }


def client_credentials(
    authority: model.Authority, leaf: model.Leaf | None
) -> grpc.ChannelCredentials:
    if leaf is None:
        return grpc.ssl_channel_credentials(root_certificates=authority.cert_pem)
    return grpc.ssl_channel_credentials(authority.cert_pem, leaf.key, leaf.cert)
