"""Golden tests of the Envoy bootstrap: in/<case>.yaml (node_id, spec, admin_path, expect_error) ->
out/<case>.bootstrap.yaml. The integration test feeds each output to `envoy --mode validate`."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.envoy import binary, bootstrap, deployer
from kubelb.pki import ca, files
from tests.golden import golden

SUITE = golden.Suite.named("bootstrap")


def render_case(case: Path, tls_dir: Path | None = None) -> tuple[dict[str, Any], str]:
    """`tls_dir`: put a real certificate directory there and render against it instead (Envoy
    checks that the files exist)."""
    data = SUITE.load(case)
    spec = deployer.EnvoySpec(**data.get("spec", {}))
    if spec.xds_tls_dir is not None and tls_dir is not None:
        leaf = ca.Authority.create().issue_node(data["node_id"])
        files.write_dir(tls_dir, files.leaf_files(leaf, str(tls_dir)))
        spec = dataclasses.replace(spec, xds_tls_dir=str(tls_dir))
    expected_error = data.get("expect_error")
    admin_path = data.get("admin_path")
    if expected_error:
        with pytest.raises(ValueError, match=expected_error):
            bootstrap.render(data["node_id"], spec, admin_path=admin_path)
        return {}, ""
    rendered = bootstrap.render(data["node_id"], spec, admin_path=admin_path)
    return rendered, yaml.safe_dump(rendered, sort_keys=True, indent=2)


@pytest.mark.parametrize("case", SUITE.params())
def test_bootstrap(case: Path, update_golden: bool) -> None:
    _, text = render_case(case)
    SUITE.check(case.stem, {"bootstrap": text}, update=update_golden)


def test_no_orphans(update_golden: bool) -> None:
    SUITE.sweep(update=update_golden)


def test_json_round_trips() -> None:
    rendered = bootstrap.render("n", deployer.EnvoySpec(admin_port=1))
    assert yaml.safe_load(bootstrap.to_json(rendered)) == rendered


@pytest.mark.integration
@pytest.mark.parametrize("case", SUITE.params())
async def test_envoy_accepts_bootstrap(case: Path, tmp_path: Path) -> None:
    rendered, _ = render_case(case, tls_dir=tmp_path / "xds-tls")
    if not rendered:
        pytest.skip("error case")
    config = tmp_path / "bootstrap.json"
    config.write_text(bootstrap.to_json(rendered))
    proc = await asyncio.create_subprocess_exec(
        str(binary.find_envoy()),
        "--mode",
        "validate",
        "-c",
        str(config),
        "--disable-hot-restart",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
