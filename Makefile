# The two commands a newcomer needs: `make run` starts the service, `make test`
# runs every check CI runs. Both create the virtualenv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CLI    := $(BIN)/order-status

.PHONY: install servers run test check lint typecheck pytest test-faults soak demo bench schemas format clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install the project with its dev tools

servers:  ## Start PostgreSQL and RabbitMQ if they are not listening (or say what is missing)
	.ci/servers

run: install servers  ## Migrate, declare the topology and run every worker (Ctrl-C stops)
	$(CLI) migrate
	$(CLI) declare
	$(CLI) run all

test: check pytest  ## Everything CI runs: lint, types, then the test suite

check: lint typecheck

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The fault suite: every scenario of tests/faults at full size (a quick form of a few runs in
# `make test`). Some faults touch the shared broker; they take a lock of their own, so two runs never do it at once.
test-faults: install  ## Kill, cut, stall and overload the workers; check no command is lost
	$(BIN)/pytest tests/faults -m "not soak" $(PYTEST_ARGS)

soak: install  ## An hour at a steady rate with periodic faults (SOAK_SECONDS to shorten); not in CI
	$(BIN)/pytest tests/faults -m soak -s $(PYTEST_ARGS)

demo: install  ## Play a short scenario against the local servers and print it
	$(CLI) demo

BENCH_ARGS ?= --orders 1000 --commands 20000 --duplicates 0.02 --invalid 0.02
bench: install  ## Measure throughput, latency, memory and CPU end to end, then check the run
	$(CLI) bench $(BENCH_ARGS)

schemas: install  ## Regenerate contracts/schemas from the models
	$(BIN)/python -m contracts.schemas_export

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
