# mash-router: the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STACK := python3 deploy/local/stack.py

.PHONY: run stop test faults lint format bench stack stack-down secure-stack secure-stack-down \
	venv schemas clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mash-router needs Python 3.11 (found " + sys.version.split()[0] + ")"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

stack: ## start (or check) the local Kafka broker and PostgreSQL
	$(STACK) up

stack-down:
	$(STACK) down
	$(STACK) down --secure

secure-stack: venv ## start (or check) the secured Kafka broker and apply deploy/security/principals.yaml
	$(STACK) up --secure
	$(PY) -m deploy.security.acls apply

secure-stack-down:
	$(STACK) down --secure

run: venv stack ## the whole pipeline locally, fed with simulated traffic (SECURE=1: on the secured broker)
	$(PY) -m deploy.local.pipeline run $(if $(SECURE),--secure)

stop: venv ## stop the four services and the local stack
	$(PY) -m deploy.local.pipeline stop
	$(STACK) down
	$(STACK) down --secure

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services mash schemas deploy tests

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

schemas: venv ## re-export the JSON Schema files after changing the models
	$(PY) -m schemas.export

test: venv stack lint ## lint, type-check and the whole suite against the real broker and database
	$(VENV)/bin/pytest

faults: venv ## the fault suite alone (its own broker and database); prints the fault table
	$(VENV)/bin/pytest -m faults tests/faults

bench: venv stack ## benchmarks that print figures (no pass/fail)
	$(PY) -m tests.bench.bench_pipeline $(BENCH_ARGS)
	$(PY) -m tests.bench.da_year

clean:
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache
