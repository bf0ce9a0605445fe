# Two commands do everything on a fresh machine (see README):
#   make quickstart   set up .venv if needed, then run the main job
#   make test         set up .venv if needed, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dvlm-installed

.PHONY: quickstart test setup clean

$(STAMP): pyproject.toml
	# Debian's chromium for the browser test of `dvlm serve` (playwright drives it; never `playwright install`)
	if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
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
