# The two commands: `make demo` and `make test`. Both install what they need and are
# safe to run twice.
SHELL := /bin/bash
CARGO ?= cargo
WASM_DIR := target/wasm32-unknown-unknown/release
WASM := $(WASM_DIR)/credit_lr.wasm
export CARGO_TERM_COLOR ?= never

.PHONY: demo test test-deps bench bench-large setup build wasm lint unit e2e clean

setup:
	@command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)"; exit 1; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

# Modules are identified by their SHA-256, so their bytes must not depend on where they
# were built: strip debug info and remap build paths.
wasm: setup
	CARGO_PROFILE_RELEASE_STRIP=debuginfo \
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$(CURDIR)=/cleanroom --remap-path-prefix=$(HOME)/.cargo=/cargo --remap-path-prefix=$(TARGET_DIR_ABS)=/target" \
	$(CARGO) build --release -p credit-lr -p credit-gbdt -p credit-loss -p credit-impute -p credit-multi -p credit-lr-tune -p credit-mlp -p default-lr -p wage-lr --target wasm32-unknown-unknown

# All targets in one build: tests' dev-dependencies unify features (wasmparser's, via
# `wat`), so building only the binaries here would make `cargo test` rebuild wasmtime.
# The same features everywhere (the auditor's `attest` CLI included), so build, lint and
# test share one set of artifacts. `cleanroom` turns on attestation-verifier/aws-lc, so
# in these workspace builds every crate verifies with aws-lc-rs; the enclave image
# (`make enclave-static`, enclave-app alone) keeps ring.
FEATURES := --features attestation-verifier/cli
build: setup wasm
	$(CARGO) build --release --workspace --all-targets $(FEATURES)

demo: build
	./scripts/demo.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets $(FEATURES) -- -D warnings

# Headless Chromium renders the audit report page (tests/tests/audit_report_page.rs).
# Headless Chromium renders the audit report; Python's `cryptography` backs the
# independent RFC 6962 / C2SP and EIF checkers (tlog/tests, eif-build/tests); Google's
# `dp-accounting` is the reference for the DP-SGD accountant (cleanroom/tests/dpsgd_accountant.rs);
# `sev-snp-measure` and Debian's OVMF are the reference tool and a real firmware for the SNP
# launch measurement (snp-measure/tests/reference.rs).
test-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -q --no-install-recommends chromium; }
	@command -v softhsm2-util >/dev/null || { apt-get update -qq && apt-get install -y -q --no-install-recommends softhsm2; }
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography
	@python3 -c 'import dp_accounting' 2>/dev/null || python3 -m pip install -q dp-accounting
	@python3 -c 'import sevsnpmeasure' 2>/dev/null || python3 -m pip install -q sev-snp-measure
	@test -e /usr/share/OVMF/OVMF_CODE.fd || { apt-get update -qq && apt-get install -y -q --no-install-recommends ovmf; }

# One release build serves unit tests, e2e tests and the demo: no second cold build.
test: test-deps build lint
	CLEANROOM_CREDIT_LR_WASM=$(CURDIR)/$(WASM) \
	CLEANROOM_CREDIT_GBDT_WASM=$(CURDIR)/$(WASM_DIR)/credit_gbdt.wasm \
	CLEANROOM_CREDIT_LOSS_WASM=$(CURDIR)/$(WASM_DIR)/credit_loss.wasm \
	CLEANROOM_CREDIT_MULTI_WASM=$(CURDIR)/$(WASM_DIR)/credit_multi.wasm \
	CLEANROOM_CREDIT_LR_TUNE_WASM=$(CURDIR)/$(WASM_DIR)/credit_lr_tune.wasm \
	CLEANROOM_CREDIT_MLP_WASM=$(CURDIR)/$(WASM_DIR)/credit_mlp.wasm \
	CLEANROOM_DEFAULT_LR_WASM=$(CURDIR)/$(WASM_DIR)/default_lr.wasm \
	CLEANROOM_WAGE_LR_WASM=$(CURDIR)/$(WASM_DIR)/wage_lr.wasm \
	$(CARGO) test --release --workspace $(FEATURES)

bench: build
	./scripts/bench.sh

