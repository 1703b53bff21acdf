#!/usr/bin/env bash
# A whole job through QEMU's EMULATED Nitro Enclave (issue 16): the demo's owner/provider
# steps (scripts/demo.sh 1-7), but the enclave is target/eif/cleanroom.eif booted by
# `host-proxy --launch qemu --qemu-machine nitro-enclave --platform nitro` (TCG), the
# supervisor on its real nitro platform over the emulated /dev/nsm, and the owner and the
# provider verifying its UNSIGNED NSM documents with --allow-emulated-nsm against the
# PCRs `make eif` wrote (target/eif/pcrs.json) and the policy's PCR16.
#
#   scripts/nitro-job.sh          (what `make nitro-job` runs; needs `make nitro-emulator`,
#                                  `make eif`, and the release binaries and credit_lr.wasm)
#
# NOT evidence of AWS: no AWS signature exists on these documents, and TCG is not Nitro
# hardware. The policy's [timing] figures are multiplied by NITRO_JOB_TIMING_SCALE
# (default 40) because a TCG guest is that much slower than the development machine the
# defaults were measured on (a slower enclave misses its deadline; it never replies early).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
WASM="$ROOT/target/wasm32-unknown-unknown/release/credit_lr.wasm"
DEMO="$ROOT/target/nitro-job"
ROWS="${NITRO_JOB_ROWS:-2000}"
SCALE="${NITRO_JOB_TIMING_SCALE:-40}"
QEMU="$ROOT/target/nitro-emulator/bin/qemu-system-x86_64"
PCRS="$ROOT/target/eif/pcrs.json"
PROVIDER="acme-models"
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
cr() { "$BIN/cleanroom" "$@"; }
heading() { printf '\n== %s ==\n' "$*"; }
for f in "$QEMU" "$PCRS" "$ROOT/target/eif/cleanroom.eif" "$BIN/cleanroom" "$BIN/host-proxy" "$WASM"; do
    [ -e "$f" ] || { echo "nitro-job: $f is missing (make nitro-emulator eif build wasm)" >&2; exit 1; }
done

rm -rf "$DEMO"
mkdir -p "$DEMO/data" "$DEMO/owner" "$DEMO/provider" "$DEMO/host"
heading "1-2. Owner prepares $ROWS rows; provider key; policy (timing x$SCALE for TCG)"
cr generate --rows "$ROWS" --seed 7 --out "$DEMO/data" >/dev/null
cr prepare "$DEMO/data/bank.parquet" --rules "$ROOT/cleanroom/rules/bank.toml" --keys "$DEMO/owner/owner.keys" \
    --out "$DEMO/sealed" --ledger "$DEMO/ledger.sqlite" >/dev/null
PROVIDER_PUB="$(cr keygen --out "$DEMO/provider/provider.key" | sed -n 's/^public key.*: //p')"
cr policy init --keys "$DEMO/owner/owner.keys" --manifest "$DEMO/sealed/manifest.json" --allow-module "$WASM" \
    --collaborator "$PROVIDER=$PROVIDER_PUB" --label defaulted --max-epsilon 4 --out "$DEMO/owner/policy.toml"
python3 - "$DEMO/owner/policy.toml" "$SCALE" <<'PY'
import re, sys
path, scale = sys.argv[1], int(sys.argv[2])
text = open(path).read()
head, sep, rest = text.partition("[timing]")
body, nxt, tail = rest.partition("\n[")
keys = ("setup_ms", "ns_per_fuel", "unit_overhead_ns", "ingest_ns_per_row", "ns_per_memory_page")
body = re.sub(r"^(%s) = (\d+)" % "|".join(keys), lambda m: f"{m.group(1)} = {int(m.group(2)) * scale}", body, flags=re.M)
open(path, "w").write(head + sep + body + nxt + tail)
PY
POLICY_DIGEST="$(cr policy digest "$DEMO/owner/policy.toml")"
POPULATION="$(sed -n 's/^population = "\(.*\)"/\1/p' "$DEMO/owner/policy.toml")"
cr budget cap --ledger "$DEMO/ledger.sqlite" --population "$POPULATION" --epsilon 10 --delta 0.0001
cr budget set --ledger "$DEMO/ledger.sqlite" --population "$POPULATION" --collaborator "$PROVIDER" --epsilon 9 --delta 0.00005

