# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment (.venv) and install everything first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.av-pipeline-installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench clean setup

$(STAMP): setup.cfg constraints.txt pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/avp demo --out out/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
