# RMA worker agent. `make run` and `make test` work on a fresh Debian machine (as root):
# they install what is missing (apt and pip) and start what is needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SERVICES := bash manifests/services.sh
DEMO_MANIFEST ?= manifests/demo/manifest.yaml

.PHONY: install services engine registry demo-images image install-service run run-manifest \
        run-once test unit integration lint settings-table bench screenshot \
        check clean help

help:
	@echo "make run        install, start Docker, run a local coordinator and an agent (Ctrl-C stops)"
	@echo "make run-manifest  the agent on the demo manifest, no coordinator"
	@echo "make test       install, start Docker + local registry, run the whole test suite"
	@echo "make unit       unit and contract tests (no Docker, no network beyond loopback)"
	@echo "make lint       ruff check + format, mypy --strict, import contracts"
	@echo "make settings-table  regenerate docs/settings.md's table from Settings"
	@echo "make screenshot      the owner's page in a real browser: docs/dashboard.png"
	@echo "make bench      run the benchmarks (~10 min): bench/results/ and docs/performance.md"
	@echo "make services   install (if missing) and start the Docker engine, local registry and PostgreSQL"
	@echo "make image      build the agent's container image rma-worker:local"
	@echo "make install-service  install the agent under /opt/rma-worker and enable its systemd unit"
	@echo "make clean      remove the virtualenv, caches and build output"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv \
	  && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

services:
	$(SERVICES) all

engine:
	$(SERVICES) engine

registry:
	$(SERVICES) registry

demo-images:
	$(SERVICES) images

image: install engine
	PYTHON=$(BIN)/python bash manifests/image.sh

# Installs the agent in its own virtualenv, the unit file, and enables it. ROOT=dir installs
# into another root (used by the tests); the unit then still names /usr/local/bin/rma-worker.
ROOT ?=
install-service:
	$(PYTHON) -m venv $(ROOT)/opt/rma-worker
	$(ROOT)/opt/rma-worker/bin/pip install -q --disable-pip-version-check .
	mkdir -p $(ROOT)/usr/local/bin $(ROOT)/etc/systemd/system
	ln -sf /opt/rma-worker/bin/rma-worker $(ROOT)/usr/local/bin/rma-worker
	install -m 0644 manifests/rma-worker.service $(ROOT)/etc/systemd/system/rma-worker.service
	systemctl $(if $(ROOT),--root=$(ROOT)) enable rma-worker.service
	@if [ -z "$(ROOT)" ] && [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload && systemctl restart rma-worker.service && \
	  echo "rma-worker started: journalctl -u rma-worker -f"; \
	else echo "rma-worker enabled; it starts at the next boot (systemd is not running here)"; fi

# The agent's main job: a local reference coordinator (demo catalog) and an agent registered
# with it, until Ctrl-C. The demo page is served on http://127.0.0.1:18080/.
run: install demo-images
	BIN=$(BIN) bash manifests/demo/run.sh

# The same agent from a local manifest instead of a coordinator. The demo image exists only
# locally, so there is no registry to refresh it from.
DEMO_ENV := RMA_STATE_DIR=$${RMA_STATE_DIR:-$(CURDIR)/.state} \
	RMA_PUBLISH_ADDRESS=$${RMA_PUBLISH_ADDRESS:-127.0.0.1} \
	RMA_IMAGE_REFRESH_INTERVAL=$${RMA_IMAGE_REFRESH_INTERVAL:-0}

run-manifest: install demo-images
	$(DEMO_ENV) $(BIN)/rma-worker --manifest $(DEMO_MANIFEST)

run-once: install demo-images
	$(DEMO_ENV) $(BIN)/rma-worker --manifest $(DEMO_MANIFEST) --once

# Unit, contract and integration tests; integration needs the engine, so a missing one fails
# them here (RMA_REQUIRE_DOCKER=1). RMA_DESTRUCTIVE=1 adds the tests that stop the host's
# engine or wait minutes (CI sets it).
# Two phases: the tests side by side (TEST_WORKERS processes: they mostly wait on the engine), then
# the `serial` ones alone (they hold the whole host: tests/conftest.py). Both run; either fails it.
# `worksteal`: an idle worker takes tests queued for another. The default hands out the collection
# in contiguous chunks, so the integration tests (nine tenths of the time) fell to two or three
# workers while the others idled: 6:44 of tests side by side, 3:19 with worksteal (ADR 0016).
TEST_WORKERS ?= 6
test: install services
	@status=0; \
	RMA_REQUIRE_DOCKER=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not serial" tests || status=1; \
	RMA_REQUIRE_DOCKER=1 $(BIN)/pytest -q -m serial tests || status=1; \
	exit $$status

unit: install
	$(BIN)/pytest -q tests/unit tests/contract

integration: install services
	RMA_REQUIRE_DOCKER=1 $(BIN)/pytest -q tests/integration

# Style, types and the architecture's import contracts (pyproject.toml [tool.importlinter]).
# import-linter has a virtualenv of its own: its dependency `rich` would otherwise be imported by
# structlog in every agent start (~0.15 s here), and it reads the source, it imports nothing.
LINTED := controller rma_coordinator rma_testkit bench tests worker_agent.py
LINT_VENV := .venv-lint
$(LINT_VENV)/.installed:
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install -q 'import-linter>=2.1,<3'
	@touch $@

lint: install $(LINT_VENV)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	PYTHONPATH=$(CURDIR) $(LINT_VENV)/bin/lint-imports

# docs/settings.md's table and the CLI's flags.json, generated from controller/settings/.
settings-table: install
	$(BIN)/python -m controller.cli.settings_table --readme docs/settings.md \
	  --flags controller/cli/flags.json

# One run of every benchmark on this machine (about 10 minutes); writes bench/results/bench.json,
# bench.md and bench.png and puts the table into docs/performance.md. BENCH_ARGS=--quick: a smoke run.
BENCH_ARGS ?= --readme docs/performance.md
# The owner's page in a real browser against a real agent; its screenshot is docs/owner.md's.
screenshot: install services
	RMA_REQUIRE_DOCKER=1 RMA_SCREENSHOT=docs/dashboard.png $(BIN)/pytest -q \
	  tests/integration/test_dashboard_browser.py

bench: install services
	$(BIN)/python -m bench $(BENCH_ARGS)

check: lint test

clean:
	rm -rf $(VENV) $(LINT_VENV) .state .build build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache \
	  .hypothesis .import_linter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
