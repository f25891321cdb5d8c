# Entry points: make demo | make test | make bench  (see README.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := constraints/dev.txt
STAMP := $(VENV)/.ceir-installed
LOCAL_PACKAGES := '.[cpu,report]' plugins/open-clip plugins/vae plugins/openai plugins/anthropic plugins/static \
	plugins/ray exporters/onnx plugins/serve
# The plugins under tests/plugin_fixtures are not installed: tests/conftest.py exposes them to the
# test session only, so `ceir --help` in this venv lists the product's commands alone.
PROJECT_FILES := pyproject.toml requirements-dev.txt $(CONSTRAINTS) \
	$(wildcard plugins/*/pyproject.toml exporters/*/pyproject.toml)
export HF_HUB_OFFLINE := 1

.PHONY: venv browser demo test lint typecheck pytest bench bench-quick clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Reinstalls only when a project file changed; a ready .venv is left alone.
$(STAMP): $(PY) $(PROJECT_FILES)
	$(PIP) install -q -c $(CONSTRAINTS) torch torchvision
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements-dev.txt $(addprefix -e ,$(LOCAL_PACKAGES))
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ceir demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(wildcard ceir_sdk plugins exporters examples tests benchmarks scripts)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The report test opens the demo's HTML in Debian's headless Chromium (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser test of the report will skip"; \
	  else echo "chromium is missing: install it (apt-get install chromium) for the report test"; fi; }

pytest: $(STAMP) browser
	$(VENV)/bin/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
