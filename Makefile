# riskpipe: two commands for a fresh clone.
#   make test   create .venv if missing, check the import contract, run the test suite
#   make demo   create .venv if missing, then run the end-to-end demo
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.riskpipe-installed

.PHONY: test test-all demo venv clean

venv: $(STAMP)

$(STAMP): requirements/constraints.txt setup.py
	bash scripts/bootstrap_venv.sh $(VENV)
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

demo: $(STAMP)
	$(VENV)/bin/riskpipe demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
