#!/usr/bin/env bash
# Reproducibility check for the enclave kernel (`make kernel-repro`): two clean builds of
# scripts/build-kernel.sh, each in its own fresh work directory (so the unpacked source
# and the build directory sit at different paths in the two runs), must give a
# byte-identical bzImage and the same resolved .config. Only the pinned .deb is shared
# (target/kernel/cache; its digest is checked by each build).
#
# Slow: two full kernel builds. On success the two source trees and build directories
# are removed (set KERNEL_REPRO_KEEP=1 to keep them); bzImage, config and build-info.json
# of both runs stay in target/kernel/repro-{a,b}/.
#
#   scripts/kernel-repro.sh --compare-only   compare what the last run left there again,
#                                            without building
set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
die() { echo "kernel-repro: $*" >&2; exit 1; }

BUILD=1
case ${1:-} in
    "") ;;
    --compare-only) BUILD=0 ;;
    *) die "usage: $0 [--compare-only]" ;;
esac

declare -A image_sha config_sha
for run in a b; do
    W=$ROOT/target/kernel/repro-$run
    if [ "$BUILD" = 1 ]; then
        rm -rf "$W"
        t0=$(date +%s)
        ./scripts/build-kernel.sh "$W" || die "build $run failed"
        took=", $(($(date +%s) - t0)) s"
    else
        [ -f "$W/bzImage" ] && [ -f "$W/config" ] || die "$W holds no finished build; run without --compare-only"
        took=""
    fi
    image_sha[$run]=$(sha256sum "$W/bzImage" | cut -d' ' -f1)
    config_sha[$run]=$(sha256sum "$W/config" | cut -d' ' -f1)
    echo "build $run: bzImage sha256 ${image_sha[$run]} ($(stat -c %s "$W/bzImage") bytes$took)"
done

A=$ROOT/target/kernel/repro-a B=$ROOT/target/kernel/repro-b
status=0
if [ "${config_sha[a]}" != "${config_sha[b]}" ]; then
    echo "kernel-repro: the resolved configs differ:"
    diff "$A/config" "$B/config" | head -20 || true
    status=1
fi
if [ "${image_sha[a]}" != "${image_sha[b]}" ]; then
    echo "kernel-repro: the bzImages differ ($(cmp -l "$A/bzImage" "$B/bzImage" 2>/dev/null | wc -l) bytes differ; sizes $(stat -c %s "$A/bzImage") and $(stat -c %s "$B/bzImage"))"
    # The uncompressed kernels say more than the compressed images do.
    if [ -f "$A/build/vmlinux" ] && [ -f "$B/build/vmlinux" ]; then
        cmp "$A/build/vmlinux" "$B/build/vmlinux" || true
        cmp -l "$A/build/vmlinux" "$B/build/vmlinux" 2>/dev/null | head -5 || true
    fi
    status=1
fi
if [ "$status" != 0 ]; then
    echo "kernel-repro: FAILED: the two builds differ (trees kept in $A and $B)"
    exit 1
fi
if [ "${KERNEL_REPRO_KEEP:-0}" != 1 ]; then
    rm -rf "$A/src" "$A/build" "$B/src" "$B/build"
fi
echo "kernel-repro: OK: byte-identical bzImage (sha256 ${image_sha[a]}) from two clean builds at different paths"
