"""Lets `python -m controller` behave exactly like the `rma-worker` console script."""

from controller.cli.commands import main

raise SystemExit(main())
