//! Accuracy of the DP output classes (issue 14): relative error of each released value
//! against the exact value, over `ACCURACY_REPS` releases (default 200) with fresh seeds,
//! on a deterministic synthetic table. `scripts/bench_accuracy.sh` runs this next to OpenDP
//! computing the same statistics at the same ε on the same table.
//!
//! The table: 200 groups `z000`..`z199` whose sizes are spread log-uniformly over 100..5,000
//! rows (about 250,000 rows), one row per privacy unit, a score on the 10⁻⁴ grid drawn from
//! Beta(2, b) with b = 3..8 by group (group means 0.2..0.4), and a 0/1 label drawn as
//! Bernoulli(score). Every output reads the score as the model's only output.
//!
//! One query with every case as an output, each at ε = 0.4 (the Gaussian mean at ρ = ε²/2
//! under the query's δ = 10⁻⁶); the policy is the default owner policy's (minimum group size
//! 20, partition δ 10⁻⁶, one row per unit):
//! - `count`, `sum` ([0, 1]), `mean` ([0, 1]) per group of `g`, a column with a public domain
//!   (every group released, no δ);
//! - `mean_selected`: the same mean per group of `gs`, the same keys without a public domain
//!   (DP partition selection);
//! - `mean_gaussian`: the mean per group of `g` with discrete Gaussian noise;
//! - `quantiles`: q = 0.5 and 0.9 of the score over the whole table, [0, 1], grid 1,024;
//! - `histogram`: 10 equal bins over [0, 1];
//! - `auc`: 100 bins per label.
//!
//! Over the whole table every quantile lands on the candidate next to the true one (250,000
//! rows drown the noise), so the same quantiles are also released per group, as one query
//! per group on that group's rows alone (`group_quantile_*`, bucketed like the groups).
//!
//! Prints one JSON line per (case, group-size bucket, statistic) with `baseline: null`
//! (the script adds OpenDP's figures and the ratios). With `ACCURACY_OUT=dir` it also writes
//! `dir/data.csv` (group,score,label), `dir/ours.csv` (every error of every repetition) and
//! `dir/exact.csv` (the exact values, for the baseline to check its own against) and
//! `dir/outputs.txt` (each output's mechanism and noise terms, as released).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use cleanroom_release::Accumulator;
use protocol::job::{GroupBy, Noise, OutputSpec, QuerySpec};
use protocol::policy::{ColumnPolicy, ColumnRole, Decimal, Policy, SandboxLimits, Timing};
use protocol::result::OutputRelease;
use protocol::table::{Column, ColumnData, RecordBatch};
use protocol::Digest;

const EPS: &str = "0.4";
const GROUPS: usize = 200;
const MIN_SIZE: f64 = 100.0;
const MAX_SIZE: f64 = 5000.0;
const HIST_BINS: usize = 10;
const AUC_BINS: u32 = 100;
const GRID: u32 = 1024;
const QUANTILES: [f64; 2] = [0.5, 0.9];
/// Group-size buckets: [lo, hi) rows, the last one closed.
const BUCKETS: [(usize, usize); 4] = [(100, 500), (500, 1000), (1000, 2000), (2000, 5000)];

/// splitmix64: a deterministic generator for the table (not for noise).
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Row {
    group: usize,
    score: f64,
    label: i64,
}

fn group_name(g: usize) -> String {
    format!("z{g:03}")
}

fn group_size(g: usize) -> usize {
    (MIN_SIZE * (MAX_SIZE / MIN_SIZE).powf(g as f64 / (GROUPS - 1) as f64)).round() as usize
}

fn bucket_of(n: usize) -> String {
    let (lo, hi) = BUCKETS.iter().copied().find(|&(lo, hi)| n >= lo && (n < hi || hi == 5000)).expect("size in range");
    format!("n{lo}-{hi}")
}

fn table() -> Vec<Row> {
    let mut rng = Mix(14);
    let mut rows = Vec::new();
    for g in 0..GROUPS {
        // Beta(2, b) is the second smallest of b + 1 uniforms.
        let b = 3 + g % 6;
        for _ in 0..group_size(g) {
            let mut u: Vec<f64> = (0..=b).map(|_| rng.unit()).collect();
            u.sort_by(f64::total_cmp);
            // On the fixed-point grid, so our fixed-point sums and a float sum agree exactly.
            let score = (u[1] * 10_000.0).round() / 10_000.0;
            let label = i64::from(rng.unit() < score);
            rows.push(Row { group: g, score, label });
        }
    }
    rows
}

