"""The `kubelb` command line: `kubelb --mode=MODE [flags]` runs a long-lived process; `kubelb
SUBCOMMAND` runs a one-shot tool (`crds`, `translate`, `dev-cluster`).

Flags become frozen settings here; everything else lives in the mode's own package.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Subcommand name -> module under kubelb.commands (imported lazily: each pulls heavy dependencies).
SUBCOMMANDS: dict[str, str] = {
    "crds": "crds",
    "translate": "translate",
    "dev-cluster": "dev_cluster",
    "lb": "lb",
    "status": "status",
}

# Mode name -> module under kubelb.app with `add_arguments(parser)` and `run(args) -> int`.
MODES: dict[str, str] = {
    "standalone": "standalone",
    "manager": "manager",
    "agent": "agent",
}

DESCRIPTION = """\
kubelb: centrally managed load balancing for fleets of Kubernetes clusters.

Modes (long-running):
  kubelb --mode=standalone --config PATH   serve LoadBalancers from files, no Kubernetes needed
  kubelb --mode=manager                    management cluster: tenants, ports, Envoy over xDS
  kubelb --mode=agent                      tenant cluster: Services/Nodes -> KubeLB resources

Tools:
  kubelb SUBCOMMAND --help                 for one of: {subcommands}
  kubelb lb list|get|create|delete         LoadBalancers on a management cluster (kubectl flags)
  kubelb status                            per tenant: what is served, and what is not and why

As a kubectl plugin (`kubectl-kubelb` on PATH): `kubectl kubelb lb list`, `kubectl kubelb status`.

Run `kubelb --mode=MODE --help` for the flags of a mode.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        return _run_subcommand(args[0], args[1:])
    mode = _find_mode(args)
    if mode is None:
        _top_parser().print_help()
        return 0 if any(a in ("-h", "--help") for a in args) else 2
    module = _load("kubelb.app", MODES[mode])
    parser = argparse.ArgumentParser(prog=f"kubelb --mode={mode}", description=module.__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    module.add_arguments(parser)
    result: int = module.run(parser.parse_args(args))
    return result


def _run_subcommand(name: str, args: list[str]) -> int:
    module = _load("kubelb.commands", SUBCOMMANDS[name])
    parser = argparse.ArgumentParser(
        prog=f"{_prog()} {name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    result: int = module.run(parser.parse_args(args))
    return result


def _find_mode(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        value = None
        if a.startswith("--mode="):
            value = a.split("=", 1)[1]
        elif a == "--mode" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            if value not in MODES:
                sys.stderr.write(f"kubelb: unknown mode {value!r}; choose from {sorted(MODES)}\n")
                raise SystemExit(2)
            return value
    return None


def _top_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="kubelb",
        description=DESCRIPTION.format(subcommands=", ".join(sorted(SUBCOMMANDS)) or "(none yet)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _prog() -> str:
    """`kubectl kubelb` when run as the kubectl plugin `kubectl-kubelb`, else `kubelb`."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv else ""
    return "kubectl kubelb" if invoked.startswith("kubectl-kubelb") else "kubelb"


def _load(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")
