# aisle: the front door. `make demo` and `make test` set everything up on a fresh machine.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
# Real datasets for the realdata tests and benchmarks (see ../shared/data/README.md).
export AISLE_DATA_HOME ?= $(abspath $(CURDIR)/../shared/data)

.PHONY: install demo test test-fast bench lint clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/aisle quickstart

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow and not realdata and not services"

# make bench                   every benchmark in benchmarks/ (long; Redis and wrk for some)
# make bench BENCH=bench_models  one of them
bench: install
	$(PY) benchmarks/run_all.py $(BENCH)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/aisle

clean:
	rm -rf $(VENV) .aisle .pytest_cache .mypy_cache .ruff_cache
