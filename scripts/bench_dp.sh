#!/usr/bin/env bash
# DP sampler throughput side by side with OpenDP (issue 8).
#
# Prints one JSON object per line (the workspace bench convention):
#   {"bench": "discrete_laplace_scale_1", "value": X, "unit": "samples/s",
#    "baseline": "opendp_discrete_laplace_scale_1", "ratio": X / OPENDP}
# for discrete Laplace (scale b) and discrete Gaussian (σ) at 1, 100 and 10^6, plus one line
# per OpenDP measurement (baseline null).
#
# Ours: dp/examples/sampler_bench.rs (exact CKS20 samplers, ChaCha20 CSPRNG), DP_BENCH_SAMPLES
# samples per case. OpenDP (PyPI `opendp`, installed here if missing): its exact integer
# samplers through the public API, make_laplace on vector_domain(atom_domain(T=int)) with
# l1_distance (discrete Laplace) and make_gaussian with l2_distance (discrete Gaussian), one
# call over DP_BENCH_OPENDP_SAMPLES zeros, so the Python boundary is crossed once per batch;
# the time of make_identity on the same vector (the list conversion both ways) is
# subtracted, in OpenDP's favour. Best of DP_BENCH_REPEATS runs on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${DP_BENCH_SAMPLES:-1000000}"
N_OPENDP="${DP_BENCH_OPENDP_SAMPLES:-200000}"
REPEATS="${DP_BENCH_REPEATS:-3}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import opendp.prelude' >/dev/null 2>&1; then
    "$PY" -m pip install --quiet opendp >&2
fi

cargo build --quiet --release -p cleanroom-dp --example sampler_bench >&2
ours_file="$(mktemp)"
trap 'rm -f "$ours_file"' EXIT
for _ in $(seq "$REPEATS"); do
    target/release/examples/sampler_bench "$N" >>"$ours_file"
done

"$PY" - "$ours_file" "$N_OPENDP" "$REPEATS" <<'PYEOF'
import json, sys, time
import opendp.prelude as dp

# make_identity (used only to time the list conversion) needs "honest-but-curious".
dp.enable_features("contrib", "honest-but-curious")
ours_file, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

ours = {}
for line in open(ours_file):
    line = line.strip()
    if line:
        r = json.loads(line)
        ours[r["bench"]] = max(ours.get(r["bench"], 0.0), float(r["value"]))

def best_rate(meas, ident, x):
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter(); ident(x); overhead = time.perf_counter() - t
        t = time.perf_counter(); out = meas(x); el = time.perf_counter() - t
        assert len(out) == len(x)
        best = max(best, len(x) / max(el - overhead, 1e-9))
    return best

x = [0] * n
cases = [("1", 1.0), ("100", 100.0), ("1e6", 1e6)]
for name, scale in cases:
    for kind, metric, make, ours_name in [
        ("laplace", dp.l1_distance(T=int), dp.m.make_laplace, f"discrete_laplace_scale_{name}"),
        ("gaussian", dp.l2_distance(T=int), dp.m.make_gaussian, f"discrete_gaussian_sigma_{name}"),
    ]:
        domain = dp.vector_domain(dp.atom_domain(T=int))
        meas = make(domain, metric, scale=scale)
        ident = dp.t.make_identity(domain, metric)
        theirs = best_rate(meas, ident, x)
        base = f"opendp_{ours_name}"
        print(json.dumps({"bench": base, "value": round(theirs), "unit": "samples/s", "baseline": None, "ratio": None}))
        mine = ours.get(ours_name)
        if mine is None:
            sys.exit(f"sampler_bench printed no {ours_name}")
        print(json.dumps({"bench": ours_name, "value": round(mine), "unit": "samples/s", "baseline": base,
                          "ratio": round(mine / theirs, 2)}))
PYEOF
