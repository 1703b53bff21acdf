#!/usr/bin/env bash
# Accuracy of the DP output classes next to OpenDP (issue 14).
#
# Prints one JSON object per line (the workspace bench convention), for each case, group-size
# bucket and statistic, ours then OpenDP's:
#   {"bench": "accuracy_mean_eps0.4_n500-1000_median_rel_error", "value": X, "unit": "ratio",
#    "baseline": "opendp_mean_eps0.4_n500-1000_median_rel_error", "ratio": OPENDP / X}
#   {"bench": "opendp_mean_eps0.4_n500-1000_median_rel_error", ..., "baseline": null, "ratio": null}
# ratio > 1: our error is smaller. Also the coverage of our released ci95 per case and bucket
# (unit "share"), the share of groups released under partition selection, and OpenDP's mean
# with a known (public) group size for reference (baseline null: it assumes what we may not).
# Buckets n100-500 .. n2000-5000 by group size, n100-5000 for every group together, "all" for
# statistics over the whole table; means also get the maximum over groups and repetitions.
#
# Ours: release/benches/accuracy.rs (the release crate's Accumulator, finish_dp, fresh ChaCha20
# seed per repetition) writes the synthetic table and every error of every repetition to a
# temp dir. OpenDP (PyPI `opendp`, installed here if missing) computes the same statistics at
# the same ε, with one row per unit and the same bounds, on the same table:
#   count     make_count_by_categories over the public group domain >> then_laplace, ε = 0.4
#   sum       per group: then_clamp((0, 1)) >> then_sum >> then_laplace, ε = 0.4 (groups are
#             disjoint, so per-group releases compose in parallel)
#   mean      count_by_categories >> then_laplace at ε/2 and per group clamp >> sum >>
#             then_laplace at ε/2; mean = noisy sum / max(noisy count, 1), clipped to [0, 1]
#             (OpenDP's make_mean needs a known size; we may not assume one)
#   mean_selected  make_count_by >> then_laplace_threshold at (ε/2, δ = 1e-6) to find groups,
#             then the sums as above at ε/2; groups below 20 (the policy minimum) dropped
#   mean_gaussian  as mean with then_gaussian, ρ = ε²/2 split evenly (ρ/2 each)
#   quantile  make_private_quantile (make_quantile_score_candidates >> make_noisy_max, i.e.
#             permute-and-flip) on the same 1,024 candidates, ε/2 per quantile; over the whole
#             table and per group (group_quantile)
#   histogram make_count_by_categories over the 10 bin indices >> then_laplace, ε = 0.4
#   auc       make_count_by_categories over 2 × 100 (label, bin) cells >> then_laplace, ε = 0.4,
#             then the same AUC formula we use (OpenDP has no AUC)
# Every OpenDP noise scale is found with dp.binary_search_param on the whole chain's privacy
# map, so OpenDP certifies the ε (or ρ, or (ε, δ)). The deterministic part of each chain (the
# transformation: counts, clamped sums) is evaluated once; the noise measurement that chain
# ends with is applied afresh in each repetition (the same distribution as invoking the whole
# measurement, at a fraction of the time).
#
# ACCURACY_REPS (default 200) repetitions on both sides. Our outputs' noise terms and OpenDP's
# calibrated scales go to target/bench-accuracy.log.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS="${ACCURACY_REPS:-200}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import opendp.prelude' >/dev/null 2>&1; then
    "$PY" -m pip install --quiet opendp >&2
fi

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
ACCURACY_REPS="$REPS" ACCURACY_OUT="$dir" cargo bench -q -p cleanroom-release --bench accuracy >"$dir/ours.jsonl"

"$PY" - "$dir" "$REPS" <<'PYEOF'
import bisect, csv, importlib.metadata, json, math, sys, time
from collections import defaultdict
import opendp.prelude as dp