heading "3. Operator boots the EIF in QEMU's EMULATED Nitro Enclave (nitro platform, emulated NSM)"
T_BOOT="$(date +%s.%N)"
"$BIN/host-proxy" run --launch qemu --qemu-machine nitro-enclave --platform nitro --accel tcg \
    --qemu-bin "$QEMU" --eif "$ROOT/target/eif/cleanroom.eif" --memory-mib 1024 \
    --policy "$DEMO/owner/policy.toml" --store "$DEMO/host" \
    --front-door tcp:127.0.0.1:0 --blob-api tcp:127.0.0.1:0 --ready-file "$DEMO/host/ready.json" \
    2> "$DEMO/host/host-proxy.log" &
PROXY_PID=$!
trap 'kill $PROXY_PID 2>/dev/null || true; wait $PROXY_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 6000); do [ -s "$DEMO/host/ready.json" ] && break; kill -0 $PROXY_PID 2>/dev/null || break; sleep 0.1; done
[ -s "$DEMO/host/ready.json" ] || { cat "$DEMO/host/host-proxy.log"; echo "host-proxy did not start"; exit 1; }
FRONT="$(sed -n 's/.*"front_door":"\([^"]*\)".*/\1/p' "$DEMO/host/ready.json")"
BLOBS="$(sed -n 's/.*"blob_api":"\([^"]*\)".*/\1/p' "$DEMO/host/ready.json")"
echo "ready after $(python3 -c "print(round($(date +%s.%N) - $T_BOOT, 1))") s; front door $FRONT"
INDEX="$(cr upload --blob-api "$BLOBS" --sealed "$DEMO/sealed" 2>/dev/null)"

heading "4. Provider proposes a query"
cr query-init --manifest "$DEMO/sealed/public-manifest.json" --module "$WASM" --job nitro-job-1 \
    --inputs income,utilization,late_payments,tenure_months,birth_decade \
    --collaborator "$PROVIDER" --policy "$DEMO/owner/policy.toml" --out "$DEMO/provider/query.toml" >/dev/null
grep -m1 '^deadline_ms' "$DEMO/provider/query.toml"

heading "5. Owner attests (EMULATED NSM, PCRs from make eif) and releases the key and a grant"
cr release --front-door "$FRONT" --expect-pcrs "$PCRS" --allow-emulated-nsm \
    --keys "$DEMO/owner/owner.keys" --ledger "$DEMO/ledger.sqlite" --policy "$DEMO/owner/policy.toml" \
    --query "$DEMO/provider/query.toml"

heading "6. Provider attests (EMULATED NSM) and submits the module and the query"
T0="$(date +%s.%N)"
cr submit --front-door "$FRONT" --expect-pcrs "$PCRS" --allow-emulated-nsm --policy-digest "$POLICY_DIGEST" \
    --blob-api "$BLOBS" --module "$WASM" --query "$DEMO/provider/query.toml" --sealed-index "$INDEX" \
    --provider-key "$DEMO/provider/provider.key" --out "$DEMO/result.json"
echo "submit took $(python3 -c "print(round($(date +%s.%N) - $T0, 1))") s (the query's fixed deadline)"

heading "7. Provider checks the signed result; the owner verifies the audit log"
cr verify-result "$DEMO/result.json" --allow-emulated-nsm --expect-pcrs "$PCRS" --policy-digest "$POLICY_DIGEST"
cr audit fetch --blob-api "$BLOBS" --out "$DEMO/audit" >/dev/null
cr audit verify "$DEMO/audit/audit.log" --ledger "$DEMO/ledger.sqlite" --result "$DEMO/result.json" \
    --allow-emulated-nsm --expect-pcrs "$PCRS" --policy-digest "$POLICY_DIGEST"
grep -m1 "EMULATED NSM" "$DEMO/host/run/console.log" || true
echo "NOTE: EMULATED Nitro Enclave (QEMU nitro-enclave, TCG): unsigned NSM documents, no AWS signature, not Nitro hardware."
