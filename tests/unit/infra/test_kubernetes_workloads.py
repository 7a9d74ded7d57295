"""Readiness of a tenant's Envoy workload, Deployment or DaemonSet (pure)."""

from __future__ import annotations

import pytest

from kubelb.infra import kubernetes


@pytest.mark.parametrize(
    ("workload", "ready"),
    [
        ({"kind": "Deployment", "status": {"readyReplicas": 2, "numberReady": 0}}, 2),
        ({"kind": "DaemonSet", "status": {"numberReady": 3, "readyReplicas": 0}}, 3),
        ({"kind": "DaemonSet", "status": {}}, 0),
        ({"kind": "StatefulSet", "status": {"readyReplicas": 1}}, 0),
        (None, 0),
    ],
)
def test_ready_pods_reads_the_field_of_the_kind(workload, ready):
    assert kubernetes.ready_pods(workload) == ready
