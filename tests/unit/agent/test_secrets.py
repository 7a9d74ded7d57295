"""What the agent's secret sync writes: the tenant SyncSecret for a labelled Secret and the
management copy of a SyncSecret (pure mapping)."""

from __future__ import annotations

from kubelb.agent import secrets
from kubelb.api import labels
from kubelb.kube import objects


def tenant_secret(**extra):
    return {
        "metadata": {"name": "web-tls", "namespace": "shop", "uid": "u-1",
                     "labels": {labels.MANAGED_BY: "kubelb", "app": "shop"},
                     "annotations": {"note": "x",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                     "resourceVersion": "7", "finalizers": ["kubelb.k8c.io/cleanup"]},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Yw==", "tls.key": "aw=="},
        **extra,
    }  # fmt: skip


def test_labelled_secret_becomes_a_same_named_sync_secret_with_origin_labels():
    ss = secrets.desired_from_secret(tenant_secret(immutable=True))
    assert ss["metadata"] == {"name": "web-tls", "namespace": "shop", "labels": {
        labels.MANAGED_BY: "kubelb", "app": "shop", labels.ORIGIN_NAME: "web-tls",
        labels.ORIGIN_NAMESPACE: "shop"}}  # fmt: skip
    assert (ss["kind"], ss["type"], ss["immutable"]) == ("SyncSecret", "kubernetes.io/tls", True)
    assert ss["data"] == {"tls.crt": "Yw==", "tls.key": "aw=="}


def test_copy_is_named_by_uid_in_the_tenant_namespace_without_last_applied():
    copy = secrets.desired_copy(tenant_secret(), namespace="tenant-a")
    assert (copy["metadata"]["name"], copy["metadata"]["namespace"]) == ("u-1", "tenant-a")
    assert copy["metadata"]["annotations"] == {"note": "x"}
    assert copy["metadata"]["labels"][labels.ORIGIN_NAME] == "web-tls"
    assert secrets.origin_key(copy) == objects.ObjectKey("shop", "web-tls")
    assert "finalizers" not in copy["metadata"]


def test_update_only_when_content_labels_or_annotations_differ():
    desired = secrets.desired_copy(tenant_secret(), namespace="tenant-a")
    live = {**desired, "metadata": {**desired["metadata"], "uid": "m-1", "resourceVersion": "3"},
            "status": {"phase": "Synced"}}  # fmt: skip
    assert not secrets.needs_update(live, desired)
    changed = secrets.desired_copy(tenant_secret(data={"tls.crt": "ZA=="}), namespace="tenant-a")
    assert secrets.needs_update(live, changed)
    out = secrets.updated(live, changed)
    assert out["data"] == {"tls.crt": "ZA=="}
    assert out["metadata"]["resourceVersion"] == "3"
    assert out["status"] == {"phase": "Synced"}
