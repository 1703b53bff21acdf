#!/usr/bin/env bash
# Negative controls for the emulated-NSM test root (attestation-verifier/src/emulated.rs):
# in a copy of the committed tree, each check is removed in turn and the `emulated` unit
# tests must fail; unmodified they must pass. The working tree is never touched.
#
#   scripts/emulated-nsm-mutants.sh      (builds into target/mutants; a few minutes cold)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/repo"
git -C "$ROOT" archive HEAD | tar -x -C "$WORK/repo"
# The tests read ../../shared/testdata relative to the crate, as in the checkout.
ln -s "$(realpath "$ROOT/../shared")" "$WORK/shared"
cd "$WORK/repo"
export CARGO_TARGET_DIR=$ROOT/target/mutants
F=attestation-verifier/src/emulated.rs N=attestation-verifier/src/nitro.rs
cp $F "$WORK/emulated.orig"; cp $N "$WORK/nitro.orig"
failed=0
run() {
    local out
    out=$(nice cargo test -q -p attestation-verifier --release --lib emulated 2>&1 || true)
    echo "$out" | grep -E '^    emulated::tests::|^test result' | sed 's/^/  /'
    echo "$out" | grep -q '^test result: ok' && return 0 || return 1
}
replace() { python3 -c "import sys; p, a, b = sys.argv[1:]; s = open(p).read(); assert a in s, a; open(p, 'w').write(s.replace(a, b, 1))" "$@"; }
echo "unmodified (must pass)"; run || { echo "emulated-nsm-mutants: the unmodified tests fail" >&2; exit 1; }
mutant() {
    cp "$WORK/emulated.orig" $F; cp "$WORK/nitro.orig" $N
    replace "$1" "$2" "$3"
    echo "without: $4 (must fail)"
    if run; then echo "emulated-nsm-mutants: NOT caught: $4" >&2; failed=1; fi
}
mutant $F '    if !opts.allow_emulated_nsm {' '    if false && !opts.allow_emulated_nsm {' "the allow_emulated_nsm requirement"
mutant $F '    if !all_zero(&c.signature) {' '    if false && !all_zero(&c.signature) {' "the zero-signature check"
mutant $F '        Some(Value::Bytes(b)) if all_zero(b) => {}' '        Some(Value::Bytes(_)) => {}' "the zero-certificate check"
mutant $F 'Some(Value::Array(items)) if items.len() == 1 && ' 'Some(Value::Array(items)) if ' "the one-entry cabundle check"
mutant $F '    policy::check_claims(&claims, expect, opts, at, &mut checks)?;' '    let _ = (expect, at, &claims);' "the claim checks (PCRs, nonce, bindings, age)"
mutant $N 'if crate::emulated::says_unsigned(doc) {' 'if false && crate::emulated::says_unsigned(doc) {' "the routing of alg -1 documents in the Nitro verifier"
exit $failed
