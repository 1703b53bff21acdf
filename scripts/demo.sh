#!/usr/bin/env bash
# The whole clean-room story on one machine: enclave-app as a local process with the
# SIMULATED platform (no Nitro/SEV-SNP hardware here); every other component is real.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
WASM="$ROOT/target/wasm32-unknown-unknown/release/credit_lr.wasm"
TUNE_WASM="$ROOT/target/wasm32-unknown-unknown/release/credit_lr_tune.wasm"
DEMO="$ROOT/target/demo"
ROWS="${DEMO_ROWS:-20000}"
PROVIDER="acme-models"
JOB="demo-job-1"

cr() { "$BIN/cleanroom" "$@"; }
heading() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

rm -rf "$DEMO"
mkdir -p "$DEMO/data" "$DEMO/owner" "$DEMO/provider" "$DEMO/host"

heading "1. Data: a synthetic bank table ($ROWS customers, deterministic)"
cr generate --rows "$ROWS" --seed 7 --out "$DEMO/data"
head -3 "$DEMO/data/bank.csv"

heading "2. Owner prepares: manifest, HMAC tokenization, generalization, sealing"
cr prepare "$DEMO/data/bank.parquet" --rules "$ROOT/cleanroom/rules/bank.toml" --keys "$DEMO/owner/owner.keys" --out "$DEMO/sealed" --ledger "$DEMO/ledger.sqlite"
cp "$DEMO/sealed/manifest.json" "$DEMO/owner/manifest.json"
cp "$DEMO/sealed/public-manifest.json" "$DEMO/provider/public-manifest.json"
echo "the provider gets only the public manifest (schema, no counts):"
head -c 400 "$DEMO/provider/public-manifest.json"; echo " …"

heading "2b. Provider creates its key; owner writes the policy naming it"
PROVIDER_PUB="$(cr keygen --out "$DEMO/provider/provider.key" | sed -n 's/^public key.*: //p')"
echo "provider public key $PROVIDER_PUB"
DIAG_PUB="$(cr diagnostics keygen --out "$DEMO/owner/diagnostics.key" | sed -n 's/^public key.*: //p')"
cr policy init --keys "$DEMO/owner/owner.keys" --manifest "$DEMO/owner/manifest.json" \
    --allow-module "$WASM" --allow-module "$TUNE_WASM" --allow-training \
    --collaborator "$PROVIDER=$PROVIDER_PUB" --label defaulted --max-epsilon 4 \
    --diagnostics-key "$DIAG_PUB" \
    --out "$DEMO/owner/policy.toml"
POLICY_DIGEST="$(cr policy digest "$DEMO/owner/policy.toml")"
POPULATION="$(sed -n 's/^population = "\(.*\)"/\1/p' "$DEMO/owner/policy.toml")"
cr budget cap --ledger "$DEMO/ledger.sqlite" --population "$POPULATION" --epsilon 10 --delta 0.0001
cr budget set --ledger "$DEMO/ledger.sqlite" --population "$POPULATION" --collaborator "$PROVIDER" --epsilon 9 --delta 0.00005

heading "3. Host operator launches the enclave (process mode, SIMULATED attestation)"
rm -f "$DEMO/host/ready.json"
"$BIN/host-proxy" run --launch process --enclave-bin "$BIN/enclave-app" --platform simulated \
    --policy "$DEMO/owner/policy.toml" --store "$DEMO/host" \
    --front-door tcp:127.0.0.1:0 --blob-api tcp:127.0.0.1:0 --ready-file "$DEMO/host/ready.json" \
    2> "$DEMO/host/host-proxy.log" &
