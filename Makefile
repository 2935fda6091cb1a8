# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# The suite runs in two processes (pytest-xdist): each has its own databases, servers
# and ports, and the machines have two cores. `make test PYTEST_WORKERS=0` runs it in one.
PYTEST_WORKERS ?= 2
# The browser tests drive Debian's Chromium (never a downloaded browser) and inject
# axe-core from npm; `make test` installs both where missing.
CHROMIUM := /usr/bin/chromium
# The consent PDF is set in DejaVu Sans (Latin, Arabic): Debian's fonts-dejavu-core.
DEJAVU := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
AXE := tests/browser/node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run env-file test lint smoke bench messages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

# Every link (emails, sign-in links, pages) is built on TRIALDESK_BASE_URL, which the
# settings read from .env: `make run` writes this server's address there (keeping the
# file's other lines), so that `trialdesk` commands run beside it use the same one.
# Behind a proxy: make run BASE_URL=https://trial.example.org
BASE_URL ?= http://$(HOST):$(PORT)

env-file:
	@grep -qx 'TRIALDESK_BASE_URL=$(BASE_URL)' .env 2>/dev/null || { umask 077; \
	  { grep -v '^TRIALDESK_BASE_URL=' .env 2>/dev/null; echo 'TRIALDESK_BASE_URL=$(BASE_URL)'; } \
	    > .env.tmp && mv .env.tmp .env && echo "  .env: TRIALDESK_BASE_URL=$(BASE_URL)"; }

run: env-file $(VENV)/.installed-run $(DEJAVU)
	$(BIN)/trialdesk db upgrade
	@token=$$($(BIN)/trialdesk demo) && \
	  link=$$($(BIN)/trialdesk users sign-in-link admin@demo.trialdesk.org --valid-for 24h 2>/dev/null | tail -n 1) && \
	  echo "" && \
	  echo "  Staff console:    open this one-time sign-in link (valid 24 hours, once):" && \
	  echo "                    $$link" && \
	  echo "  Demo admin token: $$token" && \
	  echo "  Server key file:  $$($(BIN)/trialdesk keys where | tail -n 1)" && \
	  echo "                    (escrow it: trialdesk keys export OUT; see docs/keys.md)" && \
	  echo "  API docs:         http://$(HOST):$(PORT)/docs" && \
	  echo "  Try:              curl -H 'Authorization: Bearer $$token' http://$(HOST):$(PORT)/api/v1/studies/peer-support" && \
	  echo ""
	$(BIN)/trialdesk serve --host $(HOST) --port $(PORT)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(DEJAVU):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq fonts-dejavu-core

$(AXE): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --silent
	touch $@

test: $(VENV)/.installed-test $(CHROMIUM) $(AXE) $(DEJAVU)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Static checks, as CI runs them: style, formatting, types (strict on app/), and the
# import contracts of pyproject.toml (layers, no cycles, pure rules).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check app tests benchmarks migrations tools setup.py .ci/wheel-smoke
	$(BIN)/ruff format --check app tests benchmarks migrations tools setup.py .ci/wheel-smoke
	$(BIN)/mypy
	$(BIN)/lint-imports

# The package as an operator installs it: build the wheel, install it into a fresh
# virtual environment, migrate, load the demo, serve, and fetch the console's sign-in
# page, a survey page and /docs (.ci/wheel-smoke; under a minute with a warm pip cache).
smoke:
	$(PYTHON) .ci/wheel-smoke

# Benchmarks keep the key files of their SQLite databases out of ~/.config.
bench: export XDG_CONFIG_HOME := $(CURDIR)/benchmarks/results/config
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/enroll.py
	$(BIN)/python benchmarks/surveys.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/console.py

# The participant pages' fixed texts: extract them (babel.cfg) and bring every language's
# catalogs (app/i18n/locale/<code>/LC_MESSAGES/*.po) up to date; new texts are then named
# by tests/i18n/test_catalogs.py until they are translated (docs/languages.md).
messages: $(VENV)/.installed-run
	$(BIN)/python -m app.i18n.extraction

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
