"""The agent's Service controller on two real API servers, with the tenant's restricted
management credentials: mapping, status back-flow, Events, deletion, scope, and the options."""

from __future__ import annotations

from typing import Any

import pytest

from kubelb.api import finalizers
from kubelb.kube import objects, resources
from tests.integration.agent.helpers import (
    find,
    idle,
    lb_service,
    load_balancers,
    service_events,
    set_lb_status,
    wait_for,
)

pytestmark = pytest.mark.integration

CONDITION_TIME = "2025-01-01T00:00:00Z"


async def created_lb(mgmt, namespace, service):
    """Wait for the LoadBalancer named by `service`'s UID; return it."""

    async def check():
        return await find(mgmt, resources.LOAD_BALANCERS, namespace, objects.uid(service))

    return await wait_for(check, what=f"LoadBalancer for Service {objects.name(service)}")


async def test_service_becomes_load_balancer(agent, tenant_setup, services_ns, tkube, mgmt):
    body = lb_service(
        "web",
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        annotations={"kubelb.k8c.io/proxy-protocol": "v2", "team": "blue",
                     "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        externalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
    )  # fmt: skip
    async with agent():
        svc = await tkube.create(resources.SERVICES, body, namespace=services_ns)
        lb = await created_lb(mgmt, tenant_setup.namespace, svc)
        node_ports = {p["name"]: p["nodePort"] for p in svc["spec"]["ports"]}
        assert objects.labels(lb) == {
            "kubelb.k8c.io/origin-name": "web",
            "kubelb.k8c.io/origin-ns": services_ns,
            "kubelb.k8c.io/tenant": tenant_setup.namespace,
        }
        assert objects.annotations(lb) == {"kubelb.k8c.io/proxy-protocol": "v2", "team": "blue"}
        assert lb["spec"]["ports"] == [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]
        assert lb["spec"]["endpoints"] == [{
            "name": "default",
            "addressesReference": {"name": "default"},
            "ports": [
                {"name": "http", "port": node_ports["http"], "protocol": "TCP"},
                {"name": "dns", "port": node_ports["dns"], "protocol": "UDP"},
            ],
        }]  # fmt: skip
        assert lb["spec"]["type"] == "LoadBalancer"
        assert lb["spec"]["externalTrafficPolicy"] == "Local"
        assert lb["spec"]["persistence"] == {"type": "SourceIP"}

        async def finalized():
            current = await tkube.get(resources.SERVICES, "web", namespace=services_ns)
            return finalizers.CLEANUP in objects.finalizers(current)

        await wait_for(finalized, what="the cleanup finalizer on the Service")

        # A spec change (a port added, an annotation removed) updates the LoadBalancer.
        await tkube.patch(resources.SERVICES, "web", {
            "metadata": {"annotations": {"team": None}},
            "spec": {"sessionAffinity": "None", "ports": [
                *svc["spec"]["ports"], {"name": "https", "port": 443, "protocol": "TCP"}]},
        }, namespace=services_ns)  # fmt: skip

        async def updated():
            current = await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace,
                                 objects.uid(svc))  # fmt: skip
            names = [p["name"] for p in current["spec"]["ports"]] if current else []
            return current if names == ["http", "dns", "https"] else None

        lb = await wait_for(updated, what="the LoadBalancer to get port https")
        assert objects.annotations(lb) == {"kubelb.k8c.io/proxy-protocol": "v2"}
        assert "persistence" not in lb["spec"]


