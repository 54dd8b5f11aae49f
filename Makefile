# The two set-up commands of the README: `make demo` and `make test`.
# Both start from nothing: they create .venv and install crmcore, its plugins
# and the test tools from PyPI (and Chromium from Debian's packages for the
# browser tests, when apt-get is available).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := plugins/email_marketing plugins/ticketing plugins/surveys plugins/accounting_bridge
EXAMPLES := examples/welcome_plugin examples/dental_clinic_bundle examples/host_app

# Programs some tests drive for real: Chromium (pages rendered in a browser) and
# ledger (accounting exports); and wrk, the load generator of bench/capture.py.
# Installed from Debian's packages when missing; without apt (or root) the tests
# that need them skip and say why (and the bench falls back to its Python generator).
SYSTEM_PROGRAMS := chromium ledger wrk

.PHONY: demo test venv system-deps lint bench docs clean

$(BIN)/.installed: setup.cfg pyproject.toml $(foreach p,$(PLUGINS) $(EXAMPLES),$(p)/setup.cfg)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]" $(foreach p,$(PLUGINS) $(EXAMPLES),-e $(p))
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/crm demo --output demo.db

system-deps:
	@missing=""; for p in $(SYSTEM_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing from Debian's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note:$$missing not installed (no apt-get or not root): the tests needing them will skip"; fi; \
	fi

# Test processes in parallel (pytest-xdist; a module's tests stay in one process).
# Most time is spent waiting on the databases, so three beat two on a 2-core machine.
TEST_JOBS ?= 3

test: venv system-deps
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadscope

lint: venv
	$(BIN)/ruff check crmcore plugins tests bench examples
	$(BIN)/mypy crmcore

clean:
	rm -rf $(VENV) *.egg-info plugins/*/*.egg-info examples/*/*.egg-info demo.db* demo-mail demo-dashboard.html site

docs: venv
	$(BIN)/python -m crmcore.docs
	$(BIN)/mkdocs build --strict
