"""Golden tests of the Envoy bootstrap: in/<case>.yaml (node_id, spec, admin_path, expect_error) ->
out/<case>.bootstrap.yaml. The integration test feeds each output to `envoy --mode validate`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.envoy import binary, bootstrap, deployer
from tests.golden import golden

SUITE = golden.Suite.named("bootstrap")


def render_case(case: Path) -> tuple[dict[str, Any], str]:
    data = SUITE.load(case)
    spec = deployer.EnvoySpec(**data.get("spec", {}))
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
    rendered, _ = render_case(case)
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
