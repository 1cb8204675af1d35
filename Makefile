# tix: `make demo` and `make test` create .venv when missing (torch pinned first, so pip takes
# the local CPU wheel instead of a multi-GB CUDA build), install the project, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench lint tmux-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tix demo

test: $(STAMP)
	$(BIN)/ruff check engine storage tui tests bench
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/status.py
	$(BIN)/python bench/ti.py
	$(BIN)/python bench/backend.py
	$(BIN)/python bench/scorers.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/shift.py
	$(BIN)/python bench/tui.py

lint: $(STAMP)
	$(BIN)/ruff check engine storage tui tests bench

clean:
	rm -rf $(VENV) build *.egg-info
