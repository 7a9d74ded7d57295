from pathlib import Path

import yaml

from kubelb import cli
from kubelb.ir import codec

ROOT = Path(__file__).resolve().parents[3]


def test_translate_demo_to_ir_round_trips(capsys):
    assert cli.main(["translate", "-f", str(ROOT / "configs/demo"), "--to", "ir"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    config = codec.proxy_config_from_dict(document)
    assert sorted((li.address, li.port) for li in config.listeners) == [
        ("127.0.0.1", 8080),
        ("127.0.0.1", 8088),  # the demo Gateway's listener, serving its HTTPRoute
        ("127.0.0.1", 8090),
    ]
    assert config.validate() == []


def test_translate_example_to_xds_with_pool(capsys):
    args = ["translate", "-f", str(ROOT / "configs/examples/standalone.yaml")]
    assert cli.main([*args, "--address-pool", "127.0.0.5"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    addresses = {li["address"]["socketAddress"]["address"] for li in out["listeners"]}
    assert addresses == {"127.0.0.5"}
    assert {c["name"] for c in out["clusters"]} >= {"shop/api/ep/#0/port/31443/tcp"}


def test_translate_ir_input_and_warnings(tmp_path, capsys):
    ir_file = tmp_path / "ir.yaml"
    ir_file.write_text(
        "nodeId: n\nlisteners:\n- {name: l, address: 127.0.0.1, port: 1, protocol: TCP,"
        " clusters: [missing]}\n"
    )
    assert cli.main(["translate", "-f", str(ir_file), "--to", "ir"]) == 0
    captured = capsys.readouterr()
    assert "refers to unknown cluster 'missing'" in captured.err


def test_translate_reports_bad_input(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("kind: [broken\n")
    assert cli.main(["translate", "-f", str(tmp_path)]) == 1
    assert "x.yaml" in capsys.readouterr().err
    assert cli.main(["translate", "-f", str(tmp_path / "missing")]) == 2


LB = """\
apiVersion: kubelb.k8c.io/v1alpha1
kind: LoadBalancer
metadata: {{name: {name}, namespace: shop}}
spec:
  ports: [{{name: http, port: 8080, protocol: TCP}}]
  endpoints: [{{addresses: [{{ip: 127.0.0.11}}], ports: [{{name: http, port: 18080}}]}}]
"""


def test_translate_warns_only_about_loadbalancers_not_served(tmp_path, capsys):
    # One pool address, two LoadBalancers on port 8080: the second cannot be placed.
    (tmp_path / "lbs.yaml").write_text(LB.format(name="a") + "---\n" + LB.format(name="b"))
    args = ["translate", "-f", str(tmp_path), "--to", "ir", "--address-pool", "127.0.0.5"]
    assert cli.main(args) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: LoadBalancer shop/b: PortConflict: ")
