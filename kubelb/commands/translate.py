"""Print what kubelb would program, offline: KubeLB objects -> IR -> Envoy xDS resources.

FILE holds LoadBalancer (plus optional Addresses and Config) objects, placed with standalone
mode's rules (addresses from --address-pool, Envoy binding each LB's own ports), or a single IR
document (as printed by --to ir). Standalone mode's reconcilers run in memory for it: no data
plane starts and no state is written.

Examples:
  kubelb translate -f configs/demo/loadbalancers.yaml             # Envoy resources as YAML
  kubelb translate -f configs/examples/standalone.yaml --to ir    # the data-plane-neutral IR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from kubelb.api import conditions
from kubelb.app import logs, standalone
from kubelb.ir import codec, proxy
from kubelb.placement import pool
from kubelb.sources import file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--file", type=Path, required=True, help="YAML file or folder (KubeLB objects or IR)"
    )
    parser.add_argument(
        "--to", choices=["ir", "xds"], default="xds", help="what to print (default: xds)"
    )
    parser.add_argument(
        "--address-pool", help="IPs or CIDRs for LoadBalancer addresses (default: 127.0.0.1)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        snapshot = file.FileSource(args.file).load()
        address_pool = pool.parse_pool(args.address_pool) if args.address_pool else None
    except (file.SourceError, pool.PoolError) as e:
        print(f"kubelb translate: {e}", file=sys.stderr)
        return 2
    problems: list[str] = [f"{e.path}: {e.message}" for e in snapshot.errors]
    ir_documents = [d for d in snapshot.documents if "nodeId" in d.body and "kind" not in d.body]
    if ir_documents:
        try:
            config = codec.proxy_config_from_dict(dict(ir_documents[0].body))
        except codec.IRDecodeError as e:
            print(f"kubelb translate: {ir_documents[0].origin}: {e}", file=sys.stderr)
            return 2
        problems.extend(config.validate())
    else:
        config, lb_problems = _from_objects(args.file, address_pool)
        problems.extend(p for p in lb_problems if p not in problems)  # file errors: once
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(_render(config, args.to), end="")
    return 1 if snapshot.errors else 0


def _from_objects(
    path: Path, address_pool: tuple[str, ...] | None
) -> tuple[proxy.ProxyConfig, list[str]]:
    config, status = logs.run_loop(standalone.translate(path, address_pool))
    problems = list(status["errors"])
    for lb in status["loadBalancers"]:
        problems.extend(
            f"LoadBalancer {lb['namespace']}/{lb['name']}: {c['reason']}: {c['message']}"
            for c in lb["conditions"]
            if c["reason"] != conditions.RECONCILED
        )
    return config, problems


def _render(config: proxy.ProxyConfig, to: str) -> str:
    if to == "ir":
        data: Any = codec.to_dict(config)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    # Imported here: the protobuf classes are slow to load and `--to ir` needs none of them.
    from kubelb.xds import translate
    from kubelb.xds.translate import render

    return render.to_yaml(translate.translate(config))
