# Two commands do everything on a fresh machine (see README):
#   make quickstart   set up .venv if needed, then run the main job
#   make test         set up .venv if needed, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dvlm-installed

.PHONY: quickstart test setup clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: on the project's CPU machines these wheels are on local disk (no multi-GB download)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/dvlm bench benchmarks/matrices/quickstart.yaml --out runs/quickstart

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
