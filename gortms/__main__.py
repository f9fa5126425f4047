"""`python -m gortms` runs the `gortms` command."""

from gortms.cli import main

raise SystemExit(main())
