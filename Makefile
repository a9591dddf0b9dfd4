# transformed-efd: the two commands of the README, plus the pieces they are made of.
#
#   make demo   run the main job on the embedded default (no servers)
#   make test   formatting, lints, docs and the whole test suite
#
# Cargo honours CARGO_TARGET_DIR when it is set (CI caches the build there); nothing here needs it.

CARGO ?= cargo
# Use cargo-nextest when it is installed, else plain cargo test.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: test deps lint fmt-check clippy doc unit demo bench tidy

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

unit:
ifeq ($(NEXTEST),yes)
	$(CARGO) test --workspace --doc --locked
	$(CARGO) nextest run --workspace --locked --no-fail-fast
else
	$(CARGO) test --workspace --locked --no-fail-fast
endif

tidy:
	$(CARGO) run -q -p xtask --locked -- tidy

demo:
	@echo "make demo: not yet. The embedded demo (SQLite ConsDB and Butler registry, line-protocol EFD)"
	@echo "arrives with the pipeline issue. Until then, plan a shipped-style config:"
	$(CARGO) run -q --locked -p transformed-efd-examples --example plan_config -- examples/data/demo-config.yaml

bench:
	$(CARGO) bench --locked -p transformed-efd-benches