fn policy() -> Policy {
    let col = |name: &str, sealed_type: &str, roles: Vec<ColumnRole>, domain: Option<Vec<String>>| ColumnPolicy {
        name: name.into(),
        sealed_type: sealed_type.into(),
        roles,
        domain,
    };
    Policy {
        population: "synthetic".into(),
        rows_per_chunk: 1 << 20,
        allowed_query_classes: vec![],
        max_epsilon_per_job: Decimal::literal("100"),
        max_delta_per_job: Decimal::literal("0.0001"),
        timing: Timing::nominal(1000),
        sandbox: SandboxLimits { fuel_per_unit: 1, memory_limit_bytes: 1, max_module_bytes: 1 },
        ..Policy::new(
            vec![0; 32],
            Digest::default(),
            "unit",
            vec![
                col("unit", "token", vec![], None),
                col("s", "f64", vec![ColumnRole::Input], None),
                col("g", "dict", vec![ColumnRole::GroupBy], Some((0..GROUPS).map(group_name).collect())),
                col("gs", "dict", vec![ColumnRole::GroupBy], None),
                col("y", "i64", vec![ColumnRole::Label], None),
            ],
        )
    }
}

fn spec() -> QuerySpec {
    let eps = || Decimal::literal(EPS);
    let by = |c: &str| GroupBy(vec![c.into()]);
    let mean = |name: &str, col: &str, noise: Noise| OutputSpec::Mean {
        name: name.into(),
        of: None,
        group_by: by(col),
        lower: 0.0,
        upper: 1.0,
        noise,
        epsilon: eps(),
        count_share: None,
    };
    QuerySpec {
        job_id: "accuracy".into(),
        collaborator: "bench".into(),
        dataset_digest: Digest::default(),
        module_hash: Digest::default(),
        inputs: vec!["s".into()],
        outputs: vec![
            OutputSpec::Count { name: "count".into(), group_by: by("g"), noise: Noise::Laplace, epsilon: eps() },
            OutputSpec::Sum {
                name: "sum".into(),
                of: None,
                group_by: by("g"),
                lower: 0.0,
                upper: 1.0,
                noise: Noise::Laplace,
                epsilon: eps(),
            },
            mean("mean", "g", Noise::Laplace),
            mean("mean_selected", "gs", Noise::Laplace),
            mean("mean_gaussian", "g", Noise::Gaussian),
            quantiles_output(),
            OutputSpec::histogram("histogram", (0..=HIST_BINS).map(|i| i as f64 / HIST_BINS as f64).collect(), EPS),
            OutputSpec::auc("auc", "y", AUC_BINS, EPS),
        ],
        delta: Some(Decimal::literal("0.000001")),
        deadline_ms: 1000,
        training: None,
    }
}

fn quantiles_output() -> OutputSpec {
    OutputSpec::Quantiles {
        name: "quantiles".into(),
        of: None,
        lower: 0.0,
        upper: 1.0,
        quantiles: QUANTILES.to_vec(),
        grid: GRID,
        epsilon: Decimal::literal(EPS),
    }
}

/// The quantiles alone, run on one group's rows at a time.
fn group_quantiles_spec() -> QuerySpec {
    QuerySpec { outputs: vec![quantiles_output()], delta: None, ..spec() }
}

/// One privacy unit: one row.
fn unit_batch(r: &Row) -> RecordBatch {
    let dict = || ColumnData::Dict { codes: vec![0], values: vec![group_name(r.group)] };
    RecordBatch::new(vec![
        Column { name: "g".into(), data: dict() },
        Column { name: "gs".into(), data: dict() },
        Column { name: "y".into(), data: ColumnData::I64(vec![r.label]) },
    ])
    .expect("a one-row batch")
}

fn run(q: &QuerySpec, units: &[(RecordBatch, [f64; 1])], dp_seed: Option<u64>) -> Vec<OutputRelease> {
    let mut acc = Accumulator::new(q, &policy(), &["score".to_string()]).expect("valid query");
    for (u, s) in units {
        assert!(acc.add_unit(u, s), "every unit fits");
    }
    match dp_seed {
        Some(seed) => acc.finish_dp(&mut dp::seeded_rng_from_u64(seed)).expect("release").into_outputs(),
        None => acc.finish_exact().expect("exact").outputs,
    }
}

