"""`python -m supervisor [--config PATH]`: the same as `gortms serve`."""

from __future__ import annotations

import sys

from gortms.cli import main

raise SystemExit(main(["serve", *sys.argv[1:]]))
