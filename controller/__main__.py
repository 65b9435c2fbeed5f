"""Lets `python -m controller` behave exactly like the `rma-worker` console script."""

from controller.cli import main

raise SystemExit(main())
