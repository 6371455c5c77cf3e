# The two commands of the README. Both set up what is missing first (idempotently).
.PHONY: run test lint typecheck pytest setup bench clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	@scripts/bootstrap.sh

run: setup
	@$(BIN)/python examples/shop/run_local.py

lint: setup
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
