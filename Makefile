# amidcc: every target creates its own virtual environment (.venv) first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint bench demo clean venv

# Held to mypy --strict: the pure core (codecs, events, and topology and the MMS policy when they
# land) and everything else but the simulators (not yet clean).
STRICT := src/amidcc/codecs src/amidcc/events.py src/amidcc/cli src/amidcc/gateway \
	src/amidcc/net src/amidcc/pcap src/amidcc/demo

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
	$(VENV)/bin/mypy --strict $(STRICT)

TERMINETER_VENV := .venv-termineter

# termineter lives in its own environment: it installs a top-level `c1218` package.
$(TERMINETER_VENV)/.installed:
	$(PYTHON) -m venv $(TERMINETER_VENV)
	$(TERMINETER_VENV)/bin/python -m pip install -q 'termineter==1.0.6' || true
	touch $@

# Each benchmark prints its own figures; docs/benchmarks.md records them. BENCH=codecs runs one.
BENCH ?= codecs simulators_memory mqtt_throughput modbus_link pcap_analyze fleet gateway_read_cycle

bench: $(STAMP) $(TERMINETER_VENV)/.installed
	@for b in $(BENCH); do echo "== bench.$$b"; \
	  TERMINETER_PYTHON=$(TERMINETER_VENV)/bin/python $(PY) -m bench.$$b || exit 1; echo; done

demo: $(STAMP)
	$(VENV)/bin/amidcc demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) $(TERMINETER_VENV) build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