# Opt-in, not part of `make test` or `make bench`: a whole job (open, units, a fresh
# sandbox per unit, DP release) over 1 GB and 8 GB of sealed data generated and streamed
# through a pipe, never stored; peak RSS of the enclave's side and rows/s per core
# (sandbox/benches/large_tables.rs). BENCH_LARGE_GB="1 8" by default.
BENCH_LARGE_GB ?= 1 8
bench-large: setup wasm
	BENCH_LARGE_GB="$(BENCH_LARGE_GB)" \
	CLEANROOM_CREDIT_LR_WASM=$(TARGET_DIR_ABS)/wasm32-unknown-unknown/release/credit_lr.wasm \
	$(CARGO) bench -q -p cleanroom-sandbox --bench large_tables

clean:
	$(CARGO) clean

# --- enclave image (issue 5) -------------------------------------------------------------
# `make eif`: the static supervisor and target/eif/cleanroom.eif + pcrs.json (see
# eif-build/README.md). `make qemu-smoke`: boot that image in QEMU with real
# virtio-vsock and ask the supervisor for evidence (scripts/qemu-smoke.sh).
.PHONY: enclave-static eif qemu-smoke
MUSL_TARGET := x86_64-unknown-linux-musl
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
# Build scripts' generated code is included from OUT_DIR under the target directory, so
# that path is remapped too (last, so it wins over the checkout prefix it lies under).
TARGET_DIR_ABS := $(abspath $(or $(CARGO_TARGET_DIR),target))
ENCLAVE_STATIC := $(TARGET_DIR_ABS)/$(MUSL_TARGET)/release/enclave-app

# Paths are remapped and symbols stripped, so the binary (and with it PCR0) does not
# depend on where the checkout or the cargo home live.
enclave-static:
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { apt-get update -qq && apt-get install -y -q musl-tools; }
	CC_x86_64_unknown_linux_musl=gcc \
	CFLAGS_x86_64_unknown_linux_musl="-ffile-prefix-map=$(CURDIR)=/cleanroom -ffile-prefix-map=$(CARGO_HOME_DIR)=/cargo -ffile-prefix-map=$(TARGET_DIR_ABS)=/target" \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="--remap-path-prefix=$(CURDIR)=/cleanroom --remap-path-prefix=$(CARGO_HOME_DIR)=/cargo --remap-path-prefix=$(TARGET_DIR_ABS)=/target" \
	CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
	$(CARGO) build --release --target $(MUSL_TARGET) -p enclave-app

eif: enclave-static kernel
	./scripts/build-eif.sh $(ENCLAVE_STATIC)

qemu-smoke:
	./scripts/qemu-smoke.sh

# `make nitro-emulator`: QEMU's `nitro-enclave` machine (an EMULATED Nitro Enclave with an
# emulated, unsigning NSM), built from Debian's qemu source with libcbor and cached in
# target/nitro-emulator/ (scripts/build-nitro-emulator.sh; pinned by
# nitro-emulator/qemu-source.lock). `make nitro-smoke`: boot target/eif/cleanroom.eif in
# it with the supervisor on its real nitro platform and verify the unsigned NSM document
# with --allow-emulated-nsm against eif-build's PCRs (scripts/nitro-smoke.sh).
.PHONY: nitro-emulator nitro-smoke nitro-job
nitro-emulator:
	./scripts/build-nitro-emulator.sh
nitro-smoke:
	./scripts/nitro-smoke.sh
# `make nitro-job`: a whole job (prepare, release, submit, verify, audit) through the
# emulated Nitro Enclave, the owner and provider passing --allow-emulated-nsm
# (scripts/nitro-job.sh; needs the release binaries and credit_lr.wasm).
nitro-job: nitro-emulator
	./scripts/nitro-job.sh

# `make eif-repro`: two clean builds of the image must be byte-identical (slow: two cold
# musl builds). `make fuzz`: the long property run of the attestation verifier.
.PHONY: eif-repro fuzz
eif-repro:
	./scripts/eif-repro.sh
fuzz:
	ATTEST_FUZZ_CASES=1000000 $(CARGO) test -p attestation-verifier --release --test fuzz -- --nocapture

# --- enclave kernel (issue 16) -----------------------------------------------------------
# `make kernel`: target/kernel/bzImage from Debian's linux-source-6.12, pinned by digest
# in kernel/linux-source.lock, configured by kernel/enclave.config (scripts/build-kernel.sh;
# a second run with nothing changed does nothing). `make kernel-repro`: two clean builds
# at different paths must give the same bytes (slow: two full kernel builds).
.PHONY: kernel kernel-repro
kernel:
	./scripts/build-kernel.sh
kernel-repro:
	./scripts/kernel-repro.sh
