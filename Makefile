# AgentTracer developer commands. `make up` starts the platform; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Stamps record which extras were installed and when, so a changed pyproject.toml reinstalls.
SERVER_STAMP := $(VENV)/.stamp-server
DEV_STAMP := $(VENV)/.stamp-dev
UI_DIST := src/agenttracer/ui_dist
UI_SOURCES := $(shell find ui/src ui/index.html ui/package.json ui/package-lock.json ui/vite.config.ts -type f 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: up test bench ui lint typecheck clean

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
test: $(DEV_STAMP) $(UI_DIST)/index.html
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: the benchmarks under bench/, each printing its figures
bench: $(DEV_STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## ui: build the dashboard into the Python package
ui: $(UI_DIST)/index.html

$(UI_DIST)/index.html: $(UI_SOURCES)
	@if [ -f ui/package.json ]; then \
		cd ui && npm ci --no-audit --no-fund && npm run build; \
	else \
		echo "ui/ has no package.json yet: the dashboard is not built"; \
	fi

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(UI_DIST) ui/node_modules .pytest_cache .mypy_cache .ruff_cache
