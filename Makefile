# Two commands on a fresh machine: `make run` (the service on the embedded stack) and
# `make test` (the whole suite). Both build the virtualenv first when it is missing or stale.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test worker migrate clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/distribution dev

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

worker: $(STAMP)
	$(VENV)/bin/distribution worker

migrate: $(STAMP)
	$(VENV)/bin/distribution migrate

clean:
	rm -rf $(VENV) .distribution .pytest_cache .hypothesis
