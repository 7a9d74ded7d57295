from __future__ import annotations

import pytest

from kubelb.api import crd
from kubelb.kube import resources


@pytest.mark.parametrize(
    ("resource", "args", "path"),
    [
        (resources.SERVICES, ("ns", "web"), "/api/v1/namespaces/ns/services/web"),
        (resources.SERVICES, (None,), "/api/v1/services"),
        (resources.SERVICES, ("ns", "web", "status"), "/api/v1/namespaces/ns/services/web/status"),
        (resources.NODES, ("ignored", "n1"), "/api/v1/nodes/n1"),
        (resources.DEPLOYMENTS, ("ns",), "/apis/apps/v1/namespaces/ns/deployments"),
        (resources.TENANTS, (None, "acme"), "/apis/kubelb.k8c.io/v1alpha1/tenants/acme"),
        (
            resources.SERVICE_ACCOUNTS,
            ("ns", "sa", "token"),
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
        ),
        (
            resources.LEASES,
            ("kubelb", "id"),
            "/apis/coordination.k8s.io/v1/namespaces/kubelb/leases/id",
        ),
    ],
)
def test_paths(resource, args, path):
    assert resource.path(*args) == path


def test_api_version_and_name():
    assert resources.SERVICES.api_version == "v1"
    assert resources.LOAD_BALANCERS.api_version == "kubelb.k8c.io/v1alpha1"
    assert str(resources.SERVICES) == "services"
    assert str(resources.ROLES) == "roles.rbac.authorization.k8s.io"


def test_empty_name_is_refused():
    with pytest.raises(ValueError, match="empty object name"):
        resources.SERVICES.path("ns", "")


def test_kubelb_constants_match_the_crds():
    served = {(r.plural, r.kind, r.scope == "Namespaced") for r in crd.RESOURCES}
    ours = {(r.plural, r.kind, r.namespaced) for r in resources.KUBELB}
    assert ours == served
