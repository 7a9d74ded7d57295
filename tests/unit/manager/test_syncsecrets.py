"""The management Secret a SyncSecret asks for, and its status (pure mapping)."""

from __future__ import annotations

import base64

from kubelb.api import syncsecret
from kubelb.manager import syncsecrets

SS = {
    "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "SyncSecret",
    "metadata": {"name": "abc", "namespace": "tenant-a", "uid": "u-9", "generation": 2,
                 "labels": {"kubelb.k8c.io/origin-name": "web"},
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "type": "kubernetes.io/tls",
    "data": {"tls.crt": "Yw=="},
    "stringData": {"tls.key": "plain"},
}  # fmt: skip


def test_secret_named_by_uid_owned_by_the_sync_secret_with_string_data_merged():
    secret = syncsecrets.desired_secret(SS)
    assert secret["metadata"]["name"] == "u-9"
    assert secret["metadata"]["namespace"] == "tenant-a"
    assert secret["metadata"]["labels"] == {"kubelb.k8c.io/origin-name": "web"}
    assert "annotations" not in secret["metadata"]
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("SyncSecret", "abc", "u-9")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["data"] == {"tls.crt": "Yw==", "tls.key": base64.b64encode(b"plain").decode()}


def test_status_keeps_transition_time_while_synced_and_flips_on_failure():
    first = syncsecrets.desired_status({}, generation=2,
                                       phase=syncsecret.SyncSecretPhase.SYNCED, reason="Synced",
                                       message="ok", now="2026-01-01T00:00:00Z")  # fmt: skip
    again = syncsecrets.desired_status(first, generation=2,
                                       phase=syncsecret.SyncSecretPhase.SYNCED, reason="Synced",
                                       message="ok", now="2026-02-02T00:00:00Z")  # fmt: skip
    assert again == first
    assert (first["phase"], first["observedGeneration"]) == ("Synced", 2)
    failed = syncsecrets.desired_status(first, generation=3,
                                        phase=syncsecret.SyncSecretPhase.FAILED,
                                        reason="SyncFailed", message="boom",
                                        now="2026-02-02T00:00:00Z")  # fmt: skip
    condition = failed["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Synced", "False", "SyncFailed")  # fmt: skip
    assert condition["lastTransitionTime"] == "2026-02-02T00:00:00Z"
