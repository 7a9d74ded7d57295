"""IR -> Envoy golden cases: each `in/<case>.yaml` is one IR document (kubelb.ir.codec form) with
an optional `expectError:` (a substring of the TranslateError message); outputs are
`out/<case>.{listeners,clusters,endpoints}.yaml` in the canonical rendering."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kubelb.ir import codec, proxy
from kubelb.xds import translate
from kubelb.xds.translate import render
from tests.golden import golden

SUITE = golden.Suite.named("xds")


def render_case(data: dict[str, object]) -> dict[str, str]:
    resources = translate.translate(codec.proxy_config_from_dict(data))
    dicts = render.to_json_dicts(resources)
    return {kind: render.dump_yaml(items) if items else "" for kind, items in dicts.items()}


@pytest.mark.parametrize("case", SUITE.params())
def test_golden(case: Path, update_golden: bool) -> None:
    data = SUITE.load(case)
    expect_error = data.pop("expectError", None)
    if expect_error is not None:
        with pytest.raises((translate.TranslateError, codec.IRDecodeError)) as err:
            render_case(data)
        assert str(expect_error) in str(err.value)
        SUITE.check(case.stem, {}, update=update_golden)
        return
    SUITE.check(case.stem, render_case(data), update=update_golden)


def test_no_orphan_outputs(update_golden: bool) -> None:
    SUITE.sweep(update=update_golden)


def test_output_does_not_depend_on_input_order() -> None:
    """Every case translated again from reversed listeners, clusters, endpoints and routes gives
    byte-identical resources (the IR builder may list things in any order)."""
    for case in SUITE.cases():
        data = SUITE.load(case)
        if "expectError" in data:
            continue
        config = codec.proxy_config_from_dict(data)
        assert _serialized(translate.translate(_reversed(config))) == _serialized(
            translate.translate(config)
        ), case.stem


def _reversed(config: proxy.ProxyConfig) -> proxy.ProxyConfig:
    return dataclasses.replace(
        config,
        listeners=tuple(
            dataclasses.replace(
                li, clusters=li.clusters[::-1], virtual_hosts=li.virtual_hosts[::-1]
            )
            for li in reversed(config.listeners)
        ),
        clusters=tuple(
            dataclasses.replace(c, endpoints=c.endpoints[::-1]) for c in reversed(config.clusters)
        ),
    )


def _serialized(resources: translate.Resources) -> list[list[bytes]]:
    return [
        [m.SerializeToString(deterministic=True) for m in getattr(resources, kind)]
        for kind in render.KINDS
    ]
