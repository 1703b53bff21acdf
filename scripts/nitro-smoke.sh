#!/usr/bin/env bash
# The real NSM path under an EMULATED Nitro Enclave (issue 16):
#
#   scripts/nitro-smoke.sh          (what `make nitro-smoke` runs)
#
# 1. `make nitro-emulator`: QEMU with its `nitro-enclave` machine, built from Debian's
#    qemu source with libcbor (target/nitro-emulator/bin/qemu-system-x86_64);
# 2. `make eif`: target/eif/cleanroom.eif and pcrs.json (PCR0/1/2 as eif-build computes them);
# 3. vhost-device-vsock (cargo install, if missing), host-proxy and eif-build;
# 4. the ignored e2e tests in tests/tests/nitro_emulator.rs: host-proxy boots the EIF with
#    `--qemu-machine nitro-enclave --platform nitro` under TCG; the supervisor uses the
#    emulated /dev/nsm (attestation, PCR16 extended and locked); the test verifies the
#    document with allow_emulated_nsm against eif-build's PCR0/1/2 and the policy's PCR16;
#    then a truncated EIF must fail with an error naming it and leave nothing running.
#
# EMULATED: the documents are unsigned (no AWS signature) and this is TCG, not Nitro
# hardware. Prints {"bench":"nitro_enclave_boot_to_evidence_s",...}.
# Environment: CARGO (default cargo), NITRO_SMOKE_SKIP_EIF=1 to reuse target/eif/cleanroom.eif.
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
die() { echo "nitro-smoke: $*" >&2; exit 1; }

./scripts/build-nitro-emulator.sh
if [ "${NITRO_SMOKE_SKIP_EIF:-0}" != 1 ] || [ ! -f target/eif/cleanroom.eif ]; then
    make --no-print-directory eif >&2
fi
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
if ! command -v vhost-device-vsock >/dev/null && [ ! -x "$CARGO_BIN/vhost-device-vsock" ]; then
    "$CARGO" install --locked vhost-device-vsock >&2 || die "cargo install vhost-device-vsock failed"
fi
export PATH=$PATH:$CARGO_BIN
"$CARGO" build --quiet --release -p host-proxy -p eif-build >&2

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
"$CARGO" test --quiet --release -p cleanroom-e2e --test nitro_emulator -- \
    --ignored --nocapture --test-threads=1 2>&1 | tee "$LOG" >&2
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || die "the emulated Nitro Enclave test failed (exit $rc)"
# (libtest's progress dots may precede the line on the same row.)
grep -o -m1 '{"bench":"nitro_enclave_boot_to_evidence_s"[^}]*}' "$LOG" \
    || die "no nitro_enclave_boot_to_evidence_s line in the test output"
