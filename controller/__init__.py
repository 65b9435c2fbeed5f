"""RMA worker agent: keeps this machine's Docker engine converged to what RMA assigns it."""

__version__ = "0.8.0"
