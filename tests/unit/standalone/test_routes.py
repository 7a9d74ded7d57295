"""Routes in standalone mode, in process with the offline driver: the namespace's L7 entry keeps
its pool address across a restart, as LoadBalancers keep theirs."""

import textwrap

from kubelb.infra import routeentry
from kubelb.manager import l7entry
from tests.unit.standalone.test_standalone import cfg, lb_yaml, running, settled

GATEWAY = textwrap.dedent(
    """\
    apiVersion: kubelb.k8c.io/v1alpha1
    kind: Route
    metadata: {name: gw, namespace: demo}
    spec:
      endpoints: [{addresses: [{ip: 127.0.0.11}]}]
      source:
        kubernetes:
          resource:
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: kubelb, namespace: default}
            spec:
              gatewayClassName: kubelb
              listeners: [{name: http, port: 18188, protocol: HTTP}]
    """
)


def entry_address(app) -> str | None:
    service = app.core.inputs.service("demo", l7entry.entry_service_name("demo"))
    entry = routeentry.pool_entry(service)
    return entry.external if entry is not None else None


async def test_the_l7_entry_keeps_its_address_across_a_restart(tmp_path):
    (cfg(tmp_path) / "gw.yaml").write_text(GATEWAY)
    pool = ("127.0.0.1", "127.0.0.2")
    async with running(tmp_path, pool) as app:
        doc = await settled(app, lambda doc: doc["routes"] and doc["routes"][0]["applied"])
        assert entry_address(app) == "127.0.0.1"
        assert doc["routes"][0]["kind"] == "Gateway"
    # After a restart a LoadBalancer on the same port, sorting first, must not take its address.
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 18188))
    async with running(tmp_path, pool) as app:
        doc = await settled(app, lambda doc: doc["routes"] and doc["routes"][0]["applied"])
        assert entry_address(app) == "127.0.0.1"
        assert [lb["address"] for lb in doc["loadBalancers"]] == ["127.0.0.2"]
