# Every install goes through constraints.txt (torch pinned to the CPU wheel on disk).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt
PACKAGES := smac_rl envs/smac_rl_envs forecasting/smac_rl_forecasting serve/smac_rl_serve

.PHONY: demo test check lint setup setup-dev clean

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

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
