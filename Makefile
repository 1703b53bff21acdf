# The two commands: `make demo` and `make test`. Both install what they need and are
# safe to run twice.
SHELL := /bin/bash
CARGO ?= cargo
WASM := target/wasm32-unknown-unknown/release/credit_lr.wasm
export CARGO_TERM_COLOR ?= never

.PHONY: demo test bench setup build wasm lint unit e2e clean

setup:
	@command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)"; exit 1; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

wasm: setup
	$(CARGO) build --release -p credit-lr --target wasm32-unknown-unknown

build: setup wasm
	$(CARGO) build --release --workspace --bins

demo: build
	./scripts/demo.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# One release build serves unit tests, e2e tests and the demo: no second cold build.
test: build lint
	$(CARGO) test --release --workspace

bench: build
	./scripts/bench.sh

clean:
	$(CARGO) clean