dp.enable_features("contrib")
d, reps = sys.argv[1], int(sys.argv[2])
EPS = 0.4
DELTA = 1e-6          # the policy's partition δ
MIN_GROUP = 20        # the policy's minimum group size
HIST_BINS, AUC_BINS, GRID = 10, 100, 1024
QUANTILES = [0.5, 0.9]
BUCKETS = [(100, 500), (500, 1000), (1000, 2000), (2000, 5000)]

rows = list(csv.DictReader(open(f"{d}/data.csv")))
keys = [r["group"] for r in rows]
scores = [float(r["score"]) for r in rows]
labels = [int(r["label"]) for r in rows]
groups = sorted(set(keys))
by_group = defaultdict(list)
for k, s in zip(keys, scores):
    by_group[k].append(s)
size = {g: len(by_group[g]) for g in groups}

def bucket(n):
    for lo, hi in BUCKETS:
        if lo <= n < hi or (n == hi == 5000):
            return f"n{lo}-{hi}"
    raise ValueError(n)

# Exact values, checked against the ones the Rust bench used.
exact = {("count", g): float(size[g]) for g in groups}
exact.update({("sum", g): math.fsum(by_group[g]) for g in groups})
exact.update({("mean", g): math.fsum(by_group[g]) / size[g] for g in groups})
srt = sorted(scores)
n_all = len(srt)
def quantile_of(q):
    return srt[min(max(math.ceil(q * n_all), 1), n_all) - 1]
def rank_share(v):
    return bisect.bisect_right(srt, v) / n_all
edges = [i / HIST_BINS for i in range(HIST_BINS + 1)]
def hist_bin(s):  # as release/src/classes/bins.rs bin_of
    return sum(1 for e in edges[1:HIST_BINS] if s >= e)
def auc_bin(s):  # as unit_bin
    return min(int(min(max(s, 0.0), 1.0) * AUC_BINS), AUC_BINS - 1)
hist_exact = [0] * HIST_BINS
for s in scores:
    hist_exact[hist_bin(s)] += 1
def auc_of(x):  # as release/src/classes/bins.rs auc: negatives then positives, < 0 taken as 0
    c = [max(v, 0.0) for v in x[:2 * AUC_BINS]]
    neg, pos = c[:AUC_BINS], c[AUC_BINS:]
    n, p = sum(neg), sum(pos)
    below = wins = 0.0
    for b in range(AUC_BINS):
        wins += pos[b] * (below + 0.5 * neg[b])
        below += neg[b]
    return wins / (n * p) if n > 0 and p > 0 else None
auc_cells = [0] * (2 * AUC_BINS)
for s, y in zip(scores, labels):
    auc_cells[y * AUC_BINS + auc_bin(s)] += 1
auc_exact = auc_of(auc_cells)
theirs_exact = {}
for r in csv.DictReader(open(f"{d}/exact.csv")):
    theirs_exact[(r["case"], r["key"])] = float(r["value"])
for (case, key), v in exact.items():
    w = theirs_exact[(case, key)]
    assert abs(v - w) <= 1e-9 * max(abs(w), 1.0), (case, key, v, w)
for b in range(HIST_BINS):
    assert theirs_exact[("histogram", str(b))] == hist_exact[b]
assert abs(theirs_exact[("auc", "")] - auc_exact) < 1e-12
for q in QUANTILES:
    assert theirs_exact[("quantile", str(q))] == quantile_of(q)

# --- OpenDP measurements, each calibrated on its whole chain ------------------------------
t_cal = time.perf_counter()
vec_str = (dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance())
vec_f = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance())
vec_i = (dp.vector_domain(dp.atom_domain(T=int)), dp.symmetric_distance())
used = {}

def calibrate(name, chain, d_out, T=float):
    s = dp.binary_search_param(chain, d_in=1, d_out=d_out, T=T)
    used[name] = (s, chain(s).map(1))
    return s

def by_categories(space, cats, MO=dp.L1Distance[int]):
    return dp.t.make_count_by_categories(*space, categories=cats, null_category=False, MO=MO)

