#!/usr/bin/env bash
# Prints one JSON object per line: {"bench", "value", "unit", "baseline", "ratio"}.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# 1. Sealed-ingest throughput vs raw AES-GCM.
cargo bench -q -p cleanroom-protocol --bench sealed_ingest 2>/dev/null | grep '^{'

# 2. The demo's enclave job, end to end through the real processes, timed per 1,000 rows.
ROWS="${BENCH_ROWS:-200000}"
DEMO_ROWS="$ROWS" ./scripts/demo.sh > target/bench-demo.log 2>&1 || { tail -20 target/bench-demo.log; exit 1; }
python3 - "$ROOT/target/demo" "$ROWS" <<'PY'
import json, sys, re
demo, rows = sys.argv[1], int(sys.argv[2])
t = json.load(open(f"{demo}/timings.json"))
ms = t["submit_s"] * 1000.0 / (rows / 1000.0)
print(json.dumps({"bench": "enclave_job_ms_per_1k_rows", "value": round(ms, 3), "unit": "ms", "baseline": None, "ratio": None}))
mbs = t["sealed_bytes"] / 1e6 / t["submit_s"]
print(json.dumps({"bench": "e2e_ingest_through_proxy_mb_s", "value": round(mbs, 1), "unit": "MB/s", "baseline": None, "ratio": None}))
print(json.dumps({"bench": "release_cli_start_to_key_delivered_ms", "value": round(t["release_s"] * 1000.0, 1), "unit": "ms", "baseline": None, "ratio": None}))
PY
