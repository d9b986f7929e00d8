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

# Bastion beside node's oidc-provider over HTTP (wrk), the in-process validator and the footprint; not
# part of `make test`. Report: bench/results/<date>.md. BENCH_ARGS, e.g. --quick or --backends sqlite.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	  elif command -v sudo >/dev/null 2>&1; then as_root="sudo"; \
	  else echo "bench: wrk is missing; run 'apt-get install -y wrk' as root" >&2; exit 1; fi; \
	  command -v apt-get >/dev/null 2>&1 || { echo "bench: wrk is missing and apt-get is not available" >&2; exit 1; }; \
	  echo "bench: installing the Debian 'wrk' package..." >&2; \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Dpkg::Use-Pty=0 update >/dev/null && \
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Dpkg::Use-Pty=0 install -y wrk >/dev/null || \
	  { echo "bench: 'apt-get install -y wrk' failed" >&2; exit 1; }; }
	bash scripts/ensure-node-peers.sh >/dev/null
	$(BIN)/python -m bench.run $(BENCH_ARGS)
