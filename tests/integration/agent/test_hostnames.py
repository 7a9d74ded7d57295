"""The agent shows a LoadBalancer's published hostname (`status.hostname`) on the tenant
Service's `status.loadBalancer.ingress[].hostname`, beside the address, as upstream's CCM does;
a hostname withdrawn leaves the address alone."""

from __future__ import annotations

import pytest

from kubelb.kube import objects, resources
from tests.integration.agent.helpers import lb_service, set_lb_status, wait_for
from tests.integration.agent.test_services import created_lb

pytestmark = pytest.mark.integration

HOSTNAME = "0123456789abcdef.lb.example.com"


async def test_hostname_copied_to_the_service(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent():
        svc = await tkube.create(resources.SERVICES, lb_service("shop"), namespace=services_ns)
        lb = await created_lb(mgmt, tenant_setup.namespace, svc)
        ingress = [{"ip": "127.0.0.42"}]
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": ingress},
                                       "hostname": {"hostname": HOSTNAME}})  # fmt: skip

        async def shown(expected):
            async def check():
                current = await tkube.get(resources.SERVICES, "shop", namespace=services_ns)
                value = objects.lookup(current, "status.loadBalancer.ingress")
                return value if value == expected else None

            return check

        want = [{"ip": "127.0.0.42", "hostname": HOSTNAME, "ipMode": "VIP"}]
        await wait_for(await shown(want), what="the hostname on the Service's ingress")

        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": ingress}})
        without = [{"ip": "127.0.0.42", "ipMode": "VIP"}]
        await wait_for(await shown(without), what="the hostname gone, the address kept")
