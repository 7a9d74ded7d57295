from kubelb.commands import status

STANDALONE = {
    "pool": ["127.0.0.1"],
    "dataplane": {"kind": "envoy", "ready": True},
    "errors": ["lbs.yaml: something broke"],
    "warnings": [],
    "loadBalancers": [
        {
            "namespace": "shop",
            "name": "web",
            "source": "lbs.yaml",
            "address": "127.0.0.1",
            "ready": True,
            "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Reconciled", "message": ""}
            ],
            "errors": [],
        },
        {
            "namespace": "shop",
            "name": "busy",
            "source": "lbs.yaml",
            "address": None,
            "ready": False,
            "ports": [{"name": "p", "port": 8080, "protocol": "UDP"}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PortConflict",
                    "message": "every pool address uses 8080/UDP",
                }
            ],
            "errors": [],
        },
    ],
    "routes": [
        {
            "namespace": "web",
            "name": "site",
            "source": "routes.yaml",
            "kind": "Ingress",
            "object": "web/site",
            "applied": True,
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.2"}]}},
            "conditions": [
                {
                    "type": "ResourceAppliedSuccessfully",
                    "status": "True",
                    "reason": "InstallationSuccessful",
                    "message": "",
                }
            ],
            "errors": [],
        },
    ],
}


def test_standalone_document_groups_by_namespace_and_lists_problems():
    doc = status.standalone_document(STANDALONE, "http://x/api/loadbalancers", None)
    assert [t["namespace"] for t in doc["tenants"]] == ["shop", "web"]
    shop, web = doc["tenants"]
    assert [(x["name"], x["address"], x["ready"]) for x in shop["loadBalancers"]] == [
        ("web", "127.0.0.1", True),
        ("busy", "<pending>", False),
    ]
    assert shop["problems"] == [
        {
            "object": "LoadBalancer busy",
            "type": "Ready",
            "status": "False",
            "reason": "PortConflict",
            "message": "every pool address uses 8080/UDP",
        }
    ]
    assert web["routes"][0]["address"] == "127.0.0.2"
    assert web["problems"] == []
    assert doc["errors"] == ["lbs.yaml: something broke"]
    only = status.standalone_document(STANDALONE, "u", "web")
    assert [t["namespace"] for t in only["tenants"]] == ["web"]


def test_render_shows_summary_objects_and_reasons():
    text = status.render(status.standalone_document(STANDALONE, "http://x", None))
    lines = text.splitlines()
    assert "Data plane: envoy ready; address pool: 127.0.0.1" in lines
    assert "Error: lbs.yaml: something broke" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("TENANT"))
    assert lines[header + 1].split() == [
        "shop",
        "shop",
        "Ready",
        "1/2",
        "ready",
        "0/0",
        "ready",
        "1",
    ]
    assert (
        "    LoadBalancer busy: Ready=False (PortConflict): every pool address uses 8080/UDP"
        in lines
    )
    assert "  Routes:" in lines


def test_problem_without_status_is_reported():
    raw = {"metadata": {"name": "new", "namespace": "tenant-a"}, "spec": {"ports": []}}
    entry = status._lb_entry(raw)
    assert entry["_problems"][0]["reason"] == "NoStatus"
    assert entry["address"] == "<pending>"


def test_envoy_readiness_of_deployment_and_daemonset():
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "envoy-tenant-a"},
        "spec": {"replicas": 2},
        "status": {"readyReplicas": 1},
    }
    assert status._envoy(deployment) == {
        "workload": "Deployment/envoy-tenant-a",
        "ready": True,
        "readyReplicas": 1,
        "replicas": 2,
    }
    daemon = {
        "kind": "DaemonSet",
        "metadata": {"name": "envoy-tenant-a"},
        "status": {"numberReady": 0, "desiredNumberScheduled": 3},
    }
    assert status.envoy_summary(status._envoy(daemon)) == "0/3"
    assert status._envoy(None)["ready"] is False
    assert status.envoy_summary(status._envoy(None)) == "<none>"
