"""Integration tests: the real Docker engine, the local registry and the reference coordinator
as a process. Their fixtures are in rma_testkit/fixtures.py."""
