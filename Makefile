# AgentTracer developer commands. `make up` starts the platform; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Stamps record which extras were installed and when, so a changed pyproject.toml reinstalls.
SERVER_STAMP := $(VENV)/.stamp-server
DEV_STAMP := $(VENV)/.stamp-dev
UI_DIST := src/agenttracer/ui_dist
UI_SOURCES := $(shell find ui/src ui/public ui/index.html ui/package.json ui/package-lock.json ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)
UI_DEPS := ui/node_modules/.stamp
# The Vercel AI SDK agent of the conformance corpus (tests/conformance/node), run live by the tests.
CONFORMANCE_NODE_DEPS := tests/conformance/node/node_modules/.stamp
PYTEST_ARGS ?=

.PHONY: up test bench ui ui-test api-types lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(SERVER_STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[server]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(SERVER_STAMP)

## up: install what is missing, build the dashboard if stale, and start ingest :8000, query :8001, UI :3000
up: $(SERVER_STAMP) $(UI_DIST)/index.html
	$(VENV)/bin/agenttracer up

## test: every test (SDK, storage on SQLite and PostgreSQL, servers, CLI, browser end to end)
test: $(DEV_STAMP) $(UI_DIST)/index.html ui-test $(CONFORMANCE_NODE_DEPS)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: the benchmarks under bench/, each printing its figures
bench: $(DEV_STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## ui: build the dashboard into the Python package (npm ci when the lock file changed, then vite build)
ui: $(UI_DIST)/index.html

$(UI_DEPS): ui/package.json ui/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js >= 20 with npm to build the dashboard"; exit 1; }
	cd ui && npm ci --no-audit --no-fund
	touch $@

$(CONFORMANCE_NODE_DEPS): tests/conformance/node/package.json tests/conformance/node/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js >= 20 with npm for the conformance tests"; exit 1; }
	cd tests/conformance/node && npm ci --no-audit --no-fund
	touch $@

$(UI_DIST)/index.html: $(UI_DEPS) $(UI_SOURCES)
	cd ui && npm run build

## ui-test: the dashboard's unit tests (Vitest)
ui-test: $(UI_DEPS)
	cd ui && npm test

## api-types: regenerate ui/openapi.json and the dashboard's API types from the Query API
api-types: $(DEV_STAMP) $(UI_DEPS)
	$(PY) -c 'import json, sys; from agenttracer.server.query import create_app; from agenttracer.server.settings import Settings; json.dump(create_app(Settings()).openapi(), sys.stdout, indent=2, sort_keys=True); print()' > ui/openapi.json
	cd ui && npm run gen:api

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(UI_DIST) ui/node_modules .pytest_cache .mypy_cache .ruff_cache
