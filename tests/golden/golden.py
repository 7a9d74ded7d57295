"""Golden-file helpers shared by every suite under tests/golden/ (`ir`: API objects -> IR,
`xds`: IR -> Envoy, `chain`: API objects -> IR -> Envoy, `bootstrap`).

A suite is a directory with `in/<case>.yaml` inputs and `out/<case>.<kind>.yaml` outputs. A test
renders each case to {kind: text} and calls `Suite.check`: without --update-golden any difference,
missing file or extra file of that case fails; with it the outputs are rewritten. `Suite.orphans`
lists outputs whose case is gone (deleted on update, a failure otherwise).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent
UPDATE_HINT = "run `make golden` (pytest tests/golden --update-golden) if the change is intended"


@dataclass(frozen=True)
class Suite:
    root: Path

    @classmethod
    def named(cls, name: str) -> Suite:
        return cls(ROOT / name)

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def outputs(self) -> Path:
        return self.root / "out"

    def cases(self) -> list[Path]:
        return sorted(self.inputs.glob("*.yaml"))

    def params(self) -> list[Any]:
        """pytest params over the cases, the case name as test id."""
        return [pytest.param(p, id=p.stem) for p in self.cases()]

    def load(self, case: Path) -> dict[str, Any]:
        data = yaml.safe_load(case.read_text())
        if not isinstance(data, dict):
            pytest.fail(f"{case}: a golden case must be a YAML mapping")
        return data

    def existing(self, case: str) -> dict[str, Path]:
        prefix = f"{case}."
        return {
            p.name[len(prefix) : -len(".yaml")]: p
            for p in self.outputs.glob(f"{case}.*.yaml")
            if "." not in p.name[len(prefix) : -len(".yaml")]
        }

    def check(self, case: str, rendered: Mapping[str, str], *, update: bool) -> None:
        """Compare (or rewrite) every output of `case`. Empty texts mean "no file"."""
        wanted = {kind: text for kind, text in rendered.items() if text}
        present = self.existing(case)
        if update:
            self.outputs.mkdir(parents=True, exist_ok=True)
            for kind, path in present.items():
                if kind not in wanted:
                    path.unlink()
            for kind, text in wanted.items():
                path = self.outputs / f"{case}.{kind}.yaml"
                if not path.exists() or path.read_text() != text:
                    path.write_text(text)
            return
        problems = [
            f"unexpected file {present[kind].name} (the case produces no {kind})"
            for kind in sorted(set(present) - set(wanted))
        ]
        for kind, text in sorted(wanted.items()):
            path = self.outputs / f"{case}.{kind}.yaml"
            if kind not in present:
                problems.append(f"missing file {path.name}")
                continue
            current = path.read_text()
            if current != text:
                diff = difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=f"golden {path.name}",
                    tofile="translated",
                )
                problems.append("".join(diff))
        if problems:
            pytest.fail("\n".join([f"golden mismatch for {case}:", *problems, UPDATE_HINT]))

    def orphans(self) -> list[Path]:
        """Outputs whose input case no longer exists."""
        cases = {p.stem for p in self.cases()}
        return sorted(
            p for p in self.outputs.glob("*.yaml") if p.name.split(".", 1)[0] not in cases
        )

    def sweep(self, *, update: bool) -> None:
        orphans = self.orphans()
        if update:
            for p in orphans:
                p.unlink()
            return
        if orphans:
            names = ", ".join(p.name for p in orphans)
            pytest.fail(f"golden outputs without a case in {self.inputs}: {names}; {UPDATE_HINT}")
