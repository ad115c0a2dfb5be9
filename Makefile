# Two commands do all set-up on a fresh machine:
#   make demo   bring the suite up and tell its story on the embedded default (Python, make, apt)
#   make test   run every test (also needs npm, for buf, the proto linter)
#   make test-stress   run every test while stress-ng keeps one core busy (the suite must not flake)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-stress bench setup redis-server stress-ng h2load sim-paper protos clean

$(STAMP): pyproject.toml setup.py
	@command -v python3 >/dev/null || { echo "python3 is missing: install Python 3.10+ (apt-get install python3 python3-venv)"; exit 2; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[executor,sim,device,dev]'
	@touch $@

BUF := $(VENV)/buf/node_modules/.bin/buf

setup: $(STAMP) redis-server

# buf (protobuf lint, run by the tests only) comes from the npm registry as a platform package.
$(BUF):
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js/npm (apt-get install npm) for buf, the proto linter"; exit 2; }
	mkdir -p $(VENV)/buf && npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@1.75.0

# The tests start their own redis-server (and a Sentinel group, a Cluster) on free ports; install
# them when we can.
redis-server:
	@{ command -v redis-server && command -v redis-sentinel; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq redis-server redis-sentinel >/dev/null); \
	  fi; }
	@command -v redis-server >/dev/null || { echo "redis-server is missing: install it (apt-get install redis-server) and re-run"; exit 2; }
	@command -v redis-sentinel >/dev/null || { echo "redis-sentinel is missing: install it (apt-get install redis-sentinel) and re-run"; exit 2; }

demo: setup
	$(VENV)/bin/modipick demo

test: setup $(BUF)
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite on a busy machine: one core kept busy by stress-ng for as long as the tests run.
test-stress: setup stress-ng
	@stress-ng --cpu 1 --timeout 0 --quiet & STRESS=$$!; \
	  trap 'kill $$STRESS 2>/dev/null; wait $$STRESS 2>/dev/null' EXIT; \
	  $(PY) -m pytest $(PYTEST_ARGS)

stress-ng:
	@command -v stress-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq stress-ng >/dev/null); \
	  fi; }
	@command -v stress-ng >/dev/null || { echo "stress-ng is missing: install it (apt-get install stress-ng) and re-run"; exit 2; }

bench: setup h2load
	$(PY) -m benchmarks

# The Selector throughput benchmark drives load with nghttp2's h2load (C) when it is installed,
# so the load does not take the cores the Selector is measured on.
h2load:
	@command -v h2load >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null); \
	  fi; }
	@command -v h2load >/dev/null || echo "h2load is missing (apt-get install nghttp2-client): selector_throughput falls back to Python load"

sim-paper: setup
	$(VENV)/bin/modipick sim paper --out out/paper

protos: $(STAMP)
	$(PY) protos/generate.py

clean:
	rm -rf $(VENV) out .pytest_cache
