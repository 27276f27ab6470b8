# The README's contract: `make demo` and `make test` work on a fresh clone with only Python 3.11+.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(VENV)/bin/

.PHONY: env demo test test-fast format dev serve bench bench-quick lock clean-data

# The environment comes from uv.lock; uv itself is bootstrapped into .venv at the locked version.
$(VENV)/.synced: uv.lock pyproject.toml
	test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet uv==$(UV_VERSION))
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet
	touch $@

env: $(VENV)/.synced

demo: env
	$(RUN)lakehouse demo

test: env
	$(RUN)ruff format --check .
	$(RUN)ruff check .
	$(RUN)pytest

# The fast inner loop: no test that needs a server (Redis, PostgreSQL, `bentoml serve`).
test-fast: env
	$(RUN)pytest -m "not integration"

# Format and sort imports in place (what `make test` checks).
format: env
	$(RUN)ruff check --fix --select I .
	$(RUN)ruff format .

dev: env
	$(RUN)lakehouse dev

# The churn champion behind HTTP on 127.0.0.1:3001 (after `make demo`); no telemetry to BentoML.
serve: env
	BENTOML_DO_NOT_TRACK=True $(RUN)bentoml serve bentos.churn_service:ChurnService --host 127.0.0.1 --port 3001

bench: demo  # the training benchmark uses the demo's training set
	$(RUN)python bench/run.py

bench-quick: demo
	$(RUN)python bench/run.py --quick

# Re-resolve dependencies after editing pyproject.toml (commit the new uv.lock and bentos/requirements.txt).
lock:
	$(UV) lock
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header -o bentos/requirements.txt

clean-data:
	rm -rf data/landing data/lake data/feast data/dagster data/lakehouse.duckdb
