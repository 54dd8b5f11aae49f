# The two set-up commands of the README: `make demo` and `make test`.
# Both start from nothing: they create .venv and install crmcore, its plugins
# and the test tools from PyPI (and Chromium from Debian's packages for the
# browser tests, when apt-get is available).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := plugins/email_marketing plugins/ticketing plugins/surveys plugins/accounting_bridge
EXAMPLES := examples/welcome_plugin

.PHONY: demo test venv lint bench docs clean

$(BIN)/.installed: setup.cfg pyproject.toml $(foreach p,$(PLUGINS) $(EXAMPLES),$(p)/setup.cfg)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]" $(foreach p,$(PLUGINS) $(EXAMPLES),-e $(p))
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/crm demo --output demo.db

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check crmcore plugins tests bench examples
	$(BIN)/mypy crmcore

clean:
	rm -rf $(VENV) *.egg-info plugins/*/*.egg-info demo.db*
