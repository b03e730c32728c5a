# Thin targets over real commands. `make demo` runs the stack, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test fuzz bench bench-quick lint format rules dashboards clean

# One venv for every target: the dev tools, and the embedded PostgreSQL that `make demo` falls
# back to without server binaries (a test runs the local run on it).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m stack $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The fuzz test of both command lines with many examples (the suite runs a few dozen).
fuzz: $(STAMP)
	ECM_FUZZ_EXAMPLES=$${ECM_FUZZ_EXAMPLES:-5000} $(PY) -m pytest tests/test_fuzz.py -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

bench-quick: $(STAMP)
	$(PY) -m bench --quick $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

rules: $(STAMP)
	$(PY) -m stack.rules

dashboards: $(STAMP)
	$(PY) -m stack.dashboards
	$(PY) -m stack.dashboards_pm

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
