# Two commands: `make serve` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Bastion needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/bastion db upgrade
	$(BIN)/bastion demo
	$(BIN)/bastion serve

lint: $(STAMP)
	$(BIN)/ruff check bastion tests
	$(BIN)/mypy bastion

test: $(STAMP)
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check bastion tests
	$(BIN)/mypy bastion
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .cache test-artifacts
