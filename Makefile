# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

DEMO_AT  = $(shell cat fixtures/generated/VALIDATION_TIME 2>/dev/null)

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,webhook,redis,sigstore]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "# trust data written by the real notary client (fixtures/generated), as of $(DEMO_AT)"
	$(BIN)/trustcheck verify --offline --trust-dir fixtures/generated/trust --at $(DEMO_AT) \
	    localhost/basic:v1 localhost/releases:v1 localhost/signers:split localhost/signers:alice-unreleased \
	    || test $$? -eq 1
	$(BIN)/trustcheck inspect --offline --pretty --trust-dir fixtures/generated/trust --at $(DEMO_AT) localhost/signers

# Debian packages the real-server tests need: the notary client and server, docker-registry,
# skopeo (pull tests), redis-server (webhook shared cache), openssl (test certificates),
# time (make bench).
system-deps:
	@if ! command -v notary >/dev/null || ! command -v notary-server >/dev/null \
	    || ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null \
	    || ! command -v openssl >/dev/null || ! test -x /usr/bin/time \
	    || ! command -v redis-server >/dev/null; then \
	  echo "installing notary, docker-registry, skopeo, redis-server, openssl and time with apt-get" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    notary docker-registry skopeo redis-server openssl time >/dev/null; \
	fi

test: system-deps $(STAMP)
	$(BIN)/ruff check trustcheck tests fixtures $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check trustcheck tests fixtures $(wildcard bench)
	$(BIN)/mypy

bench: system-deps $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
