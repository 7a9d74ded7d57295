"""API objects -> IR -> Envoy golden cases, the whole chain at once: each `in/<case>.yaml` is an
API-objects case (format in tests/golden/apiobjects.py), built to IR as its mode does and then
translated; outputs are `out/<case>.{listeners,clusters,endpoints,routes}.yaml` in the
canonical rendering, like the IR -> Envoy suite's (and validated by Envoy the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelb.xds import translate
from kubelb.xds.translate import render
from tests.golden import apiobjects, golden

SUITE = golden.Suite.named("chain")


@pytest.mark.parametrize("case", SUITE.params())
def test_golden(case: Path, update_golden: bool, tmp_path: Path) -> None:
    built = apiobjects.build(SUITE.load(case), tmp_path)
    dicts = render.to_json_dicts(translate.translate(built.config))
    rendered = {kind: render.dump_yaml(items) if items else "" for kind, items in dicts.items()}
    assert any(rendered.values()), f"{case.stem}: the chain serves nothing, so it pins nothing"
    SUITE.check(case.stem, rendered, update=update_golden)


def test_no_orphan_outputs(update_golden: bool) -> None:
    SUITE.sweep(update=update_golden)
