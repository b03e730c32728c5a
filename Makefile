# Thin targets over real commands. `make demo` runs the stack, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: lock demo test fuzz bench bench-quick lint format rules dashboards detect detect-live clean \
	run-producer run-senders run-sender run-monitor

# One venv for every target: the dev tools, and the embedded PostgreSQL that `make demo` falls
# back to without server binaries (a test runs the local run on it).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,embedded]'
	touch $(STAMP)

# Rewrite constraints.txt from a fresh resolution of pyproject.toml (then run `make test`).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev,embedded]'
	{ head -n 2 constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^ecm[= @]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

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

# Detection and reset times of every scenario (promtool, committed rules and timings) into
# docs/DETECTION.md.
detect: $(STAMP)
	$(PY) -m tests.stack.detection.report --write

# The same scenarios in real time on the real stack, timed at an independent receiver (about 52
# minutes, every scenario side by side) into docs/DETECTION.md.
detect-live: $(STAMP)
	$(PY) -m tests.stack.detection.live --write $(ARGS)

# The SMS broadcast, as the seed ran it (README "SMS broadcast"); ECM_DATABASE_URL names the
# database. MESSAGE_COUNT, SENDER_MEAN_TIME, SENDER_FAILURE_RATE and MONITOR_INTERVAL are read
# from the environment by ecm-broadcast itself.
SENDER_COUNT ?= 1
run-producer: $(STAMP)
	$(PY) -m broadcast produce $(ARGS)

run-senders: $(STAMP)
	$(PY) -m broadcast sender --senders $(SENDER_COUNT) $(ARGS)

run-sender: $(STAMP)
	$(PY) -m broadcast sender $(if $(MEAN_TIME),--mean-time $(MEAN_TIME)) $(if $(FAIL_RATE),--failure-rate $(FAIL_RATE)) --metrics-port 0 $(ARGS)

run-monitor: $(STAMP)
	$(PY) -m broadcast monitor $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
