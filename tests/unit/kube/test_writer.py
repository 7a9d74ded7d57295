from __future__ import annotations

from typing import Any

from kubelb.kube import writer


def test_equivalent_ignores_list_order_and_empty_values():
    a = {
        "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}],
        "loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]},
    }
    b = {
        "conditions": [{"status": "False", "type": "B"}, {"status": "True", "type": "A"}],
        "loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"ip": "1.2.3.4"}]},
        "empty": {},
        "none": None,
        "list": [],
    }
    assert writer.equivalent(a, b)
    assert not writer.equivalent(a, {**b, "loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
    assert writer.equivalent({}, {"loadBalancer": {}})


def test_contains_treats_server_defaults_as_no_difference():
    live = {
        "type": "ClusterIP",
        "clusterIP": "10.0.0.1",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "name": "http"}],
    }
    assert writer.contains(live, {"ports": [{"port": 80, "targetPort": 8080}]})
    assert not writer.contains(live, {"ports": [{"port": 81}]})
    assert not writer.contains(live, {"ports": [{"port": 80}, {"port": 81}]})  # length differs
    assert not writer.contains(live, {"selector": {"app": "x"}})


def test_covers_merges_labels_and_annotations_and_owner_references():
    live = {
        "metadata": {
            "labels": {"ours": "1", "theirs": "x"},
            "annotations": {"third-party/thing": "kept"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "T", "name": "n", "uid": "u1"}],
        },
        "spec": {"replicas": 2, "paused": False},
        "status": {"whatever": 1},
    }
    desired: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "d",
            "labels": {"ours": "1"},
            "ownerReferences": [{"kind": "T", "name": "n", "uid": "u1"}],
        },
        "spec": {"replicas": 2},
    }
    assert writer.covers(live, desired)
    assert not writer.covers(live, {**desired, "spec": {"replicas": 3}})
    relabelled = {**desired, "metadata": {**desired["metadata"], "labels": {"ours": "2"}}}
    assert not writer.covers(live, relabelled)
    annotated = {**desired, "metadata": {**desired["metadata"], "annotations": {"a": "b"}}}
    assert not writer.covers(live, annotated)
    reowned = {
        **desired,
        "metadata": {**desired["metadata"], "ownerReferences": [{"kind": "T", "uid": "u2"}]},
    }
    assert not writer.covers(live, reowned)
