//! Every output class: exact values on a table whose answers are known, the noise terms
//! and intervals it states, and over many runs that its 95% intervals cover the exact
//! value between 93% and 97% of the time (quantiles: at least 95%, a stated bound).

use crate::{query_cost, Accumulator, ReleaseError};
use protocol::job::{GroupBy, Noise, OutputSpec, QuerySpec, ValueSource};
use protocol::policy::{ColumnPolicy, ColumnRole, Decimal, Policy, SandboxLimits, Timing};
use protocol::result::OutputRelease;
use protocol::table::{Column, ColumnData, RecordBatch};
use protocol::Digest;

const N: usize = 3000;

fn d(s: &str) -> Decimal {
    Decimal::literal(s)
}

fn policy(public_domains: bool) -> Policy {
    let col = |name: &str, t: &str, roles: Vec<ColumnRole>, domain: Option<Vec<&str>>| ColumnPolicy {
        name: name.into(),
        sealed_type: t.into(),
        roles,
        domain: domain.filter(|_| public_domains).map(|v| v.into_iter().map(String::from).collect()),
    };
    Policy {
        population: "p".into(),
        rows_per_chunk: 1 << 20,
        allowed_query_classes: vec![],
        min_group_size: 1,
        max_epsilon_per_job: d("100"),
        max_delta_per_job: d("0.001"),
        timing: Timing::nominal(1000),
        sandbox: SandboxLimits { fuel_per_unit: 1, memory_limit_bytes: 1 << 20, max_module_bytes: 1 << 20 },
        ..Policy::new(
            vec![0; 32],
            Digest::default(),
            "unit",
            vec![
                col("unit", "token", vec![], None),
                col("g1", "dict", vec![ColumnRole::GroupBy], Some(vec!["a", "b", "c"])),
                col("g2", "dict", vec![ColumnRole::GroupBy], Some(vec!["x", "y"])),
                col("y", "i64", vec![ColumnRole::Label], None),
                col("v", "f64", vec![ColumnRole::Value], None),
            ],
        )
    }
}

/// The module's two outputs for unit i: a score p in [0, 1) and r = 1 − p².
fn outputs(i: usize) -> [f64; 2] {
    let p = ((i * 37) % 100) as f64 / 100.0;
    [p, 1.0 - p * p]
}

fn label(i: usize) -> i64 {
    let p = outputs(i)[0];
    // mostly agrees with p > 0.5
    i64::from((p > 0.5) != ((i * 7) % 10 >= 8))
}

/// One unit (one row): groups g1 = a/b/c and g2 = x/y, label y, value v.
fn unit(i: usize) -> RecordBatch {
    let dict = |v: &str| ColumnData::Dict { codes: vec![0], values: vec![v.into()] };
    RecordBatch::new(vec![
        Column { name: "g1".into(), data: dict(["a", "b", "c"][i % 3]) },
        Column { name: "g2".into(), data: dict(["x", "y"][(i / 3) % 2]) },
        Column { name: "y".into(), data: ColumnData::I64(vec![label(i)]) },
        Column { name: "v".into(), data: ColumnData::F64(vec![(i % 50) as f64 * 100.0]) },
    ])
    .unwrap()
}

fn names() -> Vec<String> {
    vec!["p".into(), "r".into()]
}

fn of(o: &str) -> Option<ValueSource> {
    Some(ValueSource::Output(o.into()))
}

fn keys(k: &[&str]) -> GroupBy {
    GroupBy(k.iter().map(|s| s.to_string()).collect())
}

fn query(outputs: Vec<OutputSpec>) -> QuerySpec {
    let gaussian = outputs.iter().any(|o| o.noise() == Noise::Gaussian);
    QuerySpec {
        job_id: "j".into(),
        collaborator: "c".into(),
        dataset_digest: Digest::default(),
        module_hash: Digest::default(),
        inputs: vec![],
        outputs,
        delta: gaussian.then(|| d("0.000001")),
        deadline_ms: 1000,
        training: None,
    }
}

