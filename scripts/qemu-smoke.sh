#!/usr/bin/env bash
# A real boot of the enclave image (issue 5), from the host's point of view:
#
#   scripts/qemu-smoke.sh          (what `make qemu-smoke` runs)
#
# 1. installs what it needs, idempotently: QEMU from bookworm-backports
#    (qemu-system-x86) and the vhost-user vsock backend (`cargo install vhost-device-vsock`);
# 2. `make eif`: the static supervisor, the Debian cloud kernel, target/eif/cleanroom.eif;
# 3. builds host-proxy and eif-build;
# 4. runs the ignored e2e test tests/tests/qemu_smoke.rs: `host-proxy run --launch qemu`
#    boots the kernel + cmdline + initramfs extracted from the EIF (KVM if /dev/kvm is
#    usable, else TCG) with a vhost-user-vsock-pci device; the test asks the supervisor
#    (PID 1 in the guest, simulated platform) for evidence through the front door over
#    real virtio-vsock, verifies it, checks the guest console for the module loads, and
#    stops the proxy, which stops QEMU and the backend.
#
# Prints one JSON line: {"bench":"qemu_boot_to_vsock_s",...} (QEMU start to first answer).
# Environment: CARGO (default cargo), QEMU_SMOKE_SKIP_EIF=1 to reuse target/eif/cleanroom.eif.
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
die() { echo "qemu-smoke: $*" >&2; exit 1; }

# --- 1. the image (this also makes sure bookworm-backports is an apt source) -----------
if [ "${QEMU_SMOKE_SKIP_EIF:-0}" != 1 ] || [ ! -f target/eif/cleanroom.eif ]; then
    make --no-print-directory eif >&2
fi

# --- 2. tools -----------------------------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null; then
    [ "$(id -u)" = 0 ] || die "qemu-system-x86_64 is missing; install qemu-system-x86 (bookworm-backports) as root"
    apt-get install -y -q -t bookworm-backports qemu-system-x86 >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -q -t bookworm-backports qemu-system-x86 >&2; } \
        || die "apt-get install qemu-system-x86 failed"
fi
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
if ! command -v vhost-device-vsock >/dev/null && [ ! -x "$CARGO_BIN/vhost-device-vsock" ]; then
    "$CARGO" install --locked vhost-device-vsock >&2 || die "cargo install vhost-device-vsock failed"
fi
export PATH=$PATH:$CARGO_BIN

# --- 3. host side -------------------------------------------------------------------------
"$CARGO" build --quiet --release -p host-proxy -p eif-build >&2

# --- 4. boot and attest -------------------------------------------------------------------
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
"$CARGO" test --quiet --release -p cleanroom-e2e --test qemu_smoke -- --ignored --nocapture --test-threads=1 \
    2>&1 | tee "$LOG" >&2
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || die "the smoke test failed (exit $rc)"
grep -m1 '^{"bench":"qemu_boot_to_vsock_s"' "$LOG" || die "no qemu_boot_to_vsock_s line in the test output"
