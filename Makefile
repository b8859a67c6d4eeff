# Everything runs from .venv, which this Makefile creates and fills itself: a fresh clone needs only
# python3 (3.11+), and kubectl on PATH for the differential tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Resolved when a recipe runs (after the venv exists): the wheel-shipped binaries in .venv, or PATH.
ACTIONLINT = $(or $(wildcard $(BIN)/actionlint),actionlint)
SHELLCHECK = $(or $(wildcard $(BIN)/shellcheck),shellcheck)

WORKFLOWS := $(wildcard .github/workflows/*.yml) $(wildcard examples/*.yml)

.PHONY: all demo test lint bench clean distclean venv
.DEFAULT_GOAL := test

all: lint test

venv: $(STAMP)

# Re-run pip whenever the dependency declarations change.
$(STAMP): pyproject.toml requirements.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "python >= 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -e '.[dev]'
	# botocore is the test oracle for the EKS token (tests/test_credentials_eks.py), dev only. It is not in the
	# dev extra because pip cannot resolve it there: it requires python-dateutil<3, kubernetes 37 requires >=3.
	# Installed without dependencies (jmespath is its only other one); it imports and presigns fine with 4.x.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'botocore==1.44.8' 'jmespath==1.1.0'
	touch $@

demo: $(STAMP)
	$(BIN)/python demo.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 4 tests/

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(ACTIONLINT) -shellcheck=$(SHELLCHECK) -pyflakes= $(WORKFLOWS)
	$(BIN)/zizmor --offline --no-progress .github/ $(wildcard examples/*.yml)
	$(BIN)/hadolint Dockerfile

bench: $(STAMP)
	@set -e; for f in bench/*.py; do \
		[ -e "$$f" ] || { echo "no bench/*.py yet"; break; }; \
		echo "== $$f"; $(BIN)/python "$$f"; \
	done

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
