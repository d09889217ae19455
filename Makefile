# The two commands a new user runs:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint unit bench protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,sql,plot,analysis]'
	touch $(STAMP)

## setup: create .venv and install mpc with its test and dev tools
setup: $(STAMP)

## demo: set everything up and run a 3-party demo on this machine
demo: setup
	$(BIN)/mpc demo --parties 3

## test: lint, type-check and run the whole test suite
test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: issue 12's performance targets beside the measured ratios, one run (minutes)
bench: setup
	$(BIN)/python bench/targets.py

## protos: regenerate mpc/proto/v1 from protos/
protos: setup
	$(BIN)/python scripts/gen_protos.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
