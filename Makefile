# Two commands for a new machine: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Debian packages the tests need; installed only when missing: a real Mosquitto for the
# MQTT tests, espeak-ng and sox for voice announcements, Chromium and the CJK fonts for
# the pages' browser tests (Playwright drives Debian's Chromium; it downloads no browser),
# systemd for `systemd-analyze verify` of the units `hallctl install` writes, Prometheus
# to scrape /metrics in tests/test_monitoring.py, and PostgreSQL's server for the district
# centre (its tests start a cluster of their own).
DEB_PACKAGES := mosquitto espeak-ng sox alsa-utils chromium fonts-noto-cjk systemd prometheus postgresql

.PHONY: demo district test lint test-privacy bench bench-core bench-calling bench-deployed bench-hallday bench-history bench-center soak faults fuzz deps-debian clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

deps-debian:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# The demo hall on http://127.0.0.1:8000 with simulated devices. Its clock starts
# at 09:00 of the next open weekday so tickets can be taken at any hour. Another port,
# data directory or hall file: `make demo PORT=8080 DATA=/tmp/hall CONFIG=my-hall.toml`.
PORT ?= 8000
DATA ?= var/demo
CONFIG ?= config/demo-hall.toml
# DISTRICT=HOST:PORT ships the demo hall's event log to that district broker (`make district`).
DISTRICT ?=
demo: $(STAMP) deps-debian
	$(VENV)/bin/hallctl run --config $(CONFIG) --data-dir $(DATA) --port $(PORT) --simulate --clock-start 09:00 $(if $(DISTRICT),--district demo@$(DISTRICT))

# A district centre on this machine: its own PostgreSQL cluster and Mosquitto (broker on
# 127.0.0.1:18840) under var/district, and the centre's API on http://127.0.0.1:8100/api/v1/halls.
district: $(STAMP) deps-debian
	$(VENV)/bin/districtctl local --dir var/district --port 8100

test: lint $(STAMP) deps-debian
	$(PY) -m pytest -q

# the gates: ruff (with a complexity limit) and mypy, configured in pyproject.toml
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

# MQTT accounts and ACL, key rotation, retention, masking (docs/reliability.md)
test-privacy: $(STAMP) deps-debian
	$(PY) -m pytest -q tests/test_mqtt_security.py tests/test_personal_data.py tests/test_masking.py tests/test_privacy.py

# Benchmarks never gate CI; they rewrite their section of docs/benchmarks.md.
bench-core: $(STAMP)
	$(PY) -m bench.core

bench-calling: $(STAMP) deps-debian
	$(PY) -m bench.calling

# Issue 15's targets on the deployed shape: `hallctl run --simulate` on a 300-window hall with
# the calling floor, the embedded broker, the hall board and voice, plus a py-spy profile of
# the server under call-next load (py-spy is installed into the venv when missing). ~3 minutes.
bench-deployed: $(STAMP) deps-debian
	@test -x $(VENV)/bin/py-spy || $(PY) -m pip install -q 'py-spy>=0.4,<0.5'
	$(PY) -m bench.deployed

# A simulated hall day: big-hall-rush's speed and the wait estimate against its baselines.
bench-hallday: $(STAMP)
	$(PY) -m bench.hallday

# 200,000 tickets of history: report times, restart, bytes per ticket (several minutes)
bench-history: $(STAMP)
	$(PY) -m bench.history

# 200 simulated halls into one district centre: events/s into PostgreSQL, lag, a backlog, the page's data
bench-center: $(STAMP) deps-debian
	$(PY) -m bench.center

bench: bench-core bench-calling bench-deployed bench-hallday

# Issue 14's attacks through hallctl run and the real brokers (docs/reliability.md, Attacks).
.PHONY: attacks bench-slow-clients
attacks: $(STAMP) deps-debian
	$(PY) -m pytest -q tests/attacks

bench-slow-clients: $(STAMP)
	$(PY) -m bench.slow_clients

# Fuzzing: a million random and mutated frames per codec entry point, atheris for 30 s per
# target, schemathesis against the OpenAPI schema; rewrites its figures in docs/reliability.md.
# Every part runs; the exit status is 1 if any found something (reproducers in var/fuzz/).
# CI runs the short version, tests/test_fuzz.py.
fuzz: $(STAMP)
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q -e '.[test,fuzz]'
	status=0; \
	$(PY) -m fuzz.run --cases $${FUZZ_CASES:-1000000} --docs || status=1; \
	$(PY) -m fuzz.run --engine atheris --cases 0 --seconds $${FUZZ_SECONDS:-30} --docs || status=1; \
	$(PY) -m fuzz.api --examples $${FUZZ_EXAMPLES:-20} --docs || status=1; \
	exit $$status

# Crash soak: the demo hall killed with SIGKILL at 50 random moments mid-rush, checked after
# each restart; prints the figures docs/reliability.md records (var/soak/summary.json).
soak: $(STAMP) deps-debian
	SOAK_KILLS=$${SOAK_KILLS:-50} $(PY) -m pytest -q -s -p no:cacheprovider tests/test_durability.py

# Device faults: every serial device unplugged and replugged, the MQTT broker restarted, the
# printer out of paper mid-ticket, the ID-card reader answering garbage, 10 times each; prints
# the figures docs/reliability.md records (var/faults/summary.json). CI makes each fault twice.
faults: $(STAMP) deps-debian
	FAULT_ROUNDS=$${FAULT_ROUNDS:-10} $(PY) -m pytest -q -p no:cacheprovider tests/test_faults.py

clean:
	rm -rf $(VENV) var .pytest_cache
