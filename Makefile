# Two commands on a fresh machine: `make run` (the service on the embedded stack) and
# `make test` (the whole suite). Both build the virtualenv first when it is missing or stale.

PYTHON ?= python3
VENV := .venv
# Test files run in this many processes, each file whole in one (its module fixtures and
# the session's servers are per process). The suite mostly waits on servers and timers, so
# 3 processes on 2 cores take about 40% of the time of one; PYTEST_WORKERS=0 runs in-process.
PYTEST_WORKERS ?= 3
STAMP := $(VENV)/.installed-stamp
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install browser run test worker migrate clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/distribution dev

# The console's tests (tests/e2e/test_console.py) drive Debian's Chromium headless.
browser:
	test -x /usr/bin/chromedriver || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium chromium-driver; }

test: $(STAMP) browser
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

worker: $(STAMP)
	$(VENV)/bin/distribution worker

migrate: $(STAMP)
	$(VENV)/bin/distribution migrate

clean:
	rm -rf $(VENV) .distribution .pytest_cache .hypothesis
