# ImageClass: `make run` serves the whole app with embedded defaults; `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test manage clean-venv up down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when a requirements file changed.
$(VENV)/.run-installed: requirements/base.txt requirements/ml.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/ml.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/ml.txt requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	PORT=$(PORT) $(BIN)/python -m imageclass.embedded run

# Two pytest-xdist workers, each with its own embedded database and Redis; a file's tests stay
# on one worker, which builds its module fixtures (trained tiny models, a running app) once.
TEST_WORKERS ?= 2

# axe-core for the browser tests' accessibility checks, from the npm registry (package-lock.json).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

test: $(VENV)/.dev-installed node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Any manage.py command against the embedded database, e.g. make manage ARGS=createsuperuser
manage: $(VENV)/.run-installed
	$(BIN)/python -m imageclass.embedded manage $(ARGS)

# Production stack (docker/compose.yml): MongoDB, Redis, MinIO, web, worker, scheduler.
COMPOSE := docker compose --env-file docker/.env -f docker/compose.yml

docker/.env:
	$(PYTHON) docker/generate_env.py $@

up: docker/.env
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

clean-venv:
	rm -rf $(VENV)