PROXY_PID=$!
trap 'kill $PROXY_PID 2>/dev/null || true; wait $PROXY_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do [ -s "$DEMO/host/ready.json" ] && break; sleep 0.1; done
[ -s "$DEMO/host/ready.json" ] || { cat "$DEMO/host/host-proxy.log"; echo "host-proxy did not start"; exit 1; }
FRONT="$(sed -n 's/.*"front_door":"\([^"]*\)".*/\1/p' "$DEMO/host/ready.json")"
BLOBS="$(sed -n 's/.*"blob_api":"\([^"]*\)".*/\1/p' "$DEMO/host/ready.json")"
echo "front door $FRONT, blob API $BLOBS"
INDEX="$(cr upload --blob-api "$BLOBS" --sealed "$DEMO/sealed")"
echo "the host stores only ciphertext blobs, by content hash; sealed index $INDEX"

heading "4. Provider proposes a query; the owner reviews it"
cr query-init --manifest "$DEMO/provider/public-manifest.json" --module "$WASM" --job "$JOB" \
    --inputs income,utilization,late_payments,tenure_months,birth_decade \
    --collaborator "$PROVIDER" --policy "$DEMO/owner/policy.toml" --out "$DEMO/provider/query.toml"
cr review "$DEMO/provider/query.toml" --policy "$DEMO/owner/policy.toml"

heading "5. Owner attests the enclave and releases the data key and a grant for that query"
PCR0="$(cr measure "$BIN/enclave-app")"
echo "expected PCR0 (recomputed by the owner from the enclave-app it built): ${PCR0:0:32}…"
echo "expected policy digest: $POLICY_DIGEST"
R0="$(date +%s.%N)"
cr release --front-door "$FRONT" --expect-pcr0 "$PCR0" --allow-simulated \
    --keys "$DEMO/owner/owner.keys" --ledger "$DEMO/ledger.sqlite" --policy "$DEMO/owner/policy.toml" \
    --query "$DEMO/provider/query.toml"
R1="$(date +%s.%N)"

heading "6. Provider proves its key and submits the credit-risk model (Wasm) and the query"
T0="$(date +%s.%N)"
cr submit --front-door "$FRONT" --expect-pcr0 "$PCR0" --allow-simulated --policy-digest "$POLICY_DIGEST" \
    --blob-api "$BLOBS" --module "$WASM" --query "$DEMO/provider/query.toml" --sealed-index "$INDEX" \
    --provider-key "$DEMO/provider/provider.key" --out "$DEMO/result.json"
T1="$(date +%s.%N)"
SEALED_BYTES="$(du -sb "$DEMO/sealed/chunks" | cut -f1)"
python3 -c "import json; json.dump({'rows': $ROWS, 'sealed_bytes': $SEALED_BYTES, 'release_s': $R1 - $R0, 'submit_s': $T1 - $T0}, open('$DEMO/timings.json','w'))"
echo "job wall time (attest + upload + the query's fixed deadline): $(python3 -c "print(round($T1 - $T0, 2))") s"

heading "7. Provider checks the signed result"
cr verify-result "$DEMO/result.json" --allow-simulated --expect-pcr0 "$PCR0" --policy-digest "$POLICY_DIGEST"
echo "the result holds DP releases and public inputs only: no count of rows, units, dropped rows or withheld groups"
echo "it comes with the checkpoint of the audit log that covers its record, and the inclusion proof"

heading "8. Owner checks the budget and reads the sealed diagnostics"
cr budget show --ledger "$DEMO/ledger.sqlite"
cr audit fetch --blob-api "$BLOBS" --out "$DEMO/audit"
echo "the owner alone reads the job's sealed diagnostics (exact counts never leave in clear):"
cr diagnostics show "$DEMO/audit/audit.log" --key "$DEMO/owner/diagnostics.key"

heading "Accuracy cost of ε: DP results next to the owner's own exact check"
cr owner-check --sealed "$DEMO/sealed" --keys "$DEMO/owner/owner.keys" --policy "$DEMO/owner/policy.toml" \
    --module "$WASM" --query "$DEMO/provider/query.toml" --out "$DEMO/owner/truth.json"
cr compare "$DEMO/result.json" "$DEMO/owner/truth.json"

heading "9. Auditor verifies the transparency log against the owner's and the provider's checkpoints"
# The owner's checkpoint is in its ledger (from the key release); the provider's is in its
# result file (from the result). Both must match the one tree the host stores.
cr audit verify "$DEMO/audit/audit.log" --ledger "$DEMO/ledger.sqlite" --result "$DEMO/result.json" \
    --allow-simulated --expect-pcr0 "$PCR0" --policy-digest "$POLICY_DIGEST"
cr audit export "$DEMO/audit/audit.log" --ledger "$DEMO/ledger.sqlite" --result "$DEMO/result.json" \
    --allow-simulated --expect-pcr0 "$PCR0" --policy-digest "$POLICY_DIGEST" --out "$DEMO/evidence-bundle.json"
cr audit report "$DEMO/audit/audit.log" --ledger "$DEMO/ledger.sqlite" --result "$DEMO/result.json" \
    --allow-simulated --expect-pcr0 "$PCR0" --policy-digest "$POLICY_DIGEST" --out "$DEMO/audit-report"

heading "10. DP fine-tuning: the provider's model trains on the table; only DP parameters leave"
# credit-lr-tune starts deliberately weak (a base rate, no weights). query-init writes a
# training query with starting hyperparameters within the policy's ε (the accountant picks
# σ) and the trained model's AUC as its one output; the provider can re-plan with dp plan.
TUNE_Q="$DEMO/provider/tune-query.toml"
cr query-init --manifest "$DEMO/provider/public-manifest.json" --module "$TUNE_WASM" --job "demo-fine-tune" \
    --inputs income,utilization,late_payments,tenure_months,birth_decade --train-label defaulted \
    --collaborator "$PROVIDER" --policy "$DEMO/owner/policy.toml" --out "$TUNE_Q"
sed -n '/^\[training\]/,$p' "$TUNE_Q" | grep -v '^#' | sed '/^$/d'
Q="$(sed -n 's/^sample_rate = "\([^"]*\)".*/\1/p' "$TUNE_Q")"
S="$(sed -n 's/^noise_multiplier = "\([^"]*\)".*/\1/p' "$TUNE_Q")"
T="$(sed -n 's/^steps = \([0-9]*\).*/\1/p' "$TUNE_Q")"
cr dp plan --mechanism dp-sgd --sample-rate "$Q" --noise-multiplier "$S" --steps "$T" --delta 1e-6
cr review "$TUNE_Q" --policy "$DEMO/owner/policy.toml"
cr release --front-door "$FRONT" --expect-pcr0 "$PCR0" --allow-simulated \
    --keys "$DEMO/owner/owner.keys" --ledger "$DEMO/ledger.sqlite" --policy "$DEMO/owner/policy.toml" --query "$TUNE_Q"
cr submit --front-door "$FRONT" --expect-pcr0 "$PCR0" --allow-simulated --policy-digest "$POLICY_DIGEST" \
    --blob-api "$BLOBS" --module "$TUNE_WASM" --query "$TUNE_Q" --sealed-index "$INDEX" \
    --provider-key "$DEMO/provider/provider.key" --out "$DEMO/tune-result.json"
cr verify-result "$DEMO/tune-result.json" --allow-simulated --expect-pcr0 "$PCR0" --policy-digest "$POLICY_DIGEST"
echo "the owner's own reference (its machine, plaintext): the pretrained model, and the same steps without privacy"
cr owner-check --sealed "$DEMO/sealed" --keys "$DEMO/owner/owner.keys" --policy "$DEMO/owner/policy.toml" \
    --module "$TUNE_WASM" --query "$TUNE_Q" --out "$DEMO/owner/tune-truth.json"
cr compare "$DEMO/tune-result.json" "$DEMO/owner/tune-truth.json"
printf '\nworking files in %s: result.json, tune-result.json, audit/ (log + evidence), audit-report/index.html, ledger.sqlite, sealed/, host/\n' "$DEMO"
echo "NOTE: attestation in this demo is SIMULATED (development key, not hardware-backed)."
