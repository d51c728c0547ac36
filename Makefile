# make run   -> the service on 127.0.0.1:8080 (auth off, local development only)
# make test  -> every test, including the integration tests against a real FHIR server
# make fuzz  -> 50,000 hostile requests (FUZZ_CASES=N for another count): no 5xx, every error an OperationOutcome
# Each target creates what it needs (.venv, .venv-fhir, Debian's PostgreSQL for the store's tests) on a fresh
# machine with only Python 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FHIR_VENV := .venv-fhir
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test fuzz bench demo profiles fhir-server-venv postgresql-server chromium clean test-population

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# sekmet-fhir pins its own fhir.resources/pydantic: it gets a virtualenv of its own.
$(FHIR_VENV)/bin/sekmet:
	$(PYTHON) -m venv $(FHIR_VENV)
	$(FHIR_VENV)/bin/pip install --quiet sekmet-fhir==0.1.1

fhir-server-venv: $(FHIR_VENV)/bin/sekmet

# The store's tests start a throw-away PostgreSQL cluster of their own (tests/postgres_server.py): they need the
# server binaries, not a running server. Quick when present; CI runs as root on a possibly fresh Debian machine.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
postgresql-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "install a PostgreSQL server (initdb, pg_ctl) for the tests" >&2; exit 1; }; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }

# The browser tests (tests/dashboard, tests/pro) drive Debian's chromium through Playwright (never
# `playwright install`, which downloads a browser build of its own). Quick when present.
chromium:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  command -v apt-get >/dev/null || { echo "install Chromium (/usr/bin/chromium) for the browser tests" >&2; exit 1; }; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

run: $(BIN)/.installed
	@echo "fhir-pain: CDS Hooks service on http://$(HOST):$(PORT)/cds-services (auth OFF: local development only)"
	@echo "  discovery:  curl -s http://$(HOST):$(PORT)/cds-services"
	@echo "  cards:      $(BIN)/fhir-pain demo --request ava-codeine | curl -s -H 'Content-Type: application/json' --data-binary @- http://$(HOST):$(PORT)/cds-services/pain-pgx-order-select"
	@echo "  sandbox:    https://sandbox.cds-hooks.org/?serviceDiscoveryURL=http://$(HOST):$(PORT)/cds-services (see docs/sandbox.md)"
	@echo "  PRO form:   http://$(HOST):$(PORT)/pro/fill/phq9?patient=demo-patient (scored, not saved: see README)"
	@echo "  dashboard:  http://$(HOST):$(PORT)/dashboard/demo/  (demo patients, no launch; e.g. http://$(HOST):$(PORT)/dashboard/demo/demo-13-mara-non-responder)"
	FHIR_PAIN_DASHBOARD_DEMO=1 $(BIN)/fhir-pain serve --host $(HOST) --port $(PORT) --auth off

test: $(BIN)/.installed $(FHIR_VENV)/bin/sekmet postgresql-server chromium
	FHIR_PAIN_SEKMET=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m pytest $(PYTEST_ARGS)

# The hostile-input battery at length (tests/test_hostile_input.py runs a few hundred cases in `make test`).
FUZZ_CASES ?= 50000
fuzz: $(BIN)/.installed
	FHIR_PAIN_FUZZ_CASES=$(FUZZ_CASES) $(BIN)/python -m pytest -q tests/test_hostile_input.py $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench

# Population scale (issue 17): a bulk sweep of 10,000 synthetic patients loaded into sekmet writes exactly the
# DetectedIssues the per-patient poller writes (several minutes; `make test` runs the same with a few hundred).
test-population: $(BIN)/.installed $(FHIR_VENV)/bin/sekmet
	FHIR_PAIN_SEKMET=$(abspath $(FHIR_VENV))/bin/sekmet $(BIN)/python -m pytest -q -m slow tests/population $(PYTEST_ARGS)

demo: $(BIN)/.installed
	$(BIN)/fhir-pain demo

# Regenerate the CPIC-derived knowledge from the CPIC exports in reference/cpic (provenance in its README);
# the alert workbooks' keys are those of the recommendation tables, so they come second; the RxNorm product
# table (reference/rxnorm, provenance in its README) maps product codes to the ingredients of drugs.json.
# DPWG's guidance comes from reference/dpwg (provenance and CC BY-SA 4.0 attribution in its README).
profiles: $(BIN)/.installed
	$(BIN)/python scripts/build_cpic_profiles.py
	$(BIN)/python scripts/build_cpic_alerts.py
	$(BIN)/python scripts/build_rxnorm_products.py
	$(BIN)/python scripts/build_opioid_profiles.py
	$(BIN)/python scripts/build_dpwg_profiles.py

clean:
	rm -rf $(VENV) $(FHIR_VENV) build *.egg-info .pytest_cache