async def test_unnamed_port_and_no_duplicate_writes(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent() as running:
        svc = await tkube.create(resources.SERVICES, lb_service("plain", {"port": 8443}),
                                 namespace=services_ns)  # fmt: skip
        lb = await created_lb(mgmt, tenant_setup.namespace, svc)
        assert lb["spec"]["ports"] == [{"name": "8443-tcp", "port": 8443, "protocol": "TCP"}]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        assert lb["spec"]["endpoints"][0]["ports"] == [
            {"name": "8443-tcp", "port": node_port, "protocol": "TCP"}
        ]
        # Reconciling again (a label on the Service) writes nothing on the management side.
        await idle(running.service_controller, what="the service controller idle")
        lb = await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace, objects.uid(svc))
        assert lb is not None
        before = running.service_controller.reconciles
        await tkube.patch(resources.SERVICES, "plain", {"metadata": {"labels": {"x": "y"}}},
                          namespace=services_ns)  # fmt: skip

        async def reconciled_again():
            return running.service_controller.reconciles > before

        await wait_for(reconciled_again, what="a reconcile after the label change")
        again = await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace, objects.uid(svc))
        assert again is not None
        assert objects.resource_version(again) == objects.resource_version(lb)


async def test_status_is_written_back_and_events_explain_pending(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent() as running:
        svc = await tkube.create(resources.SERVICES, lb_service("shop"), namespace=services_ns)
        lb = await created_lb(mgmt, tenant_setup.namespace, svc)

        async def pending_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "Pending"]

        await wait_for(pending_event, what="a Pending event before the manager answered")

        # The manager says why it is pending: the Event carries its reason and message.
        not_ready = {"type": "Ready", "status": "False", "reason": "EnvoyNotReady",
                     "message": "Envoy for tenant has 0/2 ready replicas",
                     "lastTransitionTime": CONDITION_TIME}  # fmt: skip
        await set_lb_status(mgmt, lb, {"conditions": [not_ready]})

        async def envoy_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "EnvoyNotReady"]

        [event] = await wait_for(envoy_event, what="an EnvoyNotReady event on the Service")
        assert "0/2 ready replicas" in event["message"]
        assert event["type"] == "Normal"
        assert event["involvedObject"]["name"] == "shop"

        invalid = {**not_ready, "reason": "InvalidSpec", "message": "port http: no endpoint"}
        await set_lb_status(mgmt, lb, {"conditions": [invalid]})

        async def invalid_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "InvalidSpec"]

        [event] = await wait_for(invalid_event, what="an InvalidSpec warning on the Service")
        assert event["type"] == "Warning"

        # The manager assigns an address: it lands in the Service's status.
        ingress = [{"ip": "127.0.0.42", "ports": [{"port": 80, "protocol": "TCP"}]}]
        ready = {**not_ready, "status": "True", "reason": "Reconciled", "message": "serving"}
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": ingress},
                                       "conditions": [ready]})  # fmt: skip

        async def address():
            current = await tkube.get(resources.SERVICES, "shop", namespace=services_ns)
            return objects.lookup(current, "status.loadBalancer.ingress")

        shown = await wait_for(address, what="the address in the Service status")
        # The API server adds ipMode VIP to Service ingress (Kubernetes >= 1.29).
        assert shown == [{**ingress[0], "ipMode": "VIP"}]

        async def assigned_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "AddressAssigned"]

        [event] = await wait_for(assigned_event, what="an AddressAssigned event")
        assert "127.0.0.42" in event["message"]

        # Served in part: the endpoints the hub refused reach the Service as a Warning.
        refused = {**ready, "status": "False", "reason": "EndpointRefused",
                   "message": "endpoint 127.0.0.1:9443 is refused: it is one of the hub's own "
                   "sockets"}  # fmt: skip
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": ingress},
                                       "conditions": [refused]})  # fmt: skip

        async def refused_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "EndpointRefused"]

        [event] = await wait_for(refused_event, what="an EndpointRefused warning on the Service")
        assert event["type"] == "Warning"
        assert "127.0.0.1:9443 is refused" in event["message"]
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": ingress},
                                       "conditions": [ready]})  # fmt: skip

        # Reconciling again does not rewrite an equal status (ipMode aside).
        written = await tkube.get(resources.SERVICES, "shop", namespace=services_ns)
        before = running.service_controller.reconciles
        await mgmt.patch(resources.LOAD_BALANCERS, objects.name(lb),
                         {"metadata": {"labels": {"touched": "yes"}}},
                         namespace=tenant_setup.namespace)  # fmt: skip

        async def reconciled_again():
            return running.service_controller.reconciles > before

        await wait_for(reconciled_again, what="a reconcile after the LoadBalancer changed")
        unchanged = await tkube.get(resources.SERVICES, "shop", namespace=services_ns)
        assert objects.resource_version(unchanged) == objects.resource_version(written)

        # A new address replaces the old one.
        moved = [{"ip": "127.0.0.43"}]
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": moved}, "conditions": [ready]})

        async def moved_address():
            value = await address()
            return value if value == [{**moved[0], "ipMode": "VIP"}] else None

        await wait_for(moved_address, what="the new address in the Service status")


