# Two commands do everything on a fresh machine (see README):
#   make quickstart   set up .venv with the main job's dependencies if needed, then run the main job
#   make test         add the test extras (and Debian's chromium for the browser test), check the lock, run the tests
# Both install the exact versions in requirements.lock (a pip constraints file); `make lock` refreshes it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock
MAIN_STAMP := $(VENV)/.dvlm-main
TEST_STAMP := $(VENV)/.dvlm-test
# torch first, pinned: on the project's CPU machines these wheels are on local disk (no multi-GB download)
TORCH := torch==2.14.1 torchvision==0.29.1
LOCK_VENV := .lock-venv

.PHONY: quickstart test setup lock clean

$(MAIN_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e .
	touch $(MAIN_STAMP)

$(TEST_STAMP): $(MAIN_STAMP)
	# Debian's chromium for the browser test of `dvlm serve` (playwright drives it; never `playwright install`)
	if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	$(PIP) -e ".[dev]"
	touch $(TEST_STAMP)

setup: $(TEST_STAMP)

quickstart: $(MAIN_STAMP)
	$(VENV)/bin/dvlm bench benchmarks/matrices/quickstart.yaml --out runs/quickstart

test: $(TEST_STAMP)
	$(PY) -m dvlm.core.environment_lock check --extras dev
	$(PY) -m pytest

# Re-resolve every dependency from pyproject's ranges in a scratch venv, run the whole suite there, and rewrite
# requirements.lock only when the tests pass. Review the diff of requirements.lock, then commit it.
lock:
	# .venv reinstalls from the new lock on the next make (its stamps depend on requirements.lock)
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(LOCK_VENV)/bin/python -m pytest
	$(LOCK_VENV)/bin/python -m dvlm.core.environment_lock freeze --out requirements.lock
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .hypothesis
