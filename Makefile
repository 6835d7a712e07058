# Everything sets itself up: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: demo test lint typecheck unit bench chaos clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# src, then the static checks of the public types (tests/typing: never run by pytest) and the
# seed examples, which must keep type-checking as users wrote them, and the chaos suite.
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tests/typing tests/test_seed_examples.py chaos

# Two pytest workers (pytest-xdist): most tests wait on timers and databases, so the suite
# takes about half the time on two cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck unit

# The benchmarks and the peers they compare with (the bench extra) live in their own venv.
$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

# The chaos suite (chaos/, docs/reliability.md "Chaos suite"): kill -9, PostgreSQL restarts,
# SIGSTOP, a full disk and a poison task against real worker processes, a few minutes; `make
# test` runs a short version (tests/test_chaos.py). E.g. CHAOS_ARGS="--only kills --seed 7".
chaos: $(STAMP)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .pytest_cache .ruff_cache
