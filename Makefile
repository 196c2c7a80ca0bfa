# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create the virtual environment (.venv) and install the pinned dependencies themselves.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint install install-browser dagster docs clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

# The report's test opens it in headless Chromium (the Debian package), installed when missing.
install-browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: $(INSTALLED)
	$(VENV)/bin/lifecycle demo

test: $(INSTALLED) install-browser lint
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

# ruff on the Python and sqlfluff on the dbt project: the hooks of .pre-commit-config.yaml, on every file.
lint: $(INSTALLED)
	$(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

dagster: $(INSTALLED)
	$(VENV)/bin/dagster dev -w workspace.yaml

# dbt's documentation site (models, columns, tests, lineage and the exposures) of the warehouse in
# $LIFECYCLE_HOME (default .lifecycle; a `make demo` leaves one), on http://localhost:8080.
DOCS_HOME = $(abspath $(or $(LIFECYCLE_HOME),.lifecycle))
docs: $(INSTALLED)
	cd dbt_project && LIFECYCLE_HOME=$(DOCS_HOME) ../$(VENV)/bin/dbt docs generate --profiles-dir . \
		--target-path $(DOCS_HOME)/dbt/docs
	cd dbt_project && LIFECYCLE_HOME=$(DOCS_HOME) ../$(VENV)/bin/dbt docs serve --profiles-dir . \
		--target-path $(DOCS_HOME)/dbt/docs --port 8080 --no-browser

clean:
	rm -rf $(VENV) .lifecycle *.egg-info
