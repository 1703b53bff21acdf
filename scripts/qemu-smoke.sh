#!/usr/bin/env bash
# A real boot of the enclave image (issues 5 and 16), from the host's point of view:
#
#   scripts/qemu-smoke.sh          (what `make qemu-smoke` runs)
#
# 1. `make eif`: the static supervisor, the enclave kernel (`make kernel`, built from
#    Debian's linux-source-6.12), target/eif/cleanroom.eif;
# 2. installs what it needs, idempotently: QEMU from bookworm-backports
#    (qemu-system-x86) and the vhost-user vsock backend (`cargo install vhost-device-vsock`);
# 3. builds host-proxy and eif-build;
# 4. runs the ignored e2e test tests/tests/qemu_smoke.rs once per machine type:
#    `host-proxy run --launch qemu --qemu-machine M` boots the kernel + cmdline +
#    initramfs extracted from the EIF (KVM if /dev/kvm is usable, else TCG). Under
#    `microvm` (the default) the vsock device is a vhost-user-vsock-device on virtio-mmio,
#    declared to the guest only on its kernel command line, as on Nitro; under `q35` it is
#    a vhost-user-vsock-pci device. The test asks the supervisor (PID 1 in the guest,
#    simulated platform) for evidence through the front door over real virtio-vsock,
#    verifies it, checks the guest console (for microvm: the kernel registered the
#    command-line virtio-mmio device), and stops the proxy, which stops QEMU and the backend.
#
# Prints one JSON line per machine: {"bench":"qemu_<machine>_boot_to_evidence_s",...}
# (QEMU start to the first evidence answer).
# Environment: CARGO (default cargo), QEMU_SMOKE_SKIP_EIF=1 to reuse target/eif/cleanroom.eif,
# QEMU_SMOKE_MACHINES (default "microvm"; "microvm q35" boots both).
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}
die() { echo "qemu-smoke: $*" >&2; exit 1; }

MACHINES=${QEMU_SMOKE_MACHINES:-microvm}
for m in $MACHINES; do
    case $m in microvm | q35) ;; *) die "QEMU_SMOKE_MACHINES: unknown machine $m (use microvm, q35)" ;; esac
done

# --- 1. the image -----------------------------------------------------------------------
if [ "${QEMU_SMOKE_SKIP_EIF:-0}" != 1 ] || [ ! -f target/eif/cleanroom.eif ]; then
    make --no-print-directory eif >&2
fi

# --- 2. tools -----------------------------------------------------------------------------
# QEMU from bookworm-backports (10.0.2 when this was written) is the one tested.
BACKPORTS_LIST=/etc/apt/sources.list.d/bookworm-backports.sources
if ! command -v qemu-system-x86_64 >/dev/null; then
    [ "$(id -u)" = 0 ] || die "qemu-system-x86_64 is missing; install qemu-system-x86 (bookworm-backports) as root"
    if ! cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -v '^[[:space:]]*#' | grep -q bookworm-backports; then
        printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
            'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$BACKPORTS_LIST"
        apt-get update -qq >&2 || die "apt-get update failed"
    fi
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

# --- 4. boot and attest, once per machine type -------------------------------------------
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
for machine in $MACHINES; do
    : > "$LOG"
    set +e
    CLEANROOM_QEMU_MACHINE=$machine "$CARGO" test --quiet --release -p cleanroom-e2e --test qemu_smoke -- \
        --ignored --nocapture --test-threads=1 2>&1 | tee "$LOG" >&2
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || die "the smoke test failed on $machine (exit $rc)"
    grep -m1 "^{\"bench\":\"qemu_${machine}_boot_to_evidence_s\"" "$LOG" \
        || die "no qemu_${machine}_boot_to_evidence_s line in the test output"
done