# counts per public group; L1 for Laplace, L2 for the Gaussian
count_t = by_categories(vec_str, groups)
count_t2 = by_categories(vec_str, groups, dp.L2Distance[int])
counts = count_t(keys)
assert [float(c) for c in counts] == [exact[("count", g)] for g in groups]
sum_t = (vec_f >> dp.t.then_clamp((0.0, 1.0))) >> dp.t.then_sum()
sums = [sum_t(by_group[g]) for g in groups]
for g, s in zip(groups, sums):
    assert abs(s - exact[("sum", g)]) <= 1e-6, (g, s)

def lap_count(eps):
    s = calibrate(f"count laplace eps={eps}", lambda b: count_t >> dp.m.then_laplace(b), eps)
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), s)
def lap_sum(eps):
    s = calibrate(f"sum laplace eps={eps}", lambda b: sum_t >> dp.m.then_laplace(b), eps)
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float), s)
def gauss_count(rho):
    s = calibrate(f"count gaussian rho={rho}", lambda b: count_t2 >> dp.m.then_gaussian(b), rho)
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), s)
def gauss_sum(rho):
    s = calibrate(f"sum gaussian rho={rho}", lambda b: sum_t >> dp.m.then_gaussian(b), rho)
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float), s)

count_full = lap_count(EPS)
sum_full = lap_sum(EPS)
count_half, sum_half = lap_count(EPS / 2), lap_sum(EPS / 2)
rho = EPS * EPS / 2
count_g, sum_g = gauss_count(rho / 2), gauss_sum(rho / 2)

# partition selection: count_by >> laplace_threshold at (ε/2, δ)
count_by = dp.t.make_count_by(*vec_str, TV=int)
cb = count_by(keys)
thr_chain = lambda s, t: count_by >> dp.m.then_laplace_threshold(scale=s, threshold=t)
# (ε, δ) pairs have no total order, so search each coordinate with its own predicate
def within(m):
    e, dl = m.map(1)
    return e <= EPS / 2 and dl <= DELTA
sel_scale = dp.binary_search(lambda s: within(thr_chain(s, 10**6)), bounds=(0.1, 100.0), T=float)
sel_thr = dp.binary_search(lambda t: within(thr_chain(sel_scale, t)), bounds=(1, 10**6), T=int)
used["partition selection threshold"] = (sel_thr, thr_chain(sel_scale, sel_thr).map(1))
sel_meas = dp.m.make_laplace_threshold(count_by.output_domain, count_by.output_metric, scale=sel_scale, threshold=sel_thr)

# known-size mean (reference only): make_mean on a sized domain, change-one neighbours (d_in 2)
known = {}
for g in groups:
    sp = (dp.vector_domain(dp.atom_domain(T=float, nan=False), size=size[g]), dp.symmetric_distance())
    mt = (sp >> dp.t.then_clamp((0.0, 1.0))) >> dp.t.then_mean()
    s = dp.binary_search_param(lambda b: mt >> dp.m.then_laplace(b), d_in=2, d_out=EPS)
    known[g] = (mt(by_group[g]), dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), s))

# histogram and AUC cells
hist_t = by_categories(vec_i, list(range(HIST_BINS)))
hist_counts = hist_t([hist_bin(s) for s in scores])
assert hist_counts == hist_exact
hist_s = calibrate("histogram laplace", lambda b: hist_t >> dp.m.then_laplace(b), EPS)
hist_noise = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), hist_s)
auc_t = by_categories(vec_i, list(range(2 * AUC_BINS)))
auc_counts = auc_t([y * AUC_BINS + auc_bin(s) for s, y in zip(scores, labels)])
assert auc_counts == auc_cells
auc_s = calibrate("auc laplace", lambda b: auc_t >> dp.m.then_laplace(b), EPS)
auc_noise = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), auc_s)

