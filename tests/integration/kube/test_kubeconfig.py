"""A kubeconfig file that changes on disk (a Secret rotated in place) is picked up without a
restart: on use after `check_interval`, and at once after a 401."""

from __future__ import annotations

import pytest

from kubelb.kube import client, errors, kubeconfig, resources
from tests.support import kubeconfig as test_kubeconfig

pytestmark = pytest.mark.integration


# Created by the test: kube-root-ca.crt is published by kube-controller-manager at its own pace.
PROBE = "probe"


async def grant_configmap_reads(kube: client.Client, ns: str, account: str) -> None:
    await kube.create(resources.CONFIG_MAPS, {"metadata": {"name": PROBE}}, namespace=ns)
    await kube.create(
        resources.ROLES,
        {
            "metadata": {"name": "read-cm"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
        namespace=ns,
    )
    await kube.create(
        resources.ROLE_BINDINGS,
        {
            "metadata": {"name": "read-cm"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
        namespace=ns,
    )


async def test_changed_file_swaps_credentials_on_use(management, kube, ns, tmp_path):
    await grant_configmap_reads(kube, ns, "reader")
    reader = await management.service_account_kubeconfig(ns, "reader", tmp_path / "reader")
    nobody = await management.service_account_kubeconfig(ns, "nobody", tmp_path / "nobody")
    path = tmp_path / "kubeconfig"
    path.write_bytes(reader.read_bytes())
    source = kubeconfig.KubeconfigFile(path, check_interval=0)
    as_file = client.Client(source)
    try:
        await as_file.get(resources.CONFIG_MAPS, PROBE, namespace=ns)
        assert source.namespace == ns  # the current context's
        path.write_bytes(nobody.read_bytes())  # rotated in place
        with pytest.raises(errors.ForbiddenError):
            await as_file.get(resources.CONFIG_MAPS, PROBE, namespace=ns)
        assert source.reloads == 1
        path.write_text("clusters: [not a kubeconfig")  # half written: keep the last good one
        with pytest.raises(errors.ForbiddenError):
            await as_file.get(resources.CONFIG_MAPS, PROBE, namespace=ns)
        assert source.reloads == 1
    finally:
        await as_file.close()


async def test_unauthorized_rereads_the_file_at_once(management, kube, ns, tmp_path):
    await grant_configmap_reads(kube, ns, "reader")
    good = await management.service_account_kubeconfig(ns, "reader", tmp_path / "good")
    path = test_kubeconfig.write(
        tmp_path / "kubeconfig",
        test_kubeconfig.token_config(
            cluster="management",
            server=management.server,
            ca_pem=management.ca_pem,
            user="expired",
            token="not-a-valid-token",
            namespace=ns,
        ),
    )
    # A check interval of an hour: only the 401 can make it look at the file again.
    source = kubeconfig.KubeconfigFile(path, check_interval=3600)
    as_file = client.Client(source)
    try:
        with pytest.raises(errors.UnauthorizedError):  # file unchanged: nothing better to try
            await as_file.get(resources.CONFIG_MAPS, PROBE, namespace=ns)
        path.write_bytes(good.read_bytes())
        got = await as_file.get(resources.CONFIG_MAPS, PROBE, namespace=ns)
        assert got["kind"] == "ConfigMap"
        assert source.reloads == 1
    finally:
        await as_file.close()


async def test_open_source_fails_clearly_on_a_missing_file(tmp_path):
    with pytest.raises(kubeconfig.ConfigError, match="cannot read kubeconfig"):
        await kubeconfig.open_source(tmp_path / "absent")
