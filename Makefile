# Two commands: `make demo` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-pythons lint bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/pipeplex demo

test: $(VENV)/.installed-test
	@sh tests/system-deps.sh
	$(BIN)/python -m pytest
	$(BIN)/python -m mypy
	$(BIN)/ruff check src tests bench

# The suite under other Pythons as well, each in its own .venv-3.X (about 3 minutes each).
PYTHONS ?= python3.12 python3.13
test-pythons:
	@sh tests/other-pythons.sh $(PYTHONS)

lint: $(VENV)/.installed-test
	$(BIN)/python -m mypy
	$(BIN)/ruff check src tests bench

# Benchmarks side by side with the peers (installed into the ignored bench/.peers):
# `make bench` writes docs/benchmarks.md and .png (about 8 minutes); `make bench-quick`
# is a one-minute smoke test that writes bench/results/ instead.
bench: $(VENV)/.installed
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/run_all.py

bench-quick: $(VENV)/.installed
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) $(VENV)-3.* build dist
