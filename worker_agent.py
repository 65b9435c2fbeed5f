#!/usr/bin/env python3
"""The seed README's entry point, `python worker_agent.py [...]`: the same as `rma-worker [...]`."""

from controller.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
