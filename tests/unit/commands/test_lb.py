import json
import sys
import tomllib
from pathlib import Path

import pytest

from kubelb import cli
from kubelb.api import errors as api_errors, loadbalancer as api_lb, registry
from kubelb.commands import lb

ROOT = Path(__file__).resolve().parents[3]


def _served(name="web", *, ready="True", reason="Reconciled"):
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": name, "namespace": "tenant-a"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
            "endpoints": [
                {
                    "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [
                        {"name": "http", "port": 30080},
                        {"name": "dns", "port": 30053, "protocol": "UDP"},
                    ],
                }
            ],
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]},
            "service": {
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "upstreamTargetPort": 30080}
                ]
            },
            "conditions": [{"type": "Ready", "status": ready, "reason": reason}],
        },
    }


def test_build_single_port_is_unnamed_and_valid():
    obj = lb.build("web", "tenant-a", ["80:30080/TCP"], ["10.0.0.1", "backend.example.com"])
    assert obj["spec"] == {
        "endpoints": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"hostname": "backend.example.com"}],
                "ports": [{"port": 30080, "protocol": "TCP"}],
            }
        ],
        "ports": [{"port": 80, "protocol": "TCP"}],
    }
    parsed = registry.parse_as(api_lb.LoadBalancer, obj)
    assert parsed.metadata.namespace == "tenant-a"


def test_build_names_several_ports_and_keeps_given_names():
    obj = lb.build("dns", "ns", ["53/udp", "web=8080:30080"], ["fd00::1"], service_type="NodePort")
    assert [p["name"] for p in obj["spec"]["ports"]] == ["udp-53", "web"]
    assert obj["spec"]["endpoints"][0]["ports"] == [
        {"name": "udp-53", "port": 53, "protocol": "UDP"},
        {"name": "web", "port": 30080, "protocol": "TCP"},
    ]
    assert obj["spec"]["endpoints"][0]["addresses"] == [{"ip": "fd00::1"}]
    assert obj["spec"]["type"] == "NodePort"


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        ("http", "expected"),
        ("80/SCTP", "TCP or UDP"),
        ("0:1", r"spec\.ports\[0\]\.port"),
        ("80:70000", r"spec\.endpoints\[0\]\.ports\[0\]\.port"),
        ("Bad_Name=80", r"spec\.ports\[0\]\.name"),
    ],
)
def test_build_refuses_bad_ports_with_the_field(port, problem):
    with pytest.raises((lb.UsageError, api_errors.APIValidationError), match=problem):
        lb.build("web", "ns", [port], ["10.0.0.1"])


def test_build_refuses_bad_name_and_duplicate_ports():
    with pytest.raises(api_errors.APIValidationError, match=r"metadata\.name"):
        lb.build("Not_A_Name", "ns", ["80"], ["10.0.0.1"])
    with pytest.raises(lb.UsageError, match="share the name"):
        lb.build("web", "ns", ["80", "80"], ["10.0.0.1"])


def test_build_with_an_addresses_reference_and_persistence():
    obj = lb.build("web", "ns", ["80:30080"], [], addresses_ref="default", persistence="SourceIP")
    assert obj["spec"]["endpoints"] == [
        {"addressesReference": {"name": "default"}, "ports": [{"port": 30080, "protocol": "TCP"}]}
    ]
    assert obj["spec"]["persistence"] == {"type": "SourceIP"}
    parsed = registry.parse_as(api_lb.LoadBalancer, obj)
    assert parsed.spec.persistence is not None
    assert parsed.spec.persistence.type == api_lb.PersistenceType.SOURCE_IP


@pytest.mark.parametrize(
    ("endpoints", "ref", "problem"),
    [
        (["10.0.0.1"], "default", "exclude each other"),
        ([], None, "at least one --endpoint"),
        ([], " ", "empty name"),
    ],
)
def test_build_needs_exactly_one_source_of_addresses(endpoints, ref, problem):
    with pytest.raises(lb.UsageError, match=problem):
        lb.build("web", "ns", ["80"], endpoints, addresses_ref=ref)


def test_create_refuses_an_unknown_persistence(capsys):
    with pytest.raises(SystemExit):
        cli.main(["lb", "create", "web", "--port", "80", "--endpoint", "10.0.0.1",
                  "--persistence", "Cookie"])  # fmt: skip
    assert "invalid choice: 'Cookie'" in capsys.readouterr().err


def test_create_reports_bad_flags_before_connecting(capsys, tmp_path):
    missing = tmp_path / "no-such-kubeconfig"
    code = cli.main(
        [
            "lb",
            "create",
            "web",
            "--kubeconfig",
            str(missing),
            "--port",
            "80/SCTP",
            "--endpoint",
            "10.0.0.1",
        ]
    )
    assert code == 1
    assert "protocol must be TCP or UDP" in capsys.readouterr().err


def test_missing_kubeconfig_is_a_clear_error(capsys, tmp_path):
    missing = tmp_path / "no-such-kubeconfig"
    assert cli.main(["lb", "list", "--kubeconfig", str(missing)]) == 1
    assert f"cannot read kubeconfig {missing}" in capsys.readouterr().err


def test_render_table_and_wide():
    items = [_served(), _served("db", ready="False", reason="NoAddress")]
    items[1]["status"]["loadBalancer"] = {}
    items[1]["metadata"]["namespace"] = "tenant-b"
    lines = lb.render(items, namespaces=True).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "TYPE", "ADDRESS", "PORTS", "READY", "AGE"]
    assert lines[1].split() == [
        "tenant-a",
        "web",
        "LoadBalancer",
        "192.0.2.7",
        "80:30080/TCP,53/UDP",
        "True",
        "<unknown>",
    ]
    assert lines[2].split()[3] == "<pending>"
    wide = lb.render(items, wide=True).splitlines()
    assert wide[0].split()[-2:] == ["ENDPOINTS", "REASON"]
    assert wide[1].endswith("10.0.0.1:30080,10.0.0.1:30053,10.0.0.2:30080 + 1 more...   Reconciled")
    assert wide[2].split()[-1] == "NoAddress"


def test_ready_is_unknown_before_a_status():
    obj = _served()
    del obj["status"]
    assert lb.ready(obj) == "Unknown"
    assert lb.address(obj) == "<pending>"
    assert lb.ports(obj) == "80/TCP,53/UDP"


def _unreachable_kubeconfig(path):
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: team}}]\n"
    )
    return path


def test_dry_run_prints_the_object_without_asking_the_server(capsys, tmp_path):
    kubeconfig = _unreachable_kubeconfig(tmp_path / "kubeconfig")
    args = ["lb", "create", "web", "--port", "80:30080", "--endpoint", "10.0.0.1", "--dry-run"]
    assert cli.main([*args, "--kubeconfig", str(kubeconfig), "-o", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["metadata"] == {"name": "web", "namespace": "team"}  # the context's namespace
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_unreachable_server_is_a_clear_error(capsys, tmp_path):
    kubeconfig = _unreachable_kubeconfig(tmp_path / "kubeconfig")
    assert cli.main(["lb", "get", "web", "--kubeconfig", str(kubeconfig)]) == 1
    assert "kubelb lb: cannot reach the API server" in capsys.readouterr().err


def test_help_names_the_kubectl_plugin_when_run_as_one(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/kubectl-kubelb", "lb", "--help"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: kubectl kubelb lb ")


def test_pyproject_ships_the_kubectl_plugin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["kubectl-kubelb"] == project["scripts"]["kubelb"]
