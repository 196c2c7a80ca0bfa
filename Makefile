# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create the virtual environment (.venv) and install the pinned dependencies themselves.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: demo test install dagster clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/lifecycle demo

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

dagster: $(INSTALLED)
	$(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .lifecycle *.egg-info
