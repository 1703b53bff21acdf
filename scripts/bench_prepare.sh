#!/usr/bin/env bash
# Sealing throughput of `cleanroom prepare` (read, scan for PII, tokenize, external sort,
# k-anonymity, encrypt, write) on the bank CSV, next to pyarrow's multithreaded CSV reader
# reading the same file in the same run (a floor: it only parses). One JSON line each.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROWS="${BENCH_PREPARE_ROWS:-1000000}"
DIR="$ROOT/target/bench-prepare"
rm -rf "$DIR" && mkdir -p "$DIR"
python3 -c 'import pyarrow' 2>/dev/null || python3 -m pip install -q pyarrow >&2
"$BIN/cleanroom" generate --rows "$ROWS" --seed 9 --out "$DIR/data" >/dev/null
CSV="$DIR/data/bank.csv"
BYTES=$(stat -c %s "$CSV")
t0=$(date +%s.%N)
"$BIN/cleanroom" prepare "$CSV" --rules "$ROOT/cleanroom/rules/bank.toml" --keys "$DIR/owner.keys" --out "$DIR/sealed" >/dev/null
t1=$(date +%s.%N)
python3 - "$CSV" "$BYTES" "$t0" "$t1" <<'PY'
import json, sys, time
import pyarrow.csv as pc
csv, size, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ours = size / 1e6 / (t1 - t0)
best = None
for _ in range(3):
    s = time.perf_counter()
    pc.read_csv(csv)
    e = time.perf_counter() - s
    best = e if best is None else min(best, e)
base = size / 1e6 / best
print(json.dumps({"bench": "prepare_seal_csv_mb_per_s", "value": round(ours, 1), "unit": "MB/s",
                  "baseline": "pyarrow_read_csv_mb_per_s", "ratio": round(ours / base, 3)}))
print(json.dumps({"bench": "pyarrow_read_csv_mb_per_s", "value": round(base, 1), "unit": "MB/s",
                  "baseline": None, "ratio": None}))
PY
rm -rf "$DIR"
