# packetlab: `make demo` and `make test` install what they need, then run. Idempotent and quiet.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# The reference's certificate tool, as interop peer for the tests (PyPI `pktlab`; it needs
# the older cryptography it was written for, so it lives in venvs of its own).
REF_VENV := .venv-ref
REF_STAMP := $(REF_VENV)/.installed
REF0_VENV := .venv-ref0
REF0_STAMP := $(REF0_VENV)/.installed
PL := $(VENV)/bin/packetlab

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml scripts/ensure-system.sh
	@scripts/ensure-system.sh
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@scripts/pip-quiet.sh $(VENV) -e '.[dev]'
	@touch $@

$(REF_STAMP):
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	@scripts/pip-quiet.sh $(REF_VENV) pktlab==1.0.4 cryptography==42.0.8 pyopenssl==24.2.1 \
		|| echo "note: reference ppksman 1.0.4 could not be installed; interop tests will skip"
	@touch $@

$(REF0_STAMP):
	@test -x $(REF0_VENV)/bin/python || $(PYTHON) -m venv $(REF0_VENV)
	@scripts/pip-quiet.sh $(REF0_VENV) pktlab==0.3.0 cryptography==42.0.8 pyopenssl==24.2.1 \
		|| echo "note: reference ppksman 0.3.0 could not be installed; v0.x interop tests will skip"
	@touch $@

demo: $(STAMP)
	@$(VENV)/bin/python scripts/demo.py

test: $(STAMP) $(REF_STAMP) $(REF0_STAMP)
	@PACKETLAB_REF_VENV=$(CURDIR)/$(REF_VENV) PACKETLAB_REF0_VENV=$(CURDIR)/$(REF0_VENV) \
		$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	@$(VENV)/bin/ruff check src tests bench scripts examples
	@$(VENV)/bin/ruff format --check src tests bench scripts examples

typecheck: $(STAMP)
	@$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	@$(VENV)/bin/python bench/pki_verify.py

clean:
	rm -rf $(VENV) $(REF_VENV) $(REF0_VENV) .pytest_cache .mypy_cache .ruff_cache
