"""The API client settles its proxy from the environment once, at construction, instead of
letting aiohttp look it up (and read ~/.netrc) in a thread on every request."""

from __future__ import annotations

import pytest

from kubelb.kube import credentials, transport

SERVER = "https://10.0.0.1:6443"
PROXY = "http://proxy.example:3128"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def settled(proxy: str | None = None) -> tuple[str | None, bool]:
    api = transport.Api.connect(credentials.Endpoint(server=SERVER, proxy=proxy))
    try:
        return api.proxy, api.session.trust_env
    finally:
        await api.close()


async def test_no_proxy_configured_means_direct_and_no_per_request_lookup():
    assert await settled() == (None, False)


async def test_https_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    assert await settled() == (PROXY, False)


async def test_no_proxy_exempts_the_server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "localhost,10.0.0.1")
    assert await settled() == (None, False)


async def test_a_kubeconfig_proxy_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    assert await settled("http://other.example:8080") == ("http://other.example:8080", False)


def test_http_proxy_does_not_apply_to_an_https_server(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    assert transport.env_proxy(SERVER) is None
    assert transport.env_proxy("http://10.0.0.1:8080") == PROXY
