# Two entry points, each safe to repeat on a fresh clone:
#   make run   create .venv if needed, install, serve the dashboard on http://localhost:8501
#   make test  create .venv if needed, install with test extras, run the whole test suite

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test clean

# Reinstall whenever pyproject.toml changes; the stamp records the last install.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lsi-app run $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
