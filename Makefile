# Two commands on a fresh machine: `make demo` (the CPU demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: install install-test demo test test-fast clean

$(BIN)/mirrorl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	@touch $@

install: $(BIN)/mirrorl

# the tests also exercise the Ray backend, an optional extra the demo does not need
$(VENV)/.test-deps: $(BIN)/mirrorl
	$(BIN)/pip install -e ".[dev,ray]"
	@touch $@

install-test: $(VENV)/.test-deps

demo: install
	$(BIN)/mirrorl demo --config configs/demo.yaml --out $(OUT)

test: install-test
	$(BIN)/pytest -q

test-fast: install-test
	$(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
