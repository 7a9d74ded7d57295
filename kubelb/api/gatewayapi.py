"""The Gateway API CRDs kubelb ships, vendored from the Go module `sigs.k8s.io/gateway-api`.

Inputs: a channel (`standard` or `experimental`). Outputs: its CustomResourceDefinitions, parsed,
and the release they come from (`version()`). The files live in configs/crds/gateway-api of the
source tree (`make gateway-api-crds` regenerates them from the module pinned in hack/gateway-api);
the package reaches them through the link kubelb/api/gateway-api-crds, and the wheel carries them
as package data. Each channel also holds the release's ValidatingAdmissionPolicy that guards CRD
upgrades; `documents()` returns it, `crds()` leaves it out.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

Channel = Literal["standard", "experimental"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
DEFAULT_CHANNEL: Channel = "standard"

DATA_DIR = Path(__file__).resolve().parent / "gateway-api-crds"
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"
CHANNEL_ANNOTATION = "gateway.networking.k8s.io/channel"
CRD_KIND = "CustomResourceDefinition"

# libyaml parses the ~1 MB of a channel in tens of milliseconds; pure Python takes half a second.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class GatewayAPIDataError(RuntimeError):
    """The shipped CRD files are missing or not what their channel promises."""


def version() -> str:
    """The Gateway API release of the shipped files, e.g. `v1.5.1`."""
    path = DATA_DIR / "VERSION"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise GatewayAPIDataError(f"no Gateway API CRDs shipped: {exc}") from exc


def files(channel: Channel) -> list[Path]:
    """The YAML files of `channel`, sorted."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown Gateway API channel {channel!r} (one of {', '.join(CHANNELS)})")
    directory = DATA_DIR / channel
    found = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not found:
        raise GatewayAPIDataError(f"no Gateway API CRD files in {directory}")
    return found


def documents(channel: Channel) -> list[dict[str, Any]]:
    """Every document of `channel` (CRDs and the upgrade policy), parsed; a fresh copy per call."""
    return copy.deepcopy(list(_parsed(channel)))


def crds(channel: Channel) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of `channel`, sorted by name; a fresh copy per call."""
    found = [d for d in _parsed(channel) if d.get("kind") == CRD_KIND]
    return copy.deepcopy(sorted(found, key=lambda d: str(d["metadata"]["name"])))


@functools.cache
def _parsed(channel: Channel) -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path in files(channel):
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise GatewayAPIDataError(f"{path}: not a Kubernetes object")
            docs.append(cast(dict[str, Any], doc))
    return tuple(docs)
