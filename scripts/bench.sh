#!/usr/bin/env bash
# `make bench`: every figure as one JSON object per line
#   {"bench": NAME, "value": X, "unit": U, "baseline": NAME_OR_NULL, "ratio": R_OR_NULL}
# Components are compared side by side with their baselines in the same run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
json() { grep '^{' || true; }

# Sealed ingest vs raw AES-256-GCM.
cargo bench -q -p cleanroom-protocol --bench sealed_ingest 2>/dev/null | json
# Wasm sandbox vs native (logistic regression, GBDT), instantiate and compile time; then
# per-unit isolation: credit-lr with a fresh instance per unit next to one instance per
# batch, the isolation cost per unit, fuel per unit of the three examples, wall time per
# fuel and per memory page (sandbox/benches/isolation/; CLEANROOM_BENCH_ONLY=units runs
# only that part; with CLEANROOM_BENCH_LOAD=2 it runs beside two spinning threads).
cargo bench -q -p cleanroom-sandbox --bench sandbox 2>/dev/null | json
# DP fine-tuning (issue 15), credit-lr-tune and credit-mlp: one unit's gradient in a fresh
# instance next to the native twin (ratio sandbox / native throughput), the sandbox's extra
# time per unit, DP-SGD steps per second with each as the gradient oracle (about 6 s).
cargo bench -q -p cleanroom-sandbox --bench training 2>/dev/null | json
# Every core: the enclave's scoring with one worker and with every vCPU (issue 18).
CLEANROOM_CREDIT_LR_WASM="$ROOT/target/wasm32-unknown-unknown/release/credit_lr.wasm" \
    cargo bench -q -p enclave-app --bench workers 2>/dev/null | json
# Load held at the front door (issue 18): p50/p99 of a real key release through the real
# host-proxy and enclave-app with no other traffic, and with 10,000 connections from 1,000
# loopback addresses held open (ratio idle / loaded latency; about 2 minutes).
cargo bench -q -p cleanroom-e2e --bench front_door 2>/dev/null | json
# ... and what it is worth: test AUC pretrained, DP at ε = 1 and 4, and non-private on the
# demo's 200,000-row table (ratio DP / non-private AUC; about 12 s). `make build` built it
# with the workspace's features; `cargo run -p` alone would rebuild half the workspace.
UTILITY="${CARGO_TARGET_DIR:-target}/release/examples/dpsgd_utility"
[ -x "$UTILITY" ] || cargo build -q --release --workspace --all-targets --features attestation-verifier/cli
"$UTILITY" | json
# Attestation verification vs an independent reference (Python cryptography, if present),
# with the backend the owner's and auditor's tools ship (aws-lc; `cleanroom` enables it).
# The enclave's ring backend: the same command without `--features aws-lc`.
cargo bench -q -p attestation-verifier --features aws-lc --bench verify 2>/dev/null | json
# The transparency log: append throughput, inclusion proofs, audit verify of a
# 1,000,000-record log next to the same log verified as a hash chain only.
cargo bench -q -p cleanroom-tlog --bench tlog 2>/dev/null | json
# EIF build and PCR hashing.
cargo bench -q -p eif-build 2>/dev/null | json
# Owner preparation: sealing a 1,000,000-row CSV next to pyarrow reading it; PKCS#11
# tokenization (SoftHSM2) next to ring's HMAC.
./scripts/bench_prepare.sh | json
cargo bench -q -p cleanroom-hsm --bench hsm 2>/dev/null | json
# DP samplers vs OpenDP.
if [ -x scripts/bench_dp.sh ]; then ./scripts/bench_dp.sh | json; fi
# DP accuracy per output class next to OpenDP at the same ε (issue 14; ACCURACY_REPS).
if [ -x scripts/bench_accuracy.sh ]; then ./scripts/bench_accuracy.sh | json; fi

# Boot the enclave image under QEMU and time the first evidence over virtio-vsock
# (needs QEMU and vhost-device-vsock, which the script installs; opt in with BENCH_QEMU=1).
if [ "${BENCH_QEMU:-0}" = 1 ]; then QEMU_SMOKE_SKIP_EIF="${QEMU_SMOKE_SKIP_EIF:-0}" ./scripts/qemu-smoke.sh | json; fi

# The demo's enclave job, end to end through the real processes.
# The reply waits for the query's deadline (fixed before data is read, sized from the worst
# case), so this figure is the deadline per 1,000 rows; the work itself is the per-unit
# isolation figures above.
ROWS="${BENCH_ROWS:-20000}"
DEMO_ROWS="$ROWS" ./scripts/demo.sh > target/bench-demo.log 2>&1 || { tail -20 target/bench-demo.log; exit 1; }
python3 - "$ROOT/target/demo" "$ROWS" <<'PY'
import json, sys
demo, rows = sys.argv[1], int(sys.argv[2])
t = json.load(open(f"{demo}/timings.json"))
def out(name, value, unit):
    print(json.dumps({"bench": name, "value": value, "unit": unit, "baseline": None, "ratio": None}))
out("enclave_job_ms_per_1k_rows", round(t["submit_s"] * 1000.0 / (rows / 1000.0), 3), "ms")
out("release_cli_start_to_key_delivered_ms", round(t["release_s"] * 1000.0, 1), "ms")
PY