# quantiles: the same candidates as ours (fixed point 1/10,000, 1,024 evenly spaced)
# make_private_quantile is make_quantile_score_candidates >> make_noisy_max(negate) (its source,
# opendp 0.16); the scores are deterministic, so they are computed once per data set and the
# noisy max (permute-and-flip under max_divergence) is drawn each repetition.
cands = [((j * 10000 + (GRID - 1) // 2) // (GRID - 1)) / 10000 for j in range(GRID)]
quant = {}      # q -> (scores over the whole table, {group: scores}, noisy max measurement)
for q in QUANTILES:
    st = dp.t.make_quantile_score_candidates(*vec_f, candidates=cands, alpha=q)
    chain = lambda s, st=st: st >> dp.m.then_noisy_max(dp.max_divergence(), scale=s, negate=True)
    s = calibrate(f"quantile {q} (score >> noisy_max)", chain, EPS / len(QUANTILES))
    calibrate(f"quantile {q} (make_private_quantile, scale in its own units)",
              lambda s, q=q: dp.m.make_private_quantile(*vec_f, dp.max_divergence(), candidates=cands, alpha=q, scale=s),
              EPS / len(QUANTILES))
    nm = dp.m.make_noisy_max(st.output_domain, st.output_metric, dp.max_divergence(), scale=s, negate=True)
    quant[q] = (st(scores), {g: st(by_group[g]) for g in groups}, nm)
group_sorted = {g: sorted(by_group[g]) for g in groups}
def group_quantile(g, q):
    v = group_sorted[g]
    return v[min(max(math.ceil(q * len(v)), 1), len(v)) - 1]
for q in QUANTILES:
    for g in groups:
        assert theirs_exact[(f"group_quantile_{q}", g)] == group_quantile(g, q)

print(f"opendp: calibrated in {time.perf_counter() - t_cal:.1f} s", file=sys.stderr)
with open(f"{d}/opendp.txt", "w") as f:
    print(f"opendp {importlib.metadata.version('opendp')}", file=f)
    for k, (param, loss) in used.items():
        print(f"opendp {k}: parameter {param}, privacy map at d_in 1: {loss}", file=f)

# --- repetitions --------------------------------------------------------------------------
theirs = defaultdict(list)   # (case, bucket, metric) -> values
def put(case, b, metric, v):
    theirs[(case, b, metric)].append(v)
def rel(v, x):
    return abs(v - x) / abs(x)

t0 = time.perf_counter()
for rep in range(reps):
    c = count_full(counts)
    s = sum_full(sums)
    for i, g in enumerate(groups):
        put("count", bucket(size[g]), "rel_error", rel(max(c[i], 0), exact[("count", g)]))
        put("sum", bucket(size[g]), "rel_error", rel(s[i], exact[("sum", g)]))
    for case, cm, sm in [("mean", count_half, sum_half), ("mean_gaussian", count_g, sum_g)]:
        c, s = cm(counts), sm(sums)
        for i, g in enumerate(groups):
            m = min(max(s[i] / max(c[i], 1), 0.0), 1.0)
            put(case, bucket(size[g]), "rel_error", rel(m, exact[("mean", g)]))
    sel = sel_meas(cb)
    s = sum_half(sums)
    for i, g in enumerate(groups):
        nc = sel.get(g)
        if nc is None or nc < MIN_GROUP:
            put("mean_selected", bucket(size[g]), "released", 0.0)
            continue
        put("mean_selected", bucket(size[g]), "released", 1.0)
        m = min(max(s[i] / max(nc, 1), 0.0), 1.0)
        put("mean_selected", bucket(size[g]), "rel_error", rel(m, exact[("mean", g)]))
    for g in groups:
        x, noise = known[g]
        put("mean_known_size", bucket(size[g]), "rel_error", rel(min(max(noise(x), 0.0), 1.0), exact[("mean", g)]))
    h = [max(v, 0) for v in hist_noise(hist_counts)]
    tot, ht = sum(h), sum(hist_exact)
    put("histogram", "all", "tv_distance", 0.5 * sum(abs(a / tot - b / ht) for a, b in zip(h, hist_exact)))
    for a, b in zip(h, hist_exact):
        if b > 0:
            put("histogram", "all", "rel_error", abs(a - b) / b)
    a = auc_of([float(v) for v in auc_noise(auc_counts)])
    put("auc", "all", "abs_error", abs((0.5 if a is None else a) - auc_exact))
    for q in QUANTILES:
        whole, per_group, nm = quant[q]
        v = cands[nm(whole)]
        put(f"quantile_q{q}", "all", "abs_error", abs(v - quantile_of(q)))
        put(f"quantile_q{q}", "all", "rank_error", abs(rank_share(v) - q))
        for g in groups:
            v, x, srt_g = cands[nm(per_group[g])], group_quantile(g, q), group_sorted[g]
            put(f"group_quantile_q{q}", bucket(size[g]), "abs_error", abs(v - x))
            put(f"group_quantile_q{q}", bucket(size[g]), "rank_error", abs(bisect.bisect_right(srt_g, v) / len(srt_g) - q))
print(f"opendp: {reps} repetitions in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

# --- ours, from the Rust bench's raw errors -------------------------------------------------
ours = defaultdict(list)
for r in csv.DictReader(open(f"{d}/ours.csv")):
    ours[(r["case"], r["bucket"], r["metric"])].append(float(r["value"]))
# every group together, beside the buckets
for side in (ours, theirs):
    for (c, b, m) in list(side):
        if b.startswith("n"):
            side[(c, "n100-5000", m)].extend(side[(c, b, m)])

def pct(v, p):
    v = sorted(v)
    return v[min(max(math.ceil(p * len(v)), 1), len(v)) - 1]
UNIT = {"rel_error": "ratio", "abs_error": "value", "rank_error": "share", "tv_distance": "share"}
def line(name, value, unit, baseline=None, ratio=None):
    print(json.dumps({"bench": name, "value": round(value, 6), "unit": unit, "baseline": baseline, "ratio": ratio}))
def ratio(theirs_v, ours_v, higher_better=False):
    num, den = (ours_v, theirs_v) if higher_better else (theirs_v, ours_v)
    return round(num / den, 3) if den > 0 else None

order = ["count", "sum", "mean", "mean_selected", "mean_gaussian", "quantile_q0.5", "quantile_q0.9",
         "group_quantile_q0.5", "group_quantile_q0.9", "histogram", "auc"]
for case in order:
    for (c, b, metric) in sorted(k for k in ours if k[0] == case):
        stem = f"{case}_eps{EPS}_{b}"
        if metric == "covered":
            v = ours[(c, b, metric)]
            line(f"accuracy_{stem}_ci95_coverage", sum(v) / len(v), "share")
            continue
        if metric == "released":
            v, w = ours[(c, b, metric)], theirs.get((c, b, metric))
            mine = sum(v) / len(v)
            if w:
                base = f"opendp_{stem}_released_share"
                line(f"accuracy_{stem}_released_share", mine, "share", base, ratio(sum(w) / len(w), mine, True))
                line(base, sum(w) / len(w), "share")
            else:
                line(f"accuracy_{stem}_released_share", mine, "share")
            continue
        stats = [(0.5, "median"), (0.95, "p95")] + ([(1.0, "max")] if case.startswith("mean") else [])
        for p, pname in stats:
            mine = pct(ours[(c, b, metric)], p)
            base = f"opendp_{stem}_{pname}_{metric}"
            w = theirs.get((c, b, metric))
            if w:
                other = pct(w, p)
                line(f"accuracy_{stem}_{pname}_{metric}", mine, UNIT[metric], base, ratio(other, mine))
                line(base, other, UNIT[metric])
            else:
                line(f"accuracy_{stem}_{pname}_{metric}", mine, UNIT[metric])
            if case == "mean":
                known_v = theirs.get(("mean_known_size", b, metric))
                if known_v:
                    line(f"opendp_mean_known_size_eps{EPS}_{b}_{pname}_{metric}", pct(known_v, p), UNIT[metric])
PYEOF
# What was compared, for BENCHMARKS.md: our outputs' noise terms, OpenDP's calibrated scales.
mkdir -p target
cat "$dir/outputs.txt" "$dir/opendp.txt" >target/bench-accuracy.log
