# pycontainerd — the targets people look for.
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: install install-test run test protos lint format bench clean

install:            ## install runtime dependencies and pycontainerd into .venv
	scripts/install.sh

install-test:       ## also install what the tests need (ctr, registry, busybox, ...)
	scripts/install.sh --test

run:                ## install what is missing, run the daemon (ARGS="--root ... -l debug")
	scripts/run.sh $(ARGS)

test:               ## install what the tests need, run the whole suite (as root)
	scripts/test.sh

protos:             ## regenerate pycontainerd/api from protos/
	$(PY) scripts/gen_protos.py

lint:               ## ruff check, format check and the type checker
	scripts/lint.sh

format:
	$(VENV)/bin/ruff format .

bench: install-test ## benchmarks, side by side with their references
	$(PY) -m bench

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
