"""Subcommands of `kubelb` other than the long-running modes. Each module defines `HELP`,
`add_arguments(parser)` and `run(args) -> int`; `kubelb.cli` lists them in `SUBCOMMANDS`."""
