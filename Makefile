# Two commands for a new user: `make demo` and `make test`. Everything they need is
# installed by these targets: the Python env from pyproject.toml, Kafka's jars via Maven.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-stop test chaos lint typecheck unit integration venv kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/zegama-live demo

demo-stop: $(STAMP)
	$(BIN)/zegama-live demo --stop

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -ra --durations=10 -m "not chaos"

# A race on a local 3-broker cluster while brokers, workers, broadcasters and ingest are
# killed (tests/chaos; about 10 minutes). .ci/run runs it after make test.
chaos: $(STAMP)
	$(BIN)/pytest -q -ra -s -m chaos tests/chaos

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not chaos"

integration: $(STAMP)
	$(BIN)/pytest -q -m "integration and not chaos"

kafka-start: $(STAMP)
	$(BIN)/zegama-live kafka start

kafka-stop: $(STAMP)
	$(BIN)/zegama-live kafka stop

clean:
	-$(BIN)/zegama-live kafka stop
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
