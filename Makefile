# Two entry points (see README):  make demo   and   make test
# Both set everything up first: venv (torch 2.13.0 CPU build first), pinned deps, assets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error
RUNS ?= runs
CHROMIUM := /usr/lib/chromium/chromium

.PHONY: setup assets browser test test-fast demo runs dashboard bench lint clean-venv

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/.installed assets

assets: $(BIN)/.installed
	$(BIN)/interp fetch all

browser:
	@if [ ! -x $(CHROMIUM) ] || ! command -v chromedriver >/dev/null; then \
	  echo "installing Debian chromium + chromium-driver for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null); \
	fi

test: setup browser
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: setup
	$(BIN)/pytest -q -m "not integration and not app and not notebook"

runs: setup
	@for e in sanity ioi-reuse talking-heads embedding-space obsprop factual-recall bigram-subnetworks attention-atlas testbeds; do \
	  $(BIN)/interp run $$e --quick --out $(RUNS) || exit 1; \
	done

demo: runs
	$(BIN)/interp dashboard --runs $(RUNS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check interp apps tests benchmarks experiments