/// The empirical q-quantile: the smallest value with at least q·n values at or below it.
fn quantile_of(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

/// Rows at or below `v`, as a share of all rows.
fn rank_share(sorted: &[f64], v: f64) -> f64 {
    sorted.partition_point(|&x| x <= v) as f64 / sorted.len() as f64
}

/// Nearest-rank percentile of unsorted values.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Binned AUC from exact per-label counts (ties within a bin count one half): what the `auc`
/// class computes without noise.
fn binned_auc(rows: &[Row]) -> f64 {
    let bins = AUC_BINS as usize;
    let mut c = vec![0.0f64; 2 * bins];
    for r in rows {
        let b = ((r.score.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        c[r.label as usize * bins + b] += 1.0;
    }
    let (neg, pos) = c.split_at(bins);
    let (mut below, mut wins) = (0.0, 0.0);
    for b in 0..bins {
        wins += pos[b] * (below + 0.5 * neg[b]);
        below += neg[b];
    }
    wins / (neg.iter().sum::<f64>() * pos.iter().sum::<f64>())
}

/// The public description of each output (mechanism, noise terms, note).
fn describe(out: &[OutputRelease]) -> String {
    let mut s = String::new();
    for o in out {
        writeln!(s, "output {} ({}, {}, ε = {})", o.name, o.class, o.mechanism, o.epsilon).unwrap();
        for t in &o.noise {
            writeln!(
                s,
                "    {}: {} scale {} sensitivity {} ({})",
                t.on, t.distribution, t.scale, t.sensitivity, t.budget
            )
            .unwrap();
        }
        writeln!(s, "    {}", o.note).unwrap();
    }
    s
}

/// Errors of one repetition: (case, bucket, metric, key, value).
type Err = (&'static str, String, &'static str, String, f64);

struct Exact {
    /// Per case, per key: the exact value.
    values: BTreeMap<(&'static str, String), f64>,
    /// Per group key: its size bucket.
    bucket: BTreeMap<String, String>,
    sorted: Vec<f64>,
}

fn errors(out: &[OutputRelease], ex: &Exact) -> Vec<Err> {
    let mut e: Vec<Err> = Vec::new();
    for o in out {
        let case: &'static str = match o.name.as_str() {
            "count" => "count",
            "sum" => "sum",
            "mean" => "mean",
            "mean_selected" => "mean_selected",
            "mean_gaussian" => "mean_gaussian",
            "quantiles" => "quantiles",
            "histogram" => "histogram",
            "auc" => "auc",
            other => panic!("unexpected output {other}"),
        };
        match case {
            "count" | "sum" | "mean" | "mean_selected" | "mean_gaussian" => {
                let released: BTreeMap<&str, &protocol::result::ReleasedValue> =
                    o.values.iter().map(|v| (v.key.as_str(), v)).collect();
                let exact_case = if case == "count" || case == "sum" { case } else { "mean" };
                for (key, bucket) in &ex.bucket {
                    let x = ex.values[&(exact_case, key.clone())];
                    match released.get(key.as_str()) {
                        Some(v) => {
                            e.push((case, bucket.clone(), "released", key.clone(), 1.0));
                            e.push((case, bucket.clone(), "rel_error", key.clone(), (v.value - x).abs() / x.abs()));
                            if let Some([lo, hi]) = v.ci95 {
                                e.push((case, bucket.clone(), "covered", key.clone(), f64::from(lo <= x && x <= hi)));
                            }
                        }
                        None => e.push((case, bucket.clone(), "released", key.clone(), 0.0)),
                    }
                }
            }
            "quantiles" => {
                for (v, q) in o.values.iter().zip(QUANTILES) {
                    let x = quantile_of(&ex.sorted, q);
                    let case = if q == 0.5 { "quantile_q0.5" } else { "quantile_q0.9" };
                    e.push((case, "all".into(), "abs_error", v.key.clone(), (v.value - x).abs()));
                    e.push((
                        case,
                        "all".into(),
                        "rank_error",
                        v.key.clone(),
                        (rank_share(&ex.sorted, v.value) - q).abs(),
                    ));
                }
            }
            "histogram" => {
                let exact: Vec<f64> = (0..HIST_BINS).map(|b| ex.values[&("histogram", b.to_string())]).collect();
                let total: f64 = exact.iter().sum();
                let noisy: Vec<f64> = o.values.iter().map(|v| v.value.max(0.0)).collect();
                let noisy_total: f64 = noisy.iter().sum();
                let tv: f64 =
                    0.5 * noisy.iter().zip(&exact).map(|(n, x)| (n / noisy_total - x / total).abs()).sum::<f64>();
                e.push(("histogram", "all".into(), "tv_distance", String::new(), tv));
                for (b, (v, x)) in o.values.iter().zip(&exact).enumerate() {
                    if *x > 0.0 {
                        e.push(("histogram", "all".into(), "rel_error", b.to_string(), (v.value - x).abs() / x));
                    }
                    if let Some([lo, hi]) = v.ci95 {
                        e.push(("histogram", "all".into(), "covered", b.to_string(), f64::from(lo <= *x && *x <= hi)));
                    }
                }
            }
            "auc" => {
                let x = ex.values[&("auc", String::new())];
                let v = &o.values[0];
                e.push(("auc", "all".into(), "abs_error", String::new(), (v.value - x).abs()));
                if let Some([lo, hi]) = v.ci95 {
                    e.push(("auc", "all".into(), "covered", String::new(), f64::from(lo <= x && x <= hi)));
                }
            }
            _ => unreachable!(),
        }
    }
    e
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let reps: u64 = std::env::var("ACCURACY_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let out_dir = std::env::var("ACCURACY_OUT").ok();
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).expect("ACCURACY_OUT");
    }
    let rows = table();
    let units: Vec<(RecordBatch, [f64; 1])> = rows.iter().map(|r| (unit_batch(r), [r.score])).collect();

    // Exact values, from the data directly and checked against the owner's exact path.
    let mut ex =
        Exact { values: BTreeMap::new(), bucket: BTreeMap::new(), sorted: rows.iter().map(|r| r.score).collect() };
    ex.sorted.sort_by(f64::total_cmp);
    for g in 0..GROUPS {
        let key = group_name(g);
        let scores: Vec<f64> = rows.iter().filter(|r| r.group == g).map(|r| r.score).collect();
        let (n, s) = (scores.len() as f64, scores.iter().sum::<f64>());
        ex.bucket.insert(key.clone(), bucket_of(scores.len()));
        ex.values.insert(("count", key.clone()), n);
        ex.values.insert(("sum", key.clone()), s);
        ex.values.insert(("mean", key), s / n);
    }
    for b in 0..HIST_BINS {
        let edges: Vec<f64> = (0..=HIST_BINS).map(|i| i as f64 / HIST_BINS as f64).collect();
        let n = rows.iter().filter(|r| edges[1..HIST_BINS].iter().take_while(|&&e| r.score >= e).count() == b).count();
        ex.values.insert(("histogram", b.to_string()), n as f64);
    }
    ex.values.insert(("auc", String::new()), binned_auc(&rows));
    let exact_out = run(&spec(), &units, None);
    for o in &exact_out {
        for (i, v) in o.values.iter().enumerate() {
            let want = match o.name.as_str() {
                "count" | "sum" => ex.values[&(if o.name == "count" { "count" } else { "sum" }, v.key.clone())],
                "mean" | "mean_selected" | "mean_gaussian" => ex.values[&("mean", v.key.clone())],
                "histogram" => ex.values[&("histogram", i.to_string())],
                "auc" => ex.values[&("auc", String::new())],
                _ => continue,
            };
            assert!(
                (v.value - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{} {}: {} vs {want}",
                o.name,
                v.key,
                v.value
            );
        }
    }

    // Rows are generated group by group: each group's units are one slice.
    let mut ranges = Vec::with_capacity(GROUPS);
    let mut start = 0;
    for g in 0..GROUPS {
        ranges.push(start..start + group_size(g));
        start += group_size(g);
    }
    let group_sorted: Vec<Vec<f64>> = ranges
        .iter()
        .map(|r| {
            let mut v: Vec<f64> = rows[r.clone()].iter().map(|x| x.score).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();

    let t = Instant::now();
    let mut all: Vec<(u64, Err)> = Vec::new();
    let group_q = group_quantiles_spec();
    for rep in 0..reps {
        let out = run(&spec(), &units, Some(0xACC0_0000 + rep));
        if rep == 0 {
            match &out_dir {
                Some(dir) => std::fs::write(format!("{dir}/outputs.txt"), describe(&out)).expect("write outputs.txt"),
                None => eprint!("{}", describe(&out)),
            }
        }
        all.extend(errors(&out, &ex).into_iter().map(|e| (rep, e)));
        // Quantiles per group: one query per group (disjoint rows).
        for (g, r) in ranges.iter().enumerate() {
            let seed = 0x9_0000_0000 + rep * GROUPS as u64 + g as u64;
            let out = run(&group_q, &units[r.clone()], Some(seed));
            let sorted = &group_sorted[g];
            for (v, q) in out[0].values.iter().zip(QUANTILES) {
                let case = if q == 0.5 { "group_quantile_q0.5" } else { "group_quantile_q0.9" };
                let (b, key) = (bucket_of(sorted.len()), group_name(g));
                all.push((rep, (case, b.clone(), "abs_error", key.clone(), (v.value - quantile_of(sorted, q)).abs())));
                all.push((rep, (case, b, "rank_error", key, (rank_share(sorted, v.value) - q).abs())));
            }
        }
    }
    eprintln!(
        "accuracy: {} rows, {GROUPS} groups, {reps} repetitions in {:.1} s",
        rows.len(),
        t.elapsed().as_secs_f64()
    );

    if let Some(dir) = &out_dir {
        let mut s = String::from("group,score,label\n");
        for r in &rows {
            writeln!(s, "{},{},{}", group_name(r.group), r.score, r.label).unwrap();
        }
        std::fs::write(format!("{dir}/data.csv"), s).expect("write data.csv");
        let mut s = String::from("case,bucket,metric,rep,key,value\n");
        for (rep, (case, bucket, metric, key, v)) in &all {
            writeln!(s, "{case},{bucket},{metric},{rep},{key},{v}").unwrap();
        }
        std::fs::write(format!("{dir}/ours.csv"), s).expect("write ours.csv");
        let mut s = String::from("case,key,value\n");
        for ((case, key), v) in &ex.values {
            writeln!(s, "{case},{key},{v}").unwrap();
        }
        for q in QUANTILES {
            writeln!(s, "quantile,{q},{}", quantile_of(&ex.sorted, q)).unwrap();
            for (g, sorted) in group_sorted.iter().enumerate() {
                writeln!(s, "group_quantile_{q},{},{}", group_name(g), quantile_of(sorted, q)).unwrap();
            }
        }
        std::fs::write(format!("{dir}/exact.csv"), s).expect("write exact.csv");
    }

    // Summary lines (ours alone; the script adds OpenDP and the ratios).
    let mut groups: BTreeMap<(&str, String, &str), Vec<f64>> = BTreeMap::new();
    for (_, (case, bucket, metric, _, v)) in &all {
        groups.entry((case, bucket.clone(), metric)).or_default().push(*v);
        if bucket.starts_with('n') {
            groups.entry((case, "n100-5000".into(), metric)).or_default().push(*v);
        }
    }
    let line = |name: String, value: f64, unit: &str| {
        println!(r#"{{"bench": "{name}", "value": {value:.6}, "unit": "{unit}", "baseline": null, "ratio": null}}"#)
    };
    for ((case, bucket, metric), mut v) in groups {
        let stem = format!("accuracy_{case}_eps{EPS}_{bucket}");
        match metric {
            "covered" => line(format!("{stem}_ci95_coverage"), v.iter().sum::<f64>() / v.len() as f64, "share"),
            "released" => line(format!("{stem}_released_share"), v.iter().sum::<f64>() / v.len() as f64, "share"),
            _ => {
                let unit = match metric {
                    "rel_error" => "ratio",
                    "abs_error" => "value",
                    _ => "share",
                };
                line(format!("{stem}_median_{metric}"), percentile(&mut v, 0.5), unit);
                line(format!("{stem}_p95_{metric}"), percentile(&mut v, 0.95), unit);
                if case.starts_with("mean") {
                    line(format!("{stem}_max_{metric}"), percentile(&mut v, 1.0), unit);
                }
            }
        }
    }
}
