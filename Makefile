# The two commands of the README: `make run` and `make test`.
PYTEST_ARGS ?=

.PHONY: setup setup-test run test lint

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

run: setup
	.venv/bin/voice-agent serve

test: setup-test
	.venv/bin/python -m pytest -ra $(PYTEST_ARGS)

lint:
	.venv/bin/ruff check server agent speech knowledge messaging scheduler configs tests
