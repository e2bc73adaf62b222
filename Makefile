# Two entry points: `make demo` (install + the main job) and `make test` (install + every test).
# `make test` also installs the optional extras (ray; view: rerun-sdk, matplotlib; lsl: pylsl), so
# their tests run; `make demo` stays without them. The browser test needs Chromium (apt-get install
# chromium) and skips, saying so, without it.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS_STAMP := $(VENV)/.installed-extras

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The tests also cover the optional extras (ray: tests/test_cluster.py; view, lsl: tests/test_view_*.py),
# so `make test` installs them.
$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,ray,view,lsl]'
	touch $(EXTRAS_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spot-live --demo

test: $(EXTRAS_STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
