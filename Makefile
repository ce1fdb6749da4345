# The two commands of the README: `make demo` and `make test`. Everything they need is set up here
# in .venv, so a fresh clone with ../shared beside it needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and pinned: the local CPU build; a looser requirement pulls GBs of CUDA packages.
TORCH := torch==2.13.0

.PHONY: demo test lint setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[build,targets,weights,sweep,search,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgecnn build recipes/mobilenet_int8.yaml

lint: $(STAMP)
	$(BIN)/ruff check edgecnn tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile.jetson

# -rs: every skipped test with its reason (and their count on the last line), so a green run
# that skipped what it should have run says so; --durations: the slowest tests, to keep the
# whole run near its 20-minute budget. -n 2: two pytest workers (pytest-xdist), one per core of
# the CI machine: most of the suite is single-threaded (imports, ONNX and LiteRT conversion,
# subprocesses, Ray start-up); --dist loadscope keeps a module's tests, and so its fixtures
# (a conversion, a build), on one worker. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/pytest -q -rs --durations=25 -n $(TEST_WORKERS) --dist loadscope

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
