# vlab: every target creates .venv (when missing or older than pyproject.toml) and installs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the suite starts hundreds of Pythons (the CLI, emulators, Silero and Dask workers, kernels): let them
# reuse compiled bytecode in __pycache__ (git-ignored) even where the shell turned it off
unexport PYTHONDONTWRITEBYTECODE
# pytest-xdist: one worker per core and one more (tests/conftest.py; work-stealing, set in
# pyproject.toml); the `realtime` tests run one at a time: the browser's beside the parallel part, the
# sound card's after it (scripts/run_tests.py)
PARALLEL ?= -n auto

.PHONY: venv demo test test-matrix lint lab bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)  ## the main job on the embedded emulator
	$(BIN)/vlab demo

test: lint  ## the whole test suite (with the release check: tests/release builds and installs the wheel)
	$(BIN)/python scripts/run_tests.py $(PARALLEL) --durations=20

test-matrix: $(STAMP)  ## the fast part of the suite on Python 3.10 and 3.13 (pyenv), each in .venv-3.X
	$(BIN)/python scripts/test_matrix.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

lab: $(STAMP)  ## JupyterLab on the notebooks (rooted here, so their links to docs/ open)
	$(BIN)/jupyter lab --LabApp.default_url=/lab/tree/notebooks

bench: $(STAMP)  ## benchmarks (not part of make test)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .ruff_cache .mypy_cache build dist
