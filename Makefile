# amidcc: every target creates its own virtual environment (.venv) first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint bench demo clean venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,pcap]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy --strict src/amidcc/codecs

TERMINETER_VENV := .venv-termineter

# termineter lives in its own environment: it installs a top-level `c1218` package.
$(TERMINETER_VENV)/.installed:
	$(PYTHON) -m venv $(TERMINETER_VENV)
	$(TERMINETER_VENV)/bin/python -m pip install -q 'termineter==1.0.6' || true
	touch $@

bench: $(STAMP) $(TERMINETER_VENV)/.installed
	TERMINETER_PYTHON=$(TERMINETER_VENV)/bin/python $(PY) -m bench.codecs

demo: $(STAMP)
	$(VENV)/bin/amidcc demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(TERMINETER_VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
