#!/usr/bin/env bash
# Reproducibility check for the enclave image: build the static supervisor and the EIF
# twice, each from a clean target directory, and require byte-identical EIFs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
declare -a sums
for run in a b; do
    T="$ROOT/target/repro-$run"
    rm -rf "$T"
    CARGO_TARGET_DIR="$T" make -s enclave-static
    ./scripts/build-eif.sh "$T/x86_64-unknown-linux-musl/release/enclave-app" "$T/eif" >/dev/null
    sums+=("$(sha256sum "$T/eif/cleanroom.eif" | cut -d' ' -f1)")
    echo "build $run: cleanroom.eif sha256 ${sums[-1]}"
done
if [ "${sums[0]}" != "${sums[1]}" ]; then
    echo "eif-repro: FAILED: the two builds differ"; exit 1
fi
echo "eif-repro: OK: byte-identical EIFs from two clean target directories"
