"""`python -m kubelb` is the `kubelb` command."""

import sys

from kubelb import cli

sys.exit(cli.main())
