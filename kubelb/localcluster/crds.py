"""Install CustomResourceDefinitions into a local cluster and wait until they are served.

Inputs: YAML files (by default `configs/crd/*.yaml` of the source tree) or parsed documents
(the Gateway API CRDs of `kubelb.api.gatewayapi`), an admin API client.
Outputs: the CRDs created (or replaced when they exist), each Established before `install`
returns, so the first request for a custom resource cannot race its registration.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

logger = logging.getLogger(__name__)

# kubelb/localcluster/crds.py -> repository root -> configs/crd. Absent in an installed wheel.
DEFAULT_CRD_DIR = Path(__file__).resolve().parents[2] / "configs" / "crd"
# prometheus-operator's PodMonitor and ServiceMonitor (`make prometheus-operator-crds`), which the
# manager writes for `envoyProxy.podMonitor.enabled`; installed beside kubelb's own.
PROMETHEUS_OPERATOR_DIR = DEFAULT_CRD_DIR.parent / "crds" / "prometheus-operator"


class CRDError(RuntimeError):
    """A CRD file is not a CRD, or a CRD did not become Established in time."""


def crd_files(directory: Path) -> list[Path]:
    """The `*.yaml`/`*.yml` files in `directory`, sorted; none if it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in `paths`; anything else is an error."""
    crds: list[dict[str, Any]] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            if doc.get("kind") != "CustomResourceDefinition":
                raise CRDError(
                    f"{path}: expected kind CustomResourceDefinition, got {doc.get('kind')!r}"
                )
            crds.append(doc)
    return crds


async def install(
    api: client.ApiClient, crds: Sequence[dict[str, Any]], *, wait_seconds: float = 60.0
) -> list[str]:
    """Create or replace `crds`, then wait until each is Established; returns their names.

    All writes go out at once and the API server registers the CRDs in parallel, so a set of
    many CRDs costs about as much start-up time as its slowest one."""
    ext = client.ApiextensionsV1Api(api)
    names = [crd["metadata"]["name"] for crd in crds]
    # Every write finishes before a failure is raised: none may outlive the caller's client.
    outcomes = await asyncio.gather(
        *(_create_or_replace(ext, crd) for crd in crds), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    last_seen: dict[str, object] = {}  # conditions of CRDs not Established yet, for the error
    try:
        async with asyncio.timeout(wait_seconds):
            await asyncio.gather(*(_wait_established(ext, n, last_seen) for n in names))
    except TimeoutError:
        raise CRDError(f"CRDs not Established after {wait_seconds:.0f}s: {last_seen}") from None
    logger.debug("CRDs established: %s", ", ".join(names))
    return names


async def _create_or_replace(ext: client.ApiextensionsV1Api, crd: dict[str, Any]) -> None:
    name = crd["metadata"]["name"]
    try:
        await ext.create_custom_resource_definition(_body(crd))
    except client.ApiException as exc:
        if exc.status != 409:
            raise CRDError(f"CRD {name}: {exc.status} {exc.reason}: {exc.body!r}") from exc
        current = await ext.read_custom_resource_definition(name)
        version = current.metadata.resource_version
        body = {**crd, "metadata": {**crd["metadata"], "resourceVersion": version}}
        await ext.replace_custom_resource_definition(name, _body(body))


async def _wait_established(
    ext: client.ApiextensionsV1Api, name: str, last_seen: dict[str, object]
) -> None:
    while True:
        # Raw JSON: building client models from a large schema (Gateway API's HTTPRoute is
        # 400 KB) costs a tenth of a second per read, and this loop reads often.
        response: Any = await ext.read_custom_resource_definition(name, _preload_content=False)
        crd = json.loads(await response.read())
        conditions = {c["type"]: c for c in crd.get("status", {}).get("conditions") or []}
        established = conditions.get("Established")
        if established is not None and established["status"] == "True":
            return
        last_seen[name] = {
            t: (c["status"], c.get("reason"), c.get("message")) for t, c in conditions.items()
        }
        await asyncio.sleep(0.1)


def _body(doc: dict[str, Any]) -> Any:
    # The client serializes plain dicts as they are; its type stubs only name the model classes.
    return doc
