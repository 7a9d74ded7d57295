"""Gateway API objects (gateway.networking.k8s.io/v1) as tests write them: small valid bodies
for the CRDs that `kubelb.api.gatewayapi` ships."""

from __future__ import annotations

from typing import Any

GROUP, VERSION = "gateway.networking.k8s.io", "v1"


def gateway(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {
            "gatewayClassName": "kubelb",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
    }


def http_route(name: str, gateway_name: str, path_type: str = "PathPrefix") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": gateway_name}],
            "hostnames": ["app.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": path_type, "value": "/api"}}],
                    "backendRefs": [{"name": "app", "port": 8080}],
                }
            ],
        },
    }


def grpc_route(name: str, gateway_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GRPCRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": gateway_name}],
            "rules": [
                {
                    "matches": [{"method": {"service": "echo.Echo", "method": "Ping"}}],
                    "backendRefs": [{"name": "grpc", "port": 9000}],
                }
            ],
        },
    }
