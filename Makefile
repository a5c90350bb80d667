.PHONY: setup demo test lint bench

setup:  ## install everything (idempotent)
	bash scripts/setup.sh

demo:  ## set up, then run the demo league in `dagster dev` and `coworld serve` (process runtime; Ctrl-C stops both)
	bash scripts/demo.sh

test:  ## lint + the whole test suite (Docker, browser and Postgres tests included)
	bash scripts/test.sh

lint:
	.venv/bin/ruff check .

bench:  ## print the benchmark figures
	for b in benchmarks/*.py; do .venv/bin/python $$b || exit 1; done