async def test_deleting_the_service_deletes_the_load_balancer(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent():
        svc = await tkube.create(resources.SERVICES, lb_service("gone"), namespace=services_ns)
        await created_lb(mgmt, tenant_setup.namespace, svc)
        await tkube.delete(resources.SERVICES, "gone", namespace=services_ns)

        async def cleaned():
            lb = await find(mgmt, resources.LOAD_BALANCERS, tenant_setup.namespace,
                            objects.uid(svc))  # fmt: skip
            left = await find(tkube, resources.SERVICES, services_ns, "gone")
            return lb is None and left is None

        await wait_for(cleaned, what="the LoadBalancer deleted and the Service gone")


async def test_other_service_types_are_ignored(agent, tenant_setup, services_ns, tkube, mgmt):
    others: list[dict[str, Any]] = [
        {"metadata": {"name": "cip"}, "spec": {"ports": [{"port": 80}]}},
        {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
        {"metadata": {"name": "ext"},
         "spec": {"type": "ExternalName", "externalName": "db.example.com"}},
    ]  # fmt: skip
    async with agent() as running:
        for body in others:
            await tkube.create(resources.SERVICES, body, namespace=services_ns)
        # A LoadBalancer Service created last: once it is served, the others were seen too.
        svc = await tkube.create(resources.SERVICES, lb_service("lb"), namespace=services_ns)
        await created_lb(mgmt, tenant_setup.namespace, svc)

        async def all_seen():
            return running.service_controller.reconciles >= len(others) + 1

        await wait_for(all_seen, what="every Service reconciled")
        assert len(await load_balancers(mgmt, tenant_setup.namespace)) == 1
        for body in others:
            current = await tkube.get(resources.SERVICES, objects.name(body),
                                      namespace=services_ns)  # fmt: skip
            assert objects.finalizers(current) == []

        # Changing type away from LoadBalancer tears the LoadBalancer down.
        await set_lb_status(mgmt, await created_lb(mgmt, tenant_setup.namespace, svc),
                            {"loadBalancer": {"ingress": [{"ip": "127.0.0.44"}]}})  # fmt: skip

        async def has_address():
            current = await tkube.get(resources.SERVICES, "lb", namespace=services_ns)
            return objects.lookup(current, "status.loadBalancer.ingress")

        await wait_for(has_address, what="the address before the type change")
        await tkube.patch(resources.SERVICES, "lb", {"spec": {"type": "NodePort"}},
                          namespace=services_ns)  # fmt: skip

        async def torn_down():
            current = await tkube.get(resources.SERVICES, "lb", namespace=services_ns)
            lbs = await load_balancers(mgmt, tenant_setup.namespace)
            clean = not objects.finalizers(current) and not objects.lookup(
                current, "status.loadBalancer.ingress")  # fmt: skip
            return clean and not lbs

        await wait_for(torn_down, what="LoadBalancer, finalizer and status gone after NodePort")


async def test_load_balancer_class_filter(agent, tenant_setup, services_ns, tkube, mgmt):
    async with agent(use_loadbalancer_class=True) as running:
        other = await tkube.create(
            resources.SERVICES, lb_service("other", loadBalancerClass="example.com/other"),
            namespace=services_ns)  # fmt: skip
        unclassed = await tkube.create(resources.SERVICES, lb_service("unclassed"),
                                       namespace=services_ns)  # fmt: skip
        ours = await tkube.create(resources.SERVICES,
                                  lb_service("ours", loadBalancerClass="kubelb"),
                                  namespace=services_ns)  # fmt: skip
        await created_lb(mgmt, tenant_setup.namespace, ours)

        async def all_seen():
            return running.service_controller.reconciles >= 3

        await wait_for(all_seen, what="every Service reconciled")
        names = [objects.name(lb) for lb in await load_balancers(mgmt, tenant_setup.namespace)]
        assert names == [objects.uid(ours)]
        for svc in (other, unclassed):
            current = await tkube.get(resources.SERVICES, objects.name(svc), namespace=services_ns)
            assert objects.finalizers(current) == []


async def test_without_cloud_provider_the_service_ingress_is_the_endpoint(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent(enable_cloud_provider=False) as running:
        svc = await tkube.create(resources.SERVICES, lb_service("chained"), namespace=services_ns)

        async def waiting_event():
            found = await service_events(tkube, svc)
            return [e for e in found if e["reason"] == "WaitingForServiceAddress"]

        await wait_for(waiting_event, what="an Event saying the agent waits for an address")
        assert await load_balancers(mgmt, tenant_setup.namespace) == []

        # Another load-balancer implementation publishes its address on the Service.
        current = await tkube.get(resources.SERVICES, "chained", namespace=services_ns)
        theirs = {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "lb.example.com"}]}
        await tkube.replace_status(resources.SERVICES,
                                   {**current, "status": {"loadBalancer": theirs}})  # fmt: skip
        lb = await created_lb(mgmt, tenant_setup.namespace, svc)
        node_port = svc["spec"]["ports"][0]["nodePort"]
        assert lb["spec"]["endpoints"] == [{
            "name": "default",
            "addresses": [{"ip": "198.51.100.7"}, {"hostname": "lb.example.com"}],
            "ports": [{"name": "80-tcp", "port": node_port, "protocol": "TCP"}],
        }]  # fmt: skip
        # KubeLB's own address is not copied over the other implementation's.
        before = running.service_controller.reconciles
        await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": [{"ip": "127.0.0.45"}]}})

        async def reconciled_again():
            return running.service_controller.reconciles > before

        await wait_for(reconciled_again, what="a reconcile after the LoadBalancer status")
        after = await tkube.get(resources.SERVICES, "chained", namespace=services_ns)
        shown = objects.lookup(after, "status.loadBalancer.ingress")
        assert shown == [{"ip": "198.51.100.7", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]


async def test_ports_kubelb_cannot_serve_are_explained(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent():
        sctp = {"name": "diameter", "port": 3868, "protocol": "SCTP"}
        body = lb_service("mixed", {"name": "http", "port": 80}, sctp)
        mixed = await tkube.create(resources.SERVICES, body, namespace=services_ns)
        lb = await created_lb(mgmt, tenant_setup.namespace, mixed)
        assert [p["name"] for p in lb["spec"]["ports"]] == ["http"]

        async def sctp_warning():
            found = await service_events(tkube, mixed)
            return [e for e in found if e["reason"] == "UnsupportedProtocol"]

        [event] = await wait_for(sctp_warning, what="a warning about the SCTP port")
        assert event["type"] == "Warning"
        assert "diameter" in event["message"]

        portless = await tkube.create(resources.SERVICES, lb_service(
            "portless", {"name": "http", "port": 80}, allocateLoadBalancerNodePorts=False),
            namespace=services_ns)  # fmt: skip

        async def no_ports():
            found = await service_events(tkube, portless)
            reasons = {e["reason"] for e in found}
            return {"NoNodePort", "NoPorts"} <= reasons

        await wait_for(no_ports, what="warnings that the Service has no NodePort")
        names = [objects.name(x) for x in await load_balancers(mgmt, tenant_setup.namespace)]
        assert names == [objects.uid(mixed)]