fn fed(q: &QuerySpec, p: &Policy) -> Accumulator {
    let mut acc = Accumulator::new(q, p, &names()).unwrap();
    let units: Vec<RecordBatch> = (0..N).map(unit).collect();
    for (i, u) in units.iter().enumerate() {
        assert!(acc.add_unit(u, &outputs(i)));
    }
    acc
}

fn exact(q: &QuerySpec, p: &Policy) -> Vec<OutputRelease> {
    fed(q, p).finish_exact().unwrap().outputs
}

fn dp_run(q: &QuerySpec, p: &Policy, seed: u64) -> Vec<OutputRelease> {
    let mut rng = dp::seeded_rng_from_u64(seed);
    fed(q, p).finish_dp(&mut rng).unwrap().into_outputs()
}

fn get(o: &OutputRelease, key: &str, stat: &str) -> f64 {
    o.values.iter().find(|v| v.key == key && v.stat == stat).unwrap_or_else(|| panic!("{key}/{stat} in {o:?}")).value
}

fn every_class() -> Vec<OutputSpec> {
    vec![
        OutputSpec::Count {
            name: "count".into(),
            group_by: keys(&["g1", "g2"]),
            noise: Noise::Laplace,
            epsilon: d("0.1"),
        },
        OutputSpec::Sum {
            name: "sum".into(),
            of: of("p"),
            group_by: keys(&["g1"]),
            lower: 0.0,
            upper: 1.0,
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
        OutputSpec::Mean {
            name: "mean".into(),
            of: of("p"),
            group_by: keys(&["g1", "g2"]),
            lower: 0.0,
            upper: 1.0,
            noise: Noise::Laplace,
            epsilon: d("0.2"),
            count_share: None,
        },
        OutputSpec::Variance {
            name: "variance".into(),
            of: Some(ValueSource::Column("v".into())),
            group_by: keys(&["g1"]),
            lower: 0.0,
            upper: 5000.0,
            noise: Noise::Laplace,
            epsilon: d("0.5"),
        },
        OutputSpec::Histogram {
            name: "histogram".into(),
            of: of("p"),
            edges: (0..=10).map(|i| i as f64 / 10.0).collect(),
            noise: Noise::Laplace,
            epsilon: d("0.1"),
        },
        OutputSpec::Quantiles {
            name: "quantiles".into(),
            of: of("p"),
            lower: 0.0,
            upper: 1.0,
            quantiles: vec![0.5, 0.9],
            grid: 101,
            epsilon: d("0.5"),
        },
        OutputSpec::ConfusionMatrix {
            name: "confusion".into(),
            of: of("p"),
            label: "y".into(),
            thresholds: vec![0.3, 0.5, 0.7],
            noise: Noise::Laplace,
            epsilon: d("0.3"),
        },
        OutputSpec::Calibration {
            name: "calibration".into(),
            of: of("p"),
            label: "y".into(),
            bins: 5,
            noise: Noise::Laplace,
            epsilon: d("0.3"),
        },
        OutputSpec::Auc {
            name: "auc".into(),
            of: of("p"),
            label: "y".into(),
            bins: 20,
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
        OutputSpec::Covariance {
            name: "covariance".into(),
            of: vec![ValueSource::Output("p".into()), ValueSource::Output("r".into())],
            lower: 0.0,
            upper: 1.0,
            epsilon: d("0.5"),
        },
    ]
}

#[test]
fn every_class_computes_the_known_exact_values() {
    let p = policy(true);
    let out = exact(&query(every_class()), &p);
    let by = |name: &str| out.iter().find(|o| o.name == name).unwrap();
    let units = |f: &dyn Fn(usize) -> bool| (0..N).filter(|&i| f(i)).collect::<Vec<_>>();
    // count per (g1, g2): every combination of the public domains, in key order
    let c = by("count");
    assert_eq!(
        c.values.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
        ["a | x", "a | y", "b | x", "b | y", "c | x", "c | y"]
    );
    for (j, v) in c.values.iter().enumerate() {
        let (g1, g2) = (j / 2, j % 2);
        assert_eq!(v.value as usize, units(&|i| i % 3 == g1 && (i / 3) % 2 == g2).len());
    }
    // sum and mean of p
    for g in 0..3 {
        let members = units(&|i| i % 3 == g);
        let s: f64 = members.iter().map(|&i| outputs(i)[0]).sum();
        let key = ["a", "b", "c"][g];
        assert!((get(by("sum"), key, "") - s).abs() < 1e-6);
        let vals: Vec<f64> = members.iter().map(|&i| (i % 50) as f64 * 100.0).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!((get(by("variance"), key, "mean") - m).abs() < 1e-6);
        assert!((get(by("variance"), key, "variance") / var - 1.0).abs() < 1e-4, "{var}");
    }
    let ax = units(&|i| i % 3 == 0 && (i / 3) % 2 == 0);
    let mean_ax = ax.iter().map(|&i| outputs(i)[0]).sum::<f64>() / ax.len() as f64;
    assert!((get(by("mean"), "a | x", "") - mean_ax).abs() < 1e-9);
    // histogram: p = (37 i mod 100)/100 is uniform over the hundredths
    assert!(by("histogram").values.iter().all(|v| v.value == (N / 10) as f64));
    // quantiles on the grid 0, 0.01, …, 1
    assert!((get(by("quantiles"), "q = 0.5", "") - 0.5).abs() < 0.011);
    assert!((get(by("quantiles"), "q = 0.9", "") - 0.9).abs() < 0.011);
    // confusion matrix at 0.5
    let pos = |i: usize| label(i) == 1;
    let pred = |i: usize| outputs(i)[0] >= 0.5;
    let tp = units(&|i| pos(i) && pred(i)).len() as f64;
    let fp = units(&|i| !pos(i) && pred(i)).len() as f64;
    let fneg = units(&|i| pos(i) && !pred(i)).len() as f64;
    let cm = by("confusion");
    assert_eq!(get(cm, "threshold 0.5", "tp"), tp);
    assert_eq!(get(cm, "threshold 0.5", "fp"), fp);
    assert_eq!(get(cm, "threshold 0.5", "fn"), fneg);
    assert!((get(cm, "threshold 0.5", "precision") - tp / (tp + fp)).abs() < 1e-12);
    assert!((get(cm, "threshold 0.5", "f1") - 2.0 * tp / (2.0 * tp + fp + fneg)).abs() < 1e-12);
    // calibration: the bin [0.4, 0.6) holds p = 0.40 … 0.59, mean 0.495
    let cal = by("calibration");
    assert!((get(cal, "[0.4, 0.6)", "mean_score") - 0.495).abs() < 1e-9);
    let in_bin = units(&|i| (0.4..0.6).contains(&outputs(i)[0]));
    let rate = in_bin.iter().filter(|&&i| pos(i)).count() as f64 / in_bin.len() as f64;
    assert!((get(cal, "[0.4, 0.6)", "positive_rate") - rate).abs() < 1e-12);
    // covariance of p and r = 1 − p²
    let ps: Vec<[f64; 2]> = (0..N).map(outputs).collect();
    let m: Vec<f64> = (0..2).map(|j| ps.iter().map(|x| x[j]).sum::<f64>() / N as f64).collect();
    let cov = ps.iter().map(|x| (x[0] - m[0]) * (x[1] - m[1])).sum::<f64>() / N as f64;
    assert!((get(by("covariance"), "p × r", "covariance") - cov).abs() < 1e-4, "{cov}");
    assert!((get(by("covariance"), "r", "mean") - m[1]).abs() < 1e-9);
    // the owner's exact check states no noise and no interval
    assert!(out.iter().all(|o| o.noise.is_empty() && o.values.iter().all(|v| v.ci95.is_none())));
}

#[test]
fn every_dp_value_states_its_noise_and_interval() {
    let p = policy(true);
    for o in dp_run(&query(every_class()), &p, 1) {
        assert!(!o.noise.is_empty(), "{}", o.name);
        assert!(o.noise.iter().all(|t| t.sensitivity >= 1 && !t.scale.is_empty()), "{}", o.name);
        let quantiles = o.class == "quantiles";
        for v in &o.values {
            assert_eq!(v.ci95.is_none(), quantiles, "{}: {v:?}", o.name);
            if let Some([lo, hi]) = v.ci95 {
                assert!(lo <= hi && lo.is_finite() && hi.is_finite(), "{}: {v:?}", o.name);
            }
        }
        if o.class == "quantiles" {
            assert_eq!(o.mechanism, "permute_and_flip");
        }
        if o.class == "covariance" {
            assert!(o.noise.iter().all(|t| t.distribution == "discrete_gaussian"));
        }
    }
}

/// Over many runs, the share of released values whose stated 95% interval holds the exact
/// value. Deterministic seeds: the figures are the same on every machine.
#[test]
fn stated_intervals_cover_the_exact_values_95_percent_of_the_time() {
    let p = policy(true);
    let classes = every_class();
    for spec in classes.iter().filter(|o| o.class() != protocol::job::QueryClass::Quantiles) {
        let q = query(vec![spec.clone()]);
        let truth = &exact(&q, &p)[0];
        let runs = match spec.class() {
            protocol::job::QueryClass::Auc => 1000,
            protocol::job::QueryClass::Covariance | protocol::job::QueryClass::Sum => 300,
            protocol::job::QueryClass::Variance => 400,
            _ => 200,
        };
        let (mut hit, mut total) = (0usize, 0usize);
        for seed in 0..runs {
            let o = &dp_run(&q, &p, seed)[0];
            for t in &truth.values {
                let Some(v) = o.values.iter().find(|v| v.key == t.key && v.stat == t.stat) else { continue };
                let Some([lo, hi]) = v.ci95 else { continue };
                total += 1;
                hit += usize::from(lo <= t.value && t.value <= hi);
            }
        }
        let coverage = hit as f64 / total as f64;
        println!("{}: coverage {coverage:.4} over {total} intervals in {runs} runs", spec.name());
        assert!(total >= runs as usize, "{}: {total} intervals", spec.name());
        assert!((0.93..=0.97).contains(&coverage), "{}: coverage {coverage:.4} over {total}", spec.name());
    }
}

/// Permute-and-flip states a rank bound, not a value interval: with probability at least
/// 95% the released candidate's rank is within the bound of the best candidate's.
#[test]
fn quantile_rank_errors_stay_within_the_stated_bound() {
    let p = policy(true);
    let spec = every_class().into_iter().find(|o| o.class() == protocol::job::QueryClass::Quantiles).unwrap();
    let q = query(vec![spec]);
    let mut xs: Vec<f64> = (0..N).map(|i| outputs(i)[0]).collect();
    xs.sort_by(f64::total_cmp);
    let rank = |c: f64| xs.partition_point(|&x| x < c - 1e-9) as f64;
    let (mut within, mut total) = (0, 0);
    for seed in 0..300 {
        let o = &dp_run(&q, &p, seed)[0];
        for (v, (qv, bound)) in o.values.iter().zip([(0.5, "q = 0.5: ±"), (0.9, "q = 0.9: ±")]) {
            let b: f64 = o.note.split(bound).nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            // the best grid point is within one grid cell (30 rows here) of q·n
            let best_gap = 30.0;
            total += 1;
            within += usize::from((rank(v.value) - qv * N as f64).abs() <= b + best_gap);
        }
    }
    assert!(within as f64 / total as f64 >= 0.95, "{within}/{total}");
}

#[test]
fn outputs_name_the_model_output_they_aggregate() {
    let p = policy(true);
    let mean = |of: Option<ValueSource>| OutputSpec::Mean {
        name: "m".into(),
        of,
        group_by: GroupBy::default(),
        lower: 0.0,
        upper: 1.0,
        noise: Noise::Laplace,
        epsilon: d("1"),
        count_share: None,
    };
    let m_p = get(&exact(&query(vec![mean(of("p"))]), &p)[0], "", "");
    let m_r = get(&exact(&query(vec![mean(of("r"))]), &p)[0], "", "");
    assert!((m_p - 0.495).abs() < 1e-9 && (m_r - 0.67165).abs() < 1e-4, "{m_p} {m_r}");
    // an output the module does not declare, and a module with two outputs and no `of`
    let e = Accumulator::new(&query(vec![mean(of("q"))]), &p, &names()).err().unwrap();
    assert!(matches!(e, ReleaseError::UnknownModelOutput { ref name, .. } if name == "q"), "{e}");
    assert!(e.to_string().contains("of: the module has no output \"q\" (it declares: p, r)"), "{e}");
    let e = Accumulator::new(&query(vec![mean(None)]), &p, &names()).err().unwrap().to_string();
    assert!(e.contains("\"m\": of: the module has 2 outputs"), "{e}");
    // one output per row when the module declares one: `of` may be left out
    Accumulator::new(&query(vec![mean(None)]), &p, &["score".to_string()]).unwrap();
    // a unit whose outputs are not m per row is absent
    let mut acc = Accumulator::new(&query(vec![mean(of("p"))]), &p, &names()).unwrap();
    assert!(!acc.add_unit(&unit(0), &[0.5]));
    assert!(!acc.add_unit(&unit(0), &[0.5, f64::NAN]));
    assert!(acc.add_unit(&unit(0), &[0.5, 0.5]));
}

#[test]
fn groups_without_public_domains_go_through_partition_selection() {
    let q = query(vec![every_class()[2].clone()]);
    let public = policy(true);
    let selected = policy(false);
    assert_eq!(query_cost(&q, &public).unwrap().delta, dp::Rational::ZERO);
    assert_eq!(query_cost(&q, &selected).unwrap().delta, "0.000001".parse().unwrap());
    let o = &dp_run(&q, &selected, 3)[0];
    assert_eq!(o.delta, Some(d("0.000001")));
    assert_eq!(o.values.len(), 6, "groups of 500 all pass the threshold");
    assert!(o.note.contains("DP partition selection"), "{}", o.note);
    // Gaussian noise needs public domains
    let mut g = every_class()[2].clone();
    if let OutputSpec::Mean { noise, .. } = &mut g {
        *noise = Noise::Gaussian;
    }
    let e = Accumulator::new(&query(vec![g.clone()]), &selected, &names()).err().unwrap().to_string();
    assert!(e.contains("noise: Gaussian noise needs public key domains"), "{e}");
    Accumulator::new(&query(vec![g]), &public, &names()).unwrap();
}

#[test]
fn gaussian_outputs_compose_in_zcdp_and_pure_ones_basically() {
    let p = policy(true);
    let lap = every_class()[4].clone(); // histogram, ε = 0.1
    let cov = every_class()[9].clone(); // covariance, ε = 0.5 → ρ = 0.125
    let pure = query_cost(&query(vec![lap.clone()]), &p).unwrap();
    assert_eq!((pure.epsilon.to_string().as_str(), pure.rho.is_none()), ("0.1", true));
    let mixed = query_cost(&query(vec![lap, cov]), &p).unwrap();
    let rho = mixed.rho.unwrap().to_f64();
    let delta: dp::Delta = "0.000001".parse().unwrap();
    // the cheaper of: 0.1 + ε(ρ = 0.125) and ε(ρ = 0.125 + 0.005)
    let a = 0.1 + dp::accountant::rho_to_epsilon(&"0.125".parse().unwrap(), &delta).unwrap().to_f64();
    let b = dp::accountant::rho_to_epsilon(&"0.13".parse().unwrap(), &delta).unwrap().to_f64();
    assert!((mixed.epsilon.to_f64() - a.min(b)).abs() < 1e-9, "{} vs {a} / {b}", mixed.epsilon);
    assert!(rho == 0.125 || rho == 0.13, "{rho}");
    assert_eq!(mixed.delta, *delta.as_rational());
}

#[test]
fn bad_parameters_name_the_output_and_field() {
    let p = policy(true);
    let cases: Vec<(OutputSpec, &str)> = vec![
        (
            OutputSpec::Quantiles {
                name: "q".into(),
                of: of("p"),
                lower: 0.0,
                upper: 1.0,
                quantiles: vec![0.5],
                grid: 1_000_000,
                epsilon: d("1"),
            },
            "q.grid",
        ),
        (
            OutputSpec::Count {
                name: "c".into(),
                group_by: keys(&["g1", "g2", "g1"]),
                noise: Noise::Laplace,
                epsilon: d("1"),
            },
            "c.group_by",
        ),
        (
            OutputSpec::Mean {
                name: "m".into(),
                of: of("p"),
                group_by: GroupBy::default(),
                lower: 0.0,
                upper: 1.0,
                noise: Noise::Laplace,
                epsilon: d("1"),
                count_share: Some(d("1")),
            },
            "count_share",
        ),
        (
            OutputSpec::Covariance {
                name: "v".into(),
                of: vec![ValueSource::Output("p".into()), ValueSource::Output("p".into())],
                lower: 0.0,
                upper: 1.0,
                epsilon: d("1"),
            },
            "v.of",
        ),
    ];
    for (o, want) in cases {
        let e = Accumulator::new(&query(vec![o]), &p, &names()).err().unwrap().to_string();
        assert!(e.contains(want), "{e} !~ {want}");
    }
    // more groups than a public output may release
    let mut big = policy(true);
    big.columns[1].domain = Some((0..100).map(|i| i.to_string()).collect());
    big.columns[2].domain = Some((0..100).map(|i| i.to_string()).collect());
    let e = Accumulator::new(&query(vec![every_class()[0].clone()]), &big, &names()).err().unwrap().to_string();
    assert!(e.contains("group_by: the product of the key domains exceeds 4096"), "{e}");
}

/// A Gaussian output's terms split its ρ = ε²/2, so they spend exactly what it is charged;
/// a Laplace output's terms split its ε.
#[test]
fn an_outputs_noise_terms_spend_exactly_its_budget() {
    let p = policy(true);
    let budget = |o: &OutputRelease, prefix: &str| -> f64 {
        o.noise.iter().map(|t| t.budget.strip_prefix(prefix).unwrap().parse::<dp::Rational>().unwrap().to_f64()).sum()
    };
    for (noise, prefix, want) in [(Noise::Laplace, "ε = ", 0.4), (Noise::Gaussian, "ρ = ", 0.4 * 0.4 / 2.0)] {
        for class in [
            protocol::job::QueryClass::Mean,
            protocol::job::QueryClass::Variance,
            protocol::job::QueryClass::Calibration,
        ] {
            let mut o = every_class().into_iter().find(|o| o.class() == class).unwrap();
            *o.epsilon_mut() = d("0.4");
            match &mut o {
                OutputSpec::Mean { noise: n, .. }
                | OutputSpec::Variance { noise: n, .. }
                | OutputSpec::Calibration { noise: n, .. } => *n = noise,
                _ => unreachable!(),
            }
            let out = &dp_run(&query(vec![o]), &p, 1)[0];
            assert!((budget(out, prefix) - want).abs() < 1e-12, "{class} {noise:?}: {:?}", out.noise);
        }
    }
    // a sum over public keys spends all of ε on the sum
    let sum = &dp_run(&query(vec![every_class()[1].clone()]), &p, 1)[0];
    assert_eq!(sum.noise.len(), 1, "{:?}", sum.noise);
    assert_eq!(sum.noise[0].budget, "ε = 0.2");
}

// ---------------------------------------------------------------------------------
// Exact partial aggregates (crate::partial): the shards' sums.

/// Units 0..N dealt into `parts` contiguous slices, each absorbed by an accumulator of its
/// own, carried through CBOR (as a shard sends them) and merged into a fresh one.
fn sharded(q: &QuerySpec, p: &Policy, parts: usize) -> Accumulator {
    let mut merged = Accumulator::new(q, p, &names()).unwrap();
    let per = N.div_ceil(parts);
    for slice in (0..N).collect::<Vec<_>>().chunks(per) {
        let mut a = Accumulator::new(q, p, &names()).unwrap();
        for &i in slice {
            assert!(a.add_unit(&unit(i), &outputs(i)));
        }
        let wire = protocol::to_cbor(&a.exact_aggregates());
        let partial: crate::ExactAggregates = protocol::from_cbor(&wire).unwrap();
        merged = merged.merge(&partial).unwrap();
    }
    merged
}

#[test]
fn merged_partials_release_exactly_what_one_accumulator_releases() {
    for public in [false, true] {
        let p = policy(public);
        let q = query(every_class());
        let one = dp_run(&q, &p, 5);
        for parts in [1, 2, 3, 7] {
            let mut rng = dp::seeded_rng_from_u64(5);
            let got = sharded(&q, &p, parts).finish_dp(&mut rng).unwrap().into_outputs();
            assert_eq!(got, one, "{parts} parts, public domains {public}");
            assert_eq!(sharded(&q, &p, parts).finish_exact().unwrap().outputs, exact(&q, &p));
        }
    }
}

/// The exact aggregates of the first `n` units, with `edit` applied to them.
fn tampered(q: &QuerySpec, p: &Policy, n: usize, edit: impl FnOnce(&mut crate::ExactAggregates)) -> crate::MergeError {
    let mut a = Accumulator::new(q, p, &names()).unwrap();
    for i in 0..n {
        a.add_unit(&unit(i), &outputs(i));
    }
    let mut e = a.exact_aggregates();
    edit(&mut e);
    Accumulator::new(q, p, &names()).unwrap().merge(&e).err().expect("the tampered partial is refused")
}

#[test]
fn a_partial_whose_unit_count_does_not_match_its_rows_is_refused() {
    use crate::partial::MergeError;
    for public in [false, true] {
        let p = policy(public);
        let q = query(every_class());
        // Fewer units than rows: every class notices (the first output is named).
        let e = tampered(&q, &p, 100, |e| e.units_absorbed = 10);
        assert!(matches!(e, MergeError::TooManyRows { ref output, k: 1 } if output == "count"), "{e}");
    }
}

#[test]
fn a_partial_of_another_shape_or_with_impossible_values_is_refused() {
    use crate::partial::{GroupCell, MergeError, OutputAggregate};
    let p = policy(false);
    let q = query(every_class());
    let e = tampered(&q, &p, 10, |e| {
        e.outputs.pop();
    });
    assert!(matches!(e, MergeError::OutputCount { .. }), "{e}");
    let e = tampered(&q, &p, 10, |e| e.outputs.swap(0, 5));
    assert!(matches!(e, MergeError::Class { .. }), "{e}");
    // Groups: one twice, one with no rows, a sum beyond what its rows allow.
    let groups = |e: &mut crate::ExactAggregates| match &mut e.outputs[0] {
        OutputAggregate::Groups { cells } => cells.clone(),
        _ => panic!("the first output is a count"),
    };
    let set = |e: &mut crate::ExactAggregates, cells: Vec<GroupCell>| e.outputs[0] = OutputAggregate::Groups { cells };
    let e = tampered(&q, &p, 10, |e| {
        let mut c = groups(e);
        c.push(c[0].clone());
        set(e, c);
    });
    assert!(matches!(e, MergeError::DuplicateGroup { .. }), "{e}");
    let e = tampered(&q, &p, 10, |e| {
        let mut c = groups(e);
        c.push(GroupCell { key: "zz".into(), rows: 0, sum: 0, sq: 0 });
        set(e, c);
    });
    assert!(matches!(e, MergeError::EmptyGroup { .. }), "{e}");
    let e = tampered(&q, &p, 10, |e| {
        let mut c = groups(e);
        c[0].sum = i128::MAX;
        set(e, c);
    });
    assert!(matches!(e, MergeError::OutOfBounds { .. }), "{e}");
    // A group outside a public domain.
    let pp = policy(true);
    let e = tampered(&q, &pp, 10, |e| {
        let mut c = groups(e);
        c.push(GroupCell { key: "zz".into(), rows: 1, sum: 0, sq: 0 });
        c.sort_by(|a, b| a.key.cmp(&b.key));
        set(e, c);
    });
    assert!(matches!(e, MergeError::UnknownGroup { .. }), "{e}");
}

#[test]
fn exact_aggregates_never_print_a_number() {
    let p = policy(false);
    let q = query(every_class());
    let shown = format!("{:?}", fed(&q, &p).exact_aggregates());
    assert!(!shown.chars().any(|c| c.is_ascii_digit()), "{shown}");
}
