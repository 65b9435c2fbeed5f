"""`python -m rma_coordinator`."""

from rma_coordinator.main import main

raise SystemExit(main())
