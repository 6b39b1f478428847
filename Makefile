# `make run` and `make test` do all the set-up: a .venv with the project installed.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch comes from PyTorch's CPU index when no local wheel satisfies the pin.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: help run backtest-demo test lint typecheck unit bench clean lock

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "raytrader needs Python 3.11+; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.torch: constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt torch || \
	  $(BIN)/pip install -q -c constraints.txt torch --index-url $(TORCH_INDEX)
	touch $@

$(VENV)/.run: pyproject.toml constraints.txt $(VENV)/.torch
	$(BIN)/pip install -q -c constraints.txt -e '.[all]'
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt $(VENV)/.torch
	@# The store tests start their own redis-server.
	@command -v redis-server >/dev/null || { \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	    $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; \
	  else \
	    echo "The tests need redis-server (Redis 7) on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), then re-run make." >&2; \
	    exit 1; \
	  fi; }
	@# The browser tests drive Debian's chromium headless (never a browser Playwright downloads).
	@[ -x /usr/bin/chromium ] || { \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	    $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "The browser tests need Chromium at /usr/bin/chromium: install Debian's chromium package (apt-get install chromium), then re-run make." >&2; \
	    exit 1; \
	  fi; }
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev]'
	touch $@ $(VENV)/.run

lock:  ## regenerate constraints.txt, the lock, in a fresh venv from pyproject's ranges
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	grep -E '^torch==' constraints.txt > .lock-venv/torch.txt
	.lock-venv/bin/pip install -q -c .lock-venv/torch.txt torch || \
	  .lock-venv/bin/pip install -q -c .lock-venv/torch.txt torch --index-url $(TORCH_INDEX)
	.lock-venv/bin/pip install -q -c .lock-venv/torch.txt '.[all]' \
	  "ray[default,client]==$$(sed -n 's/^ARG RAY_VERSION=//p' Dockerfile)"
	{ sed '/^[^#]/,$$d' constraints.txt; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^raytrader'; } > .lock-venv/lock.txt
	mv .lock-venv/lock.txt constraints.txt
	rm -rf .lock-venv

run: $(VENV)/.run  ## the orchestrator on embedded defaults + a demo paper session (Ctrl-C stops)
	$(BIN)/raytrader serve --demo

backtest-demo: $(VENV)/.run  ## backtests of the bundled demos, metrics table and run folders
	$(BIN)/raytrader demo

lint: $(VENV)/.dev  ## ruff lint + format check, import contracts, Dockerfile lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/hadolint --failure-threshold info Dockerfile

typecheck: $(VENV)/.dev  ## mypy --strict on the package
	$(BIN)/mypy raytrader

# Test files run in TEST_WORKERS processes (pytest-xdist), each with its own local Ray: most
# tests wait on actors, sessions and servers, so two processes overlap on two cores.
TEST_WORKERS ?= 2

unit: $(VENV)/.dev  ## pytest only
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test: lint typecheck unit  ## everything CI runs

bench: $(VENV)/.dev  ## speed comparisons against peer backtesters
	$(BIN)/python benchmarks/backtest_speed.py

clean:  ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
