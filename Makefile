# Every install goes through constraints.txt (torch pinned to the CPU wheel on disk).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt
PACKAGES := smac_rl envs/smac_rl_envs forecasting/smac_rl_forecasting serve/smac_rl_serve

.PHONY: demo test check lint setup setup-dev serve-only-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[all]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[all,dev]"
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed          ## create .venv and install the package with every component

setup-dev: $(VENV)/.installed-dev  ## create .venv and install the package with the dev tools

demo: setup                        ## the main job on the bundled default data
	$(BIN)/smac demo

lint: setup-dev                    ## ruff, mypy and the import-linter layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES) tests
	$(BIN)/lint-imports

test: lint                         ## lint, then the whole test suite
	$(BIN)/python -m pytest

SERVE_VENV ?= /tmp/smac-serve-only
SERVE_PORT ?= 18080
FORBIDDEN_IN_SERVE := torch stable-baselines3 mlflow lightgbm pyomo gymnasium pandas

serve-only-check:                  ## install ".[serve]" alone in a fresh venv, check what it pulls, start it
	rm -rf $(SERVE_VENV) && $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -c constraints.txt ".[serve]"
	@for p in $(FORBIDDEN_IN_SERVE); do \
	  if $(SERVE_VENV)/bin/python -m pip show --quiet $$p >/dev/null 2>&1; then \
	    echo "serve-only-check: [serve] pulled $$p"; exit 1; fi; done
	@db=$$(mktemp -d)/serve.db; \
	$(SERVE_VENV)/bin/smac serve --port $(SERVE_PORT) --database-url sqlite:///$$db & pid=$$!; \
	ok=1; for i in $$(seq 1 60); do \
	  if $(SERVE_VENV)/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(SERVE_PORT)/healthz', timeout=1)" 2>/dev/null; then ok=0; break; fi; \
	  sleep 1; done; kill $$pid; wait $$pid 2>/dev/null || true; \
	if [ $$ok -ne 0 ]; then echo "serve-only-check: the service did not answer /healthz"; exit 1; fi; \
	echo "serve-only-check: [serve] alone installs without the training stack and answers /healthz"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
