# The README's two commands are `make up` and `make test`; both install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements.lock requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml | cksum | cut -d' ' -f1)
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: up test install protos lint bench lock clean

$(STAMP): $(LOCKS) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip==25.3
	$(PIP) install -r requirements-dev.lock
	$(PIP) install --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/nexus up

test: $(STAMP)
	@scripts/ensure-docker-compose.sh
	@test -x /usr/bin/chromium || echo "make test: no Chromium at /usr/bin/chromium, so the browser tests (tests/browser) are SKIPPED; apt-get install chromium runs them"
	$(BIN)/pytest

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	cd protos && ../$(BIN)/buf lint

# Re-pin the whole dependency tree after editing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet . && .lock-venv/bin/python -m pip freeze --exclude nexus > .lock-runtime
	.lock-venv/bin/python -m pip install --quiet '.[dev]' && .lock-venv/bin/python -m pip freeze --exclude nexus > .lock-all
	(echo "# Runtime dependencies, the whole tree pinned (make lock regenerates)."; cat .lock-runtime) > requirements.lock
	(echo "# Development tools on top of the runtime pins (make lock regenerates)."; echo "-r requirements.lock"; \
	  grep -vxFf .lock-runtime .lock-all) > requirements-dev.lock
	rm -rf .lock-venv .lock-runtime .lock-all

# The runtime benchmark; its last line is one JSON object (see scripts/bench.py).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .nexus .mypy_cache .ruff_cache .pytest_cache
