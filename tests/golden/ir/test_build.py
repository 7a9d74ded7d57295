"""API objects -> IR golden cases: each `in/<case>.yaml` holds KubeLB objects and how they are
placed (format in tests/golden/apiobjects.py). Outputs: `out/<case>.ir.yaml`, the node's IR in
kubelb.ir.codec form; `out/<case>.problems.yaml`, why parts are not served (only when something
is not); in manager mode `out/<case>.status.yaml`, each LoadBalancer's `status.service.ports`,
which records both its listener ports and the endpoint port each is paired with, and
`out/<case>.routes.yaml`, each Route's outcome: the status of the object it embeds (what the
agent copies onto the tenant's Ingress, Gateway or route), its problems and refused endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.ir import codec
from tests.golden import apiobjects, golden

SUITE = golden.Suite.named("ir")


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def render_case(built: apiobjects.Built) -> dict[str, str]:
    return {
        "ir": dump(codec.to_dict(built.config)),
        "problems": dump({k: list(v) for k, v in built.problems.items()}) if built.problems else "",
        "status": dump({k: list(v) for k, v in built.status_ports.items()})
        if built.status_ports
        else "",
        "routes": dump({k: dict(v) for k, v in built.routes.items()}) if built.routes else "",
    }


@pytest.mark.parametrize("case", SUITE.params())
def test_golden(case: Path, update_golden: bool, tmp_path: Path) -> None:
    built = apiobjects.build(SUITE.load(case), tmp_path)
    # What the builders hand on is always a consistent IR that survives its dict form.
    assert built.config.validate() == []
    assert codec.proxy_config_from_dict(codec.to_dict(built.config)) == built.config
    SUITE.check(case.stem, render_case(built), update=update_golden)


def test_no_orphan_outputs(update_golden: bool) -> None:
    SUITE.sweep(update=update_golden)
