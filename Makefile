# transformed-efd: the two commands of the README, plus the pieces they are made of.
#
#   make demo   run the main job on the embedded default (no servers)
#   make test   formatting, lints, docs and the whole test suite but the slow fault-injection and
#               fuzzing binaries (`faults_*`)
#   make test-faults   those: real servers crashed, stopped, slowed; 10^6-input fuzzing; then the
#                      table of docs/reliability.md from their records (.ci/run runs it after `test`)
#   make bench-e2e   efd-job end to end on a synthetic LSSTCam night with real servers (not in `test`);
#                    options in BENCH_ARGS, e.g. BENCH_ARGS="--timedelta 5,60 --efd-concurrency 1,4"
#
# Cargo honours CARGO_TARGET_DIR when it is set (CI caches the build there); nothing here needs it.

CARGO ?= cargo
# Use cargo-nextest when it is installed, else plain cargo test.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: test test-faults deps lint fmt-check clippy doc unit demo bench bench-e2e tidy

test: deps lint unit

# Real servers the tests start (influxd, PostgreSQL): installed from Debian packages when missing.
deps:
	./scripts/install-deps.sh

lint: fmt-check clippy doc

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

# Test binaries named faults_* are slow (fault injection, fuzzing) and run in test-faults.
FAULTS := binary(/^faults_/)

unit:
	rm -rf $${CARGO_TARGET_DIR:-target}/faults
ifeq ($(NEXTEST),yes)
	$(CARGO) test --workspace --doc --locked
	$(CARGO) nextest run --workspace --locked --no-fail-fast -E 'not $(FAULTS)'
else
	$(CARGO) test --workspace --locked --no-fail-fast
endif

test-faults: deps
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --locked --no-fail-fast -E '$(FAULTS)'
else
	$(CARGO) test --workspace --locked --no-fail-fast --test 'faults_*'
endif
	$(CARGO) run -q -p xtask --locked -- reliability

tidy:
	$(CARGO) run -q -p xtask --locked -- tidy

# The embedded default: a synthetic night (line-protocol EFD file, SQLite Butler registry), processed
# by efd-job into an SQLite ConsDB, then a few columns per exposure and the task summary printed.
DEMO_DIR := target/demo
demo:
	rm -rf $(DEMO_DIR)
	$(CARGO) run -q --locked -p transformed-efd-examples --example synth_night -- --out $(DEMO_DIR)
	$(CARGO) run -q --locked -p efd-job -- -c examples/data/demo-config.yaml -i latiss \
		-r $(DEMO_DIR)/butler -d sqlite:///$(DEMO_DIR)/consdb.db -E file://$(CURDIR)/$(DEMO_DIR)/efd.lp \
		-s 2025-10-02T00:55:00 -e 2025-10-02T01:45:00 --migrate --workers 2 > $(DEMO_DIR)/job.log
	@grep -E "task_processing_summary|Task processing summary" $(DEMO_DIR)/job.log || true
	$(CARGO) run -q --locked -p transformed-efd-examples --example demo_report -- $(DEMO_DIR)

bench:
	$(CARGO) bench --locked -p transformed-efd-benches

# efd-job (release) over a synthetic 2-hour LSSTCam night, EFD from influxd and from the file: wall
# time, throughput, EFD traffic, time per phase, peak RSS; a table, and target/bench/e2e.json.
BENCH_ARGS ?=
bench-e2e:
	$(CARGO) build --release --locked -p efd-job
	$(CARGO) run --release --locked -p transformed-efd-examples --example bench_e2e -- $(BENCH_ARGS)
