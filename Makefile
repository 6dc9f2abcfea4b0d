# distgp developer commands. `make run` and `make test` work on a fresh machine with Python 3.10+ (CI: 3.11);
# for a CPU-only install outside CI, see the torch step below.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# distgp sets its own thread limits, so `run` and the benchmarks measure the path a user gets with
# no thread variables. The tests pin one BLAS thread (bit-stable results, no oversubscription
# while Ray tests run several processes).
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: install run test test-all lint format bench-quick clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned. It is a CPU build only where pip finds one (the CI machines' local
	# wheelhouse); from PyPI alone torch==2.13.0 is the multi-GB CUDA build on Linux. Elsewhere,
	# put the CPU build into $(VENV) first (README, Quick start); this step then keeps it.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install distgp with its test tools

run: install  ## the main job: fit a GSMP kernel to Mauna Loa CO2 (writes runs/default)
	$(BIN)/distgp fit --config configs/default.yaml

test: install  ## the test suite CI runs (all but @slow; includes a real 2-node Ray cluster on loopback)
	$(ONE_THREAD) RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest

test-all: install  ## every test, slow ones included
	$(ONE_THREAD) RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -m ""

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-quick: install  ## smoke-run every benchmark suite with small settings
	$(BIN)/distgp bench kernel --quick
	$(BIN)/distgp bench admm --quick
	$(BIN)/distgp bench bkb --quick
	$(BIN)/distgp bench faults --quick
	$(BIN)/distgp bench threads --quick
	$(BIN)/distgp bench tune --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
