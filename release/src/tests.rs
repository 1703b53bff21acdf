use super::*;
use dp::FixedPoint;
use protocol::job::OutputSpec;
use protocol::policy::{ColumnPolicy, ColumnRole, SandboxLimits, Timing};
use protocol::result::OutputRelease;
use protocol::table::{Column, Validity, TOKEN_LEN};
use protocol::Digest;

pub(crate) fn policy(k: u32) -> Policy {
    let col = ColumnPolicy::new;
    Policy {
        population: "test-population".into(),
        rows_per_chunk: 1 << 20,
        allowed_query_classes: vec![],
        min_group_size: 1,
        max_rows_per_unit: k,
        max_epsilon_per_job: Decimal::literal("10"),
        timing: Timing::nominal(1000),
        sandbox: SandboxLimits { fuel_per_unit: 1, memory_limit_bytes: 1, max_module_bytes: 1 },
        ..Policy::new(
            vec![0; 32],
            Digest::default(),
            "unit",
            vec![
                col("unit", "token", vec![]),
                col("s", "f64", vec![ColumnRole::Input]),
                col("g", "dict", vec![ColumnRole::Input, ColumnRole::GroupBy]),
                col("y", "i64", vec![ColumnRole::Input, ColumnRole::Label]),
            ],
        )
    }
}

#[test]
fn the_test_policy_is_valid() {
    policy(1).validate().unwrap();
}

/// A group mean by `g`, a histogram and an AUC against `y`, all of the "model" score. The
/// model reads column `s` and returns it: a row's score is a function of the row alone.
/// The test model's single output.
fn score() -> Vec<String> {
    vec!["score".into()]
}

fn policy_min(k: u32, min_group_size: u64) -> Policy {
    Policy { min_group_size, ..policy(k) }
}

fn spec(eps: &str) -> QuerySpec {
    QuerySpec {
        job_id: "j".into(),
        collaborator: "c".into(),
        dataset_digest: Digest::default(),
        module_hash: Digest::default(),
        inputs: vec!["s".into()],
        outputs: vec![
            OutputSpec::mean("m", "g", 0.0, 1.0, eps),
            OutputSpec::histogram("h", vec![0.0, 0.5, 1.0], eps),
            OutputSpec::auc("a", "y", 4, eps),
        ],
        delta: None,
        deadline_ms: 1000,
        training: None,
    }
}

/// Token of unit `u`; big-endian, so tokens sort as the numbers do.
fn token(u: u16) -> [u8; TOKEN_LEN] {
    let mut t = [0u8; TOKEN_LEN];
    t[..2].copy_from_slice(&u.to_be_bytes());
    t
}

const GROUPS: [&str; 3] = ["a", "b", "c"];

/// Rows of (unit, group code into `GROUPS`, label, score).
fn batch_with(dict: &[&str], rows: &[(u16, u32, i64, f64)]) -> RecordBatch {
    RecordBatch::new(vec![
        Column { name: "unit".into(), data: ColumnData::Token(rows.iter().map(|r| token(r.0)).collect()) },
        Column {
            name: "g".into(),
            data: ColumnData::Dict {
                codes: rows.iter().map(|r| r.1).collect(),
                values: dict.iter().map(|s| s.to_string()).collect(),
            },
        },
        Column { name: "y".into(), data: ColumnData::I64(rows.iter().map(|r| r.2).collect()) },
        Column { name: "s".into(), data: ColumnData::F64(rows.iter().map(|r| r.3).collect()) },
    ])
    .unwrap()
}

fn batch(rows: &[(u16, u32, i64, f64)]) -> RecordBatch {
    batch_with(&GROUPS, rows)
}

/// The model: each row's score is its `s`.
fn model(unit: &RecordBatch) -> Vec<f64> {
    match unit.column("s") {
        Some(ColumnData::F64(s)) => s.clone(),
        _ => panic!("unit batch without its input column"),
    }
}

fn assembler(p: &Policy, seed: [u8; 32]) -> UnitAssembler {
    UnitAssembler::new(&p.privacy_unit, UnitAssembler::needed_columns(&spec("1")), p.max_rows_per_unit, seed)
}

/// The enclave's path on plaintext: assemble units, score each, absorb it.
fn accumulate(q: &QuerySpec, p: &Policy, batches: &[RecordBatch], seed: [u8; 32]) -> Accumulator {
    let mut acc = Accumulator::new(q, p, &score()).unwrap();
    let mut units = assembler(p, seed);
    let mut absorb = |u: RecordBatch| {
        acc.add_unit(&u, &model(&u));
    };
    for b in batches {
        units.push(b, &mut absorb).unwrap();
    }
    if let Some(last) = units.finish() {
        absorb(last);
    }
    acc
}

/// Every unit batch the assembler emits, in order.
fn units_of(p: &Policy, batches: &[RecordBatch], seed: [u8; 32]) -> Vec<RecordBatch> {
    let mut units = assembler(p, seed);
    let mut out = Vec::new();
    for b in batches {
        units.push(b, |u| out.push(u)).unwrap();
    }
    out.extend(units.finish());
    out
}

fn values(o: &OutputRelease) -> Vec<f64> {
    o.values.iter().map(|v| v.value).collect()
}

fn keys(o: &OutputRelease) -> Vec<&str> {
    o.values.iter().map(|v| v.key.as_str()).collect()
}

/// Seven units of one row each: group a = {0.1, 0.2, 0.9}, b = {0.3, 0.8, 0.95}, c = {0.5}.
fn seven_units() -> RecordBatch {
    batch(&[
        (1, 0, 0, 0.1),
        (2, 0, 0, 0.2),
        (3, 0, 1, 0.9),
        (4, 1, 0, 0.3),
        (5, 1, 1, 0.8),
        (6, 1, 1, 0.95),
        (7, 2, 1, 0.5),
    ])
}

#[test]
fn exact_values_and_group_suppression() {
    let acc = accumulate(&spec("1"), &policy_min(1, 3), &[seven_units()], [0; 32]);
    let report = acc.finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (7, 0));
    let out = &report.outputs;
    // Group means; "c" has one member and is withheld (and nothing says so).
    assert_eq!(keys(&out[0]), vec!["a", "b"]);
    assert!((out[0].values[0].value - 0.4).abs() < 1e-9);
    assert!((out[0].values[1].value - (0.3 + 0.8 + 0.95) / 3.0).abs() < 1e-9);
    assert_eq!(out[0].mechanism, "none (owner's exact check, not DP)");
    // Histogram [0,0.5): 3, [0.5,1]: 4.
    assert_eq!(values(&out[1]), vec![3.0, 4.0]);
    // AUC: positives 0.9, 0.8, 0.95, 0.5 vs negatives 0.1, 0.2, 0.3 → perfectly separated.
    assert_eq!(out[2].values[0].value, 1.0);
    // With a minimum of one, "c" is released too.
    let acc = accumulate(&spec("1"), &policy(1), &[seven_units()], [0; 32]);
    let out = acc.finish_exact().unwrap().outputs;
    assert_eq!(keys(&out[0]), vec!["a", "b", "c"]);
    assert!((out[0].values[2].value - 0.5).abs() < 1e-9);
}

#[test]
fn rows_per_unit_are_bounded_before_aggregation() {
    // Unit 9 has five rows; only one of them may count.
    let b = batch(&[
        (1, 0, 0, 0.9),
        (2, 0, 0, 0.9),
        (9, 0, 0, 0.9),
        (9, 0, 0, 0.9),
        (9, 0, 0, 0.9),
        (9, 0, 0, 0.9),
        (9, 0, 0, 0.9),
    ]);
    let units = units_of(&policy(1), std::slice::from_ref(&b), [0; 32]);
    assert_eq!(units.iter().map(|u| u.rows).collect::<Vec<_>>(), vec![1, 1, 1]);
    let report = accumulate(&spec("1"), &policy(1), std::slice::from_ref(&b), [0; 32]).finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (3, 0));
    assert_eq!(values(&report.outputs[1]).iter().sum::<f64>(), 3.0);
    // With k = 3, three of unit 9's rows count.
    let report = accumulate(&spec("1"), &policy(3), &[b], [0; 32]).finish_exact().unwrap();
    assert_eq!(report.units, 3);
    assert_eq!(values(&report.outputs[1]).iter().sum::<f64>(), 5.0);
}

#[test]
fn a_unit_over_the_row_bound_is_absent() {
    // The accumulator does not trust its caller to have bounded the unit.
    let mut acc = Accumulator::new(&spec("1"), &policy(2), &score()).unwrap();
    let three = batch(&[(1, 0, 0, 0.1), (1, 0, 0, 0.2), (1, 0, 0, 0.3)]);
    assert!(!acc.add_unit(&three, &model(&three)));
    let report = acc.finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (0, 1));
    assert!(report.outputs[0].values.is_empty());
    assert_eq!(values(&report.outputs[1]), vec![0.0, 0.0]);
}

#[test]
fn dp_release_is_close_at_large_epsilon_and_names_its_mechanism() {
    let rows: Vec<(u16, u32, i64, f64)> =
        (0..200u16).map(|i| (i, u32::from(i % 2), i64::from(i % 3 == 0), if i % 3 == 0 { 0.9 } else { 0.2 })).collect();
    let acc = accumulate(&spec("1000"), &policy_min(1, 3), &[batch(&rows)], [0; 32]);
    let mut rng = dp::seeded_rng([7; 32]);
    let release = acc.finish_dp(&mut rng).unwrap();
    let out = release.outputs();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.mechanism == "discrete_laplace"));
    // Only the group-by output spends δ (its partition selection).
    assert_eq!(out[0].delta, Some(Decimal::literal("0.000001")));
    assert_eq!((out[1].delta.as_ref(), out[2].delta.as_ref()), (None, None));
    assert_eq!(keys(&out[0]), vec!["a", "b"]);
    // Group a: units 0, 2, …, 198; a third of them (the multiples of 6) score 0.9.
    let mean_a = (34.0 * 0.9 + 66.0 * 0.2) / 100.0;
    assert!((out[0].values[0].value - mean_a).abs() < 0.01, "{:?}", out[0].values);
    let total: f64 = values(&out[1]).iter().sum();
    assert!((total - 200.0).abs() <= 10.0, "{total}");
    assert!((out[2].values[0].value - 1.0).abs() < 0.05);
    assert_eq!(release.clone().into_outputs(), out.to_vec());
}

#[test]
fn valid_query_releases_every_output() {
    let acc = accumulate(&spec("0.5"), &policy_min(1, 3), &[seven_units()], [0; 32]);
    let mut rng = dp::seeded_rng([1; 32]);
    let out = acc.finish_dp(&mut rng).unwrap().into_outputs();
    assert_eq!(out.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["m", "h", "a"]);
    assert_eq!(out[1].values.len(), 2);
    assert_eq!(out[2].values.len(), 1);
}

/// A bad unit (a non-finite score, a wrong number of scores, a label outside {0, 1}, a
/// missing or mistyped column) is not an error: it is absent, exactly as if it were not in
/// the table.
#[test]
fn bad_units_are_absent() {
    let good = seven_units();
    let reference = accumulate(&spec("1"), &policy(2), std::slice::from_ref(&good), [0; 32]).finish_exact().unwrap();
    assert_eq!((reference.units, reference.units_absent), (7, 0));

    let unit = batch(&[(8, 0, 1, 0.7), (8, 1, 0, 0.1)]);
    let no_group = RecordBatch::new(vec![
        Column { name: "y".into(), data: ColumnData::I64(vec![0]) },
        Column { name: "s".into(), data: ColumnData::F64(vec![0.5]) },
    ])
    .unwrap();
    let label_as_f64 = RecordBatch::new(vec![
        Column { name: "g".into(), data: ColumnData::Dict { codes: vec![0], values: vec!["a".into()] } },
        Column { name: "y".into(), data: ColumnData::F64(vec![1.0]) },
        Column { name: "s".into(), data: ColumnData::F64(vec![0.5]) },
    ])
    .unwrap();
    let bad: Vec<(&str, RecordBatch, Vec<f64>)> = vec![
        ("NaN score", unit.clone(), vec![0.7, f64::NAN]),
        ("infinite score", unit.clone(), vec![f64::INFINITY, 0.1]),
        ("negative infinite score", unit.clone(), vec![0.7, f64::NEG_INFINITY]),
        ("too few scores", unit.clone(), vec![0.7]),
        ("too many scores", unit.clone(), vec![0.7, 0.1, 0.5]),
        ("no scores", unit.clone(), vec![]),
        ("label 2", batch(&[(8, 0, 1, 0.7), (8, 1, 2, 0.1)]), vec![0.7, 0.1]),
        ("label -1", batch(&[(8, 0, -1, 0.7)]), vec![0.7]),
        ("no group column", no_group, vec![0.5]),
        ("label column not i64", label_as_f64, vec![0.5]),
    ];
    for (why, unit, scores) in bad {
        // The bad unit in the middle of the good ones changes nothing but the owner's count.
        let mut acc = Accumulator::new(&spec("1"), &policy(2), &score()).unwrap();
        let mut units = assembler(&policy(2), [0; 32]);
        let mut n = 0;
        let mut absorb = |u: RecordBatch| {
            assert!(acc.add_unit(&u, &model(&u)));
            n += 1;
        };
        units.push(&good, &mut absorb).unwrap();
        assert_eq!(n, 6);
        assert!(!acc.add_unit(&unit, &scores), "{why}");
        let last = units.finish().unwrap();
        assert!(acc.add_unit(&last, &model(&last)));
        let report = acc.finish_exact().unwrap();
        assert_eq!(report.outputs, reference.outputs, "{why}");
        assert_eq!((report.units, report.units_absent), (7, 1), "{why}");
    }
    // An empty unit adds nothing to any output.
    let empty = batch(&[]);
    let mut acc = accumulate(&spec("1"), &policy(2), &[good], [0; 32]);
    acc.add_unit(&empty, &[]);
    assert_eq!(acc.finish_exact().unwrap().outputs, reference.outputs);
}

#[test]
fn a_bad_row_makes_its_whole_unit_absent() {
    // Unit 8's first row is fine, its second is not: none of it may count, in any output.
    let mut acc = Accumulator::new(&spec("1"), &policy(2), &score()).unwrap();
    let unit = batch(&[(8, 0, 1, 0.7), (8, 0, 5, 0.1)]);
    assert!(!acc.add_unit(&unit, &model(&unit)));
    let report = acc.finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (0, 1));
    assert!(report.outputs[0].values.is_empty());
    assert_eq!(values(&report.outputs[1]), vec![0.0, 0.0]);
    assert_eq!(values(&report.outputs[2]), vec![0.5]);
}

#[test]
fn query_epsilon_and_delta_compose_outputs() {
    assert_eq!(query_epsilon(&spec("0.25"), &policy(1)).unwrap().to_string(), "0.75");
    // One group-by output: one partition-selection δ.
    assert_eq!(query_delta(&spec("1"), &policy(1)).unwrap(), "0.000001".parse().unwrap());
    let mut two = spec("1");
    two.outputs.push(OutputSpec::mean("m2", "g", 0.0, 1.0, "1"));
    assert_eq!(query_delta(&two, &policy(1)).unwrap(), "0.000002".parse().unwrap());
    let pure = QuerySpec { outputs: spec("1").outputs[1..].to_vec(), ..spec("1") };
    assert_eq!(query_delta(&pure, &policy(1)).unwrap(), dp::Rational::from_integer(0));
    assert!(query_epsilon(&QuerySpec { outputs: vec![], ..spec("1") }, &policy(1)).is_err());
}

/// Every parameter error is caught by `Accumulator::new` (so before any batch is read, any
/// noise is drawn or, in the enclave, any grant is spent), as a typed error with a clear
/// message.
#[test]
fn bad_parameters_fail_before_any_data_or_noise() {
    // ε is parsed when the query is read: these never reach the aggregators.
    for bad in ["-1", "NaN", "inf", "", "1e-40"] {
        assert!(protocol::policy::Decimal::new(bad).is_err(), "{bad:?}");
    }
    let p = policy(1);
    let with = |o: OutputSpec| QuerySpec { outputs: vec![o], ..spec("1") };
    let hist = |edges: Vec<f64>, eps: &str| OutputSpec::histogram("h", edges, eps);
    let mean = |lower: f64, upper: f64, eps: &str| OutputSpec::mean("m", "g", lower, upper, eps);
    let auc = |bins: u32| OutputSpec::auc("a", "y", bins, "1");
    let many_edges: Vec<f64> = (0..=protocol::job::MAX_BINS + 1).map(|i| i as f64).collect();
    let cases: Vec<(QuerySpec, &str)> = vec![
        // ε = 0 (a negative, NaN, infinite or unparseable ε does not even decode: below)
        (spec("0"), "epsilon must be > 0"),
        // noise scale beyond the sampler's range (ε tiny)
        (with(hist(vec![0.0, 1.0], "1e-16")), "exceeds the supported maximum"),
        (with(mean(0.0, 1.0, "1e-12")), "exceeds the supported maximum"),
        // bounds: lower > upper, equal, NaN, infinite, too large to encode, rounding to 0
        (with(mean(1.0, 0.0, "1")), "lower < upper"),
        (with(mean(0.5, 0.5, "1")), "lower < upper"),
        (with(mean(f64::NAN, 1.0, "1")), "lower < upper"),
        (with(mean(0.0, f64::INFINITY, "1")), "lower < upper"),
        (with(mean(-1e300, 1e300, "1")), "overflow"),
        (with(mean(-1e-9, 1e-9, "1")), "round to 0"),
        // domain: too few / too many / unordered / non-finite edges, bins out of range
        (with(hist(vec![], "1")), "edges"),
        (with(hist(vec![0.0], "1")), "edges"),
        (with(hist(many_edges, "1")), "edges"),
        (with(hist(vec![0.0, 0.5, 0.5, 1.0], "1")), "ascending"),
        (with(hist(vec![0.0, f64::NAN], "1")), "finite"),
        (with(auc(1)), "bins"),
        (with(auc(protocol::job::MAX_BINS as u32 + 1)), "bins"),
        (with(auc(u32::MAX)), "bins"),
        // no outputs, duplicate names, no deadline
        (QuerySpec { outputs: vec![], ..spec("1") }, "outputs"),
        (
            QuerySpec { outputs: vec![hist(vec![0.0, 1.0], "1"), hist(vec![0.0, 2.0], "1")], ..spec("1") },
            "another output has this name",
        ),
        (QuerySpec { deadline_ms: 0, ..spec("1") }, "deadline_ms"),
    ];
    for (q, want) in cases {
        let e = match Accumulator::new(&q, &p, &score()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {:?}", q.outputs),
        };
        assert!(e.contains(want), "{:?}: {e:?} !~ {want:?}", q.outputs);
        assert!(!e.contains('\n'));
        // The owner's review runs the same check.
        assert!(check_query(&q, &p, None).is_err());
    }
    // A policy with no row bound, or a partition δ of 0, is refused the same way.
    assert!(Accumulator::new(&spec("1"), &policy(0), &score()).is_err());
    let mut p0 = policy(1);
    p0.partition_delta = Decimal::literal("0");
    let e = Accumulator::new(&spec("1"), &p0, &score()).err().unwrap().to_string();
    assert!(e.contains("delta"), "{e}");
    // The valid spec passes.
    Accumulator::new(&spec("1"), &p, &score()).unwrap();
    check_query(&spec("1"), &p, None).unwrap();
}

#[test]
fn the_assembler_refuses_an_unsorted_stream() {
    let p = policy(1);
    // Out of order across batches…
    let mut units = assembler(&p, [0; 32]);
    units.push(&batch(&[(1, 0, 0, 0.1), (5, 0, 1, 0.2)]), |_| {}).unwrap();
    let r = units.push(&batch(&[(4, 0, 0, 0.3)]), |_| {});
    assert!(matches!(r, Err(ReleaseError::NotSortedByUnit)), "{r:?}");
    // …and within one batch.
    let mut units = assembler(&p, [0; 32]);
    let r = units.push(&batch(&[(2, 0, 0, 0.1), (3, 0, 0, 0.1), (1, 0, 0, 0.1)]), |_| {});
    assert!(matches!(r, Err(ReleaseError::NotSortedByUnit)), "{r:?}");
    // A unit that comes back after another one is out of order too.
    let mut units = assembler(&p, [0; 32]);
    let r = units.push(&batch(&[(1, 0, 0, 0.1), (2, 0, 0, 0.1), (1, 0, 0, 0.1)]), |_| {});
    assert!(matches!(r, Err(ReleaseError::NotSortedByUnit)), "{r:?}");
}

/// The columns a unit batch carries are checked on every batch: the privacy unit must be
/// a token column, every column the query needs must be there, with the same types each
/// batch.
#[test]
fn the_assembler_checks_its_columns() {
    let good = seven_units();
    let mut p = policy(1);
    p.privacy_unit = "g".into();
    let r = assembler(&p, [0; 32]).push(&good, |_| {});
    assert!(matches!(r, Err(ReleaseError::ColumnType { expected: "token", found: "dict", .. })), "{r:?}");
    p.privacy_unit = "customer".into();
    let r = assembler(&p, [0; 32]).push(&good, |_| {});
    assert!(matches!(&r, Err(ReleaseError::MissingColumn(c)) if c == "customer"), "{r:?}");

    let q = QuerySpec { inputs: vec!["s".into(), "salary".into()], ..spec("1") };
    let mut units = UnitAssembler::new("unit", UnitAssembler::needed_columns(&q), 1, [0; 32]);
    let r = units.push(&good, |_| {});
    assert!(matches!(&r, Err(ReleaseError::MissingColumn(c)) if c == "salary"), "{r:?}");

    let mut units = assembler(&policy(1), [0; 32]);
    units.push(&good, |_| {}).unwrap();
    let retyped = RecordBatch::new(vec![
        Column { name: "unit".into(), data: ColumnData::Token(vec![token(20)]) },
        Column { name: "g".into(), data: ColumnData::Dict { codes: vec![0], values: vec!["a".into()] } },
        Column { name: "y".into(), data: ColumnData::F64(vec![1.0]) },
        Column { name: "s".into(), data: ColumnData::F64(vec![0.5]) },
    ])
    .unwrap();
    assert!(matches!(units.push(&retyped, |_| {}), Err(ReleaseError::BadQuery(_))));
}

#[test]
fn needed_columns_are_inputs_then_group_and_label_columns_once_each() {
    assert_eq!(UnitAssembler::needed_columns(&spec("1")), vec!["s", "g", "y"]);
    let q = QuerySpec { inputs: vec!["y".into(), "s".into(), "g".into()], ..spec("1") };
    assert_eq!(UnitAssembler::needed_columns(&q), vec!["y", "s", "g"]);
    // Unit batches carry exactly those columns, in that order, and not the token.
    let units = units_of(&policy(1), &[seven_units()], [0; 32]);
    assert_eq!(units.len(), 7);
    for u in &units {
        assert_eq!(u.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["s", "g", "y"]);
    }
}

/// Rows of a unit that straddles batch boundaries are assembled into one unit batch, and
/// the result of a job does not depend on where the batches were cut.
#[test]
fn units_are_assembled_across_batch_boundaries() {
    let rows: Vec<(u16, u32, i64, f64)> = vec![
        (1, 0, 0, 0.1),
        (1, 1, 1, 0.9),
        (2, 1, 0, 0.2),
        (3, 1, 1, 0.8),
        (3, 1, 1, 0.7),
        (3, 0, 0, 0.3),
        (4, 0, 0, 0.4),
        (5, 0, 1, 0.6),
        (6, 1, 1, 0.95),
        (7, 0, 0, 0.05),
    ];
    let p = policy(3);
    let whole = units_of(&p, &[batch(&rows)], [3; 32]);
    assert_eq!(whole.iter().map(|u| u.rows).collect::<Vec<_>>(), vec![2, 1, 3, 1, 1, 1, 1]);
    // With k ≥ every unit's row count, a unit keeps its rows in stream order.
    assert_eq!(model(&whole[2]), vec![0.8, 0.7, 0.3]);
    let reference = accumulate(&spec("1"), &p, &[batch(&rows)], [3; 32]).finish_exact().unwrap();
    assert_eq!(reference.units, 7);
    // Every way of cutting the stream in two, and in three (with an empty batch between).
    for cut in 0..=rows.len() {
        let two = [batch(&rows[..cut]), batch(&rows[cut..])];
        assert_eq!(units_of(&p, &two, [3; 32]), whole, "cut at {cut}");
        let report = accumulate(&spec("1"), &p, &two, [3; 32]).finish_exact().unwrap();
        assert_eq!(report, reference, "cut at {cut}");
        for cut2 in cut..=rows.len() {
            let three = [batch(&rows[..cut]), batch(&[]), batch(&rows[cut..cut2]), batch(&rows[cut2..])];
            assert_eq!(units_of(&p, &three, [3; 32]), whole, "cuts at {cut}, {cut2}");
        }
    }
    // One batch per row: unit 3 spans three batches and is still one unit.
    let singles: Vec<RecordBatch> = rows.iter().map(|r| batch(std::slice::from_ref(r))).collect();
    assert_eq!(units_of(&p, &singles, [3; 32]), whole);
    // With k = 1, a unit that spans batches still keeps one row in all, not one per batch.
    let bounded = units_of(&policy(1), &singles, [3; 32]);
    assert_eq!(bounded.len(), 7);
    assert!(bounded.iter().all(|u| u.rows == 1));
    assert!([0.8, 0.7, 0.3].contains(&model(&bounded[2])[0]));
    // No rows, no units.
    assert!(units_of(&p, &[], [0; 32]).is_empty());
    assert!(units_of(&p, &[batch(&[]), batch(&[])], [0; 32]).is_empty());
}

/// Each batch has its own dictionary; a unit batch carries the group names, not codes that
/// mean something else in the next batch.
#[test]
fn dictionary_values_survive_batch_boundaries() {
    let first = batch_with(&["x", "y"], &[(1, 0, 0, 0.2), (2, 1, 0, 0.4)]);
    let second = batch_with(&["y", "z", "x"], &[(2, 0, 1, 0.6), (3, 2, 1, 0.8), (4, 1, 0, 0.1)]);
    let units = units_of(&policy(2), &[first.clone(), second.clone()], [0; 32]);
    let names = |u: &RecordBatch| match u.column("g") {
        Some(ColumnData::Dict { codes, values }) => {
            codes.iter().map(|&c| values[c as usize].clone()).collect::<Vec<String>>()
        }
        _ => panic!("no group column"),
    };
    assert_eq!(units.iter().map(names).collect::<Vec<_>>(), vec![vec!["x"], vec!["y", "y"], vec!["x"], vec!["z"]]);
    let out = accumulate(&spec("1"), &policy(2), &[first, second], [0; 32]).finish_exact().unwrap().outputs;
    assert_eq!(keys(&out[0]), vec!["x", "y", "z"]);
    assert!((out[0].values[0].value - 0.5).abs() < 1e-9);
    assert!((out[0].values[1].value - 0.5).abs() < 1e-9);
    assert!((out[0].values[2].value - 0.1).abs() < 1e-9);
}

/// Released groups come out sorted by key, whatever order they appear in the data or the
/// dictionary: the order says nothing about the rows.
#[test]
fn group_outputs_are_sorted_by_key() {
    let dict = ["zeta", "alpha", "mid", "beta"];
    let rows: Vec<(u16, u32, i64, f64)> = (0..400u16)
        .map(|i| (i, u32::from((i * 7 + 3) % 4), i64::from(i % 2 == 0), 0.25 + 0.5 * f64::from(i % 2)))
        .collect();
    let b = batch_with(&dict, &rows);
    let sorted = vec!["alpha", "beta", "mid", "zeta"];
    let exact = accumulate(&spec("1"), &policy(1), std::slice::from_ref(&b), [0; 32]).finish_exact().unwrap();
    assert_eq!(keys(&exact.outputs[0]), sorted);
    let mut rng = dp::seeded_rng([9; 32]);
    let dp = accumulate(&spec("1000"), &policy_min(1, 3), &[b], [0; 32]).finish_dp(&mut rng).unwrap();
    assert_eq!(keys(&dp.outputs()[0]), sorted);
    // A dictionary in another order gives the same keys in the same order.
    let reordered = ["mid", "beta", "zeta", "alpha"];
    let recode: Vec<(u16, u32, i64, f64)> = rows
        .iter()
        .map(|&(u, c, y, s)| (u, reordered.iter().position(|&n| n == dict[c as usize]).unwrap() as u32, y, s))
        .collect();
    let again = accumulate(&spec("1"), &policy(1), &[batch_with(&reordered, &recode)], [0; 32]).finish_exact().unwrap();
    assert_eq!(again.outputs, exact.outputs);
}

#[test]
fn the_reservoir_keeps_rows_uniformly() {
    // One unit with 4 rows, k = 1: each row kept with probability 1/4.
    let sc = [0.05, 0.35, 0.65, 0.95];
    let unit = batch(&[(1, 0, 0, sc[0]), (1, 0, 0, sc[1]), (1, 0, 0, sc[2]), (1, 0, 0, sc[3])]);
    let seed = |i: u32| {
        let mut s = [0u8; 32];
        s[..4].copy_from_slice(&i.to_le_bytes());
        s
    };
    let mut hits = [0u32; 4];
    for i in 0..4000u32 {
        let units = units_of(&policy(1), std::slice::from_ref(&unit), seed(i));
        assert_eq!(units.len(), 1);
        let kept = model(&units[0]);
        assert_eq!(kept.len(), 1);
        hits[sc.iter().position(|&x| x == kept[0]).unwrap()] += 1;
    }
    for h in hits {
        assert!((850..=1150).contains(&h), "{hits:?}");
    }
    // k = 2 of 4 rows: each of the six pairs with probability 1/6, across a batch boundary.
    let halves = [batch(&[(1, 0, 0, sc[0]), (1, 0, 0, sc[1])]), batch(&[(1, 0, 0, sc[2]), (1, 0, 0, sc[3])])];
    let mut pairs = std::collections::BTreeMap::<Vec<usize>, u32>::new();
    for i in 0..6000u32 {
        let units = units_of(&policy(2), &halves, seed(i));
        let mut kept: Vec<usize> = model(&units[0]).iter().map(|s| sc.iter().position(|x| x == s).unwrap()).collect();
        kept.sort();
        assert_eq!(kept.len(), 2);
        assert_ne!(kept[0], kept[1]);
        *pairs.entry(kept).or_default() += 1;
    }
    assert_eq!(pairs.len(), 6, "{pairs:?}");
    for (pair, n) in &pairs {
        assert!((850..=1150).contains(n), "{pair:?}: {pairs:?}");
    }
}

#[test]
fn centred_sums_halve_the_sensitivity_of_zero_to_one_bounds() {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION).unwrap();
    assert_eq!(centre_and_half_range(&fp, 0.0, 1.0).unwrap(), (5_000, 5_000));
    assert_eq!(sum_sensitivity(0.0, 1.0, 3).unwrap(), 15_000);
    // Asymmetric bounds: the centre is the midpoint, the bound its larger distance.
    assert_eq!(centre_and_half_range(&fp, -1.0, 0.5).unwrap(), (-2_500, 7_500));
    assert_eq!(sum_sensitivity(0.0, 1.0, 2).unwrap(), 10_000);
    // The mechanism names the centred bound it used.
    let b = batch(&[(1, 0, 0, 0.2), (2, 0, 1, 0.4), (3, 0, 0, 0.9)]);
    let acc = accumulate(&spec("1"), &policy(1), std::slice::from_ref(&b), [0; 32]);
    let mut rng = dp::seeded_rng([1; 32]);
    let out = acc.finish_dp(&mut rng).unwrap().into_outputs();
    assert!(out[0].sensitivity.contains("centred sum: 5000"), "{}", out[0].sensitivity);
    // Centring does not move the exact mean.
    let exact = accumulate(&spec("1"), &policy(1), &[b], [0; 32]).finish_exact().unwrap();
    assert!((exact.outputs[0].values[0].value - 0.5).abs() < 1e-9);
}

#[test]
fn scores_outside_the_bounds_are_clamped() {
    // Group mean bounds [0, 1] and histogram edges [0, 1]: a score of 7 counts as 1 and
    // lands in the top bin, a score of −3 counts as 0 and lands in the bottom bin.
    let b = batch(&[(1, 0, 1, 7.0), (2, 0, 0, -3.0)]);
    let out = accumulate(&spec("1"), &policy(1), &[b], [0; 32]).finish_exact().unwrap().outputs;
    assert!((out[0].values[0].value - 0.5).abs() < 1e-9);
    assert_eq!(values(&out[1]), vec![1.0, 1.0]);
    assert_eq!(out[2].values[0].value, 1.0);
}

/// Each released value's noise is stated exactly: the discrete Laplace scale is the L1
/// sensitivity over ε (k rows per unit count k in a bin), and the group mean's count and
/// sum each get half the output's ε.
#[test]
fn every_output_states_its_noise_scale_exactly() {
    for (k, eps, hist_scale) in [(1u32, "0.5", "2"), (2, "0.5", "4"), (3, "0.25", "12")] {
        let acc = accumulate(&spec(eps), &policy_min(k, 3), &[seven_units()], [0; 32]);
        let mut rng = dp::seeded_rng([1; 32]);
        let out = acc.finish_dp(&mut rng).unwrap().into_outputs();
        let (m, h, a) = (&out[0], &out[1], &out[2]);
        assert_eq!(
            (h.sensitivity.clone(), h.noise_scale.clone()),
            (format!("rows per cell: {k}"), format!("rows per cell: {hist_scale}")),
            "k={k} ε={eps}"
        );
        assert_eq!(a.noise_scale, h.noise_scale, "the AUC's bin counts have the histogram's scale");
        // Count: k / (ε/2) = 2k/ε.
        let count_scale = (2 * k) as f64 / eps.parse::<f64>().unwrap();
        assert!(m.noise_scale.starts_with(&format!("count: {count_scale}, centred sum: ")), "{}", m.noise_scale);
    }
}

/// A row of (unit, group code, label, score) where `None` is a null.
type NullableRow = (u16, Option<u32>, Option<i64>, Option<f64>);

/// Rows where `g`, `y` and `s` carry a validity, each null's slot the canonical value.
fn batch_with_nulls(rows: &[NullableRow]) -> RecordBatch {
    let valid = |f: &dyn Fn(&NullableRow) -> bool| Validity::from_bools(rows.iter().map(f).collect());
    let validity = [
        ("g".to_string(), valid(&|r| r.1.is_some())),
        ("y".to_string(), valid(&|r| r.2.is_some())),
        ("s".to_string(), valid(&|r| r.3.is_some())),
    ]
    .into();
    RecordBatch::with_validity(
        vec![
            Column { name: "unit".into(), data: ColumnData::Token(rows.iter().map(|r| token(r.0)).collect()) },
            Column {
                name: "g".into(),
                data: ColumnData::Dict {
                    codes: rows.iter().map(|r| r.1.unwrap_or(0)).collect(),
                    values: GROUPS.iter().map(|s| s.to_string()).collect(),
                },
            },
            Column { name: "y".into(), data: ColumnData::I64(rows.iter().map(|r| r.2.unwrap_or(0)).collect()) },
            Column { name: "s".into(), data: ColumnData::F64(rows.iter().map(|r| r.3.unwrap_or(0.0)).collect()) },
        ],
        validity,
    )
    .unwrap()
}

/// `seven_units` with validity (and no null).
fn seven_units_nullable() -> Vec<NullableRow> {
    [(1, 0, 0, 0.1), (2, 0, 0, 0.2), (3, 0, 1, 0.9), (4, 1, 0, 0.3), (5, 1, 1, 0.8), (6, 1, 1, 0.95), (7, 2, 1, 0.5)]
        .into_iter()
        .map(|(u, g, y, s)| (u, Some(g), Some(y), Some(s)))
        .collect()
}

#[test]
fn the_assembler_carries_validity_to_each_unit() {
    let p = policy(4);
    // Unit 2 spans the two batches; unit 3's group is null in every row (an empty dictionary).
    let b1 = batch_with_nulls(&[(1, Some(1), None, Some(0.5)), (2, None, Some(1), Some(0.25))]);
    let b2 = batch_with_nulls(&[(2, Some(2), Some(0), None), (3, None, Some(1), Some(0.75)), (3, None, None, None)]);
    let units = units_of(&p, &[b1, b2], [0; 32]);
    assert_eq!(units.len(), 3);
    let valid = |u: &RecordBatch, c: &str| u.validity(c).expect("validity").as_slice().to_vec();
    assert_eq!(
        (valid(&units[0], "g"), valid(&units[0], "y"), valid(&units[0], "s")),
        (vec![true], vec![false], vec![true])
    );
    assert_eq!(units[0].column("y"), Some(&ColumnData::I64(vec![0])));
    assert_eq!(valid(&units[1], "g"), [false, true]);
    assert_eq!(valid(&units[1], "s"), [true, false]);
    // Slots of nulls hold the canonical values; the unit's dictionary has only real groups.
    assert_eq!(units[1].column("s"), Some(&ColumnData::F64(vec![0.25, 0.0])));
    assert_eq!(units[1].column("g"), Some(&ColumnData::Dict { codes: vec![0, 0], values: vec!["c".into()] }));
    assert_eq!(units[2].column("g"), Some(&ColumnData::Dict { codes: vec![0, 0], values: vec![] }));
    assert_eq!(valid(&units[2], "y"), [true, false]);
    // Each unit batch passes the checks a decoded batch does.
    for u in &units {
        assert_eq!(&RecordBatch::with_validity(u.columns.clone(), u.validity.clone()).unwrap(), u);
    }
    // Without validity in the source, a unit carries none.
    assert!(units_of(&p, &[seven_units()], [0; 32]).iter().all(|u| u.validity.is_empty()));
}

#[test]
fn the_assembler_checks_validity() {
    let p = policy(2);
    let mut units = assembler(&p, [0; 32]);
    let mut ragged = batch_with_nulls(&[(1, Some(0), Some(0), Some(0.5))]);
    ragged.validity.insert("s".into(), Validity::from_bools(vec![true, true]));
    assert!(matches!(units.push(&ragged, |_| {}), Err(ReleaseError::BadQuery(_))));
    let mut unit_null = batch_with_nulls(&[(1, Some(0), Some(0), Some(0.5))]);
    unit_null.validity.insert("unit".into(), Validity::from_bools(vec![false]));
    assert!(matches!(units.push(&unit_null, |_| {}), Err(ReleaseError::BadQuery(_))));
    // Nullability is fixed by the manifest: it cannot change from one batch to the next.
    let mut units = assembler(&p, [0; 32]);
    units.push(&batch_with_nulls(&[(1, Some(0), Some(0), Some(0.5))]), |_| {}).unwrap();
    assert!(matches!(units.push(&batch(&[(2, 0, 0, 0.5)]), |_| {}), Err(ReleaseError::BadQuery(_))));
}

#[test]
fn a_null_group_counts_in_no_group() {
    let p = policy(2);
    let reference =
        accumulate(&spec("1"), &p, &[batch_with_nulls(&seven_units_nullable())], [0; 32]).finish_exact().unwrap();
    // Unit 8: one row in no group (null), one in group "a". Unit 9: no group at all.
    let mut rows = seven_units_nullable();
    rows.extend([(8, None, Some(1), Some(0.9)), (8, Some(0), Some(1), Some(0.6)), (9, None, Some(0), Some(0.95))]);
    let report = accumulate(&spec("1"), &p, &[batch_with_nulls(&rows)], [0; 32]).finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (9, 0), "a null group makes nobody absent");
    let out = &report.outputs;
    // The groups are the same three: no "null" (or empty) group appears, and only the row of
    // unit 8 with a group moved group a's mean: (0.1 + 0.2 + 0.9 + 0.6) / 4.
    assert_eq!(keys(&out[0]), keys(&reference.outputs[0]));
    assert!((out[0].values[0].value - 0.45).abs() < 1e-9);
    assert_eq!(out[0].values[1..], reference.outputs[0].values[1..]);
    // The rows still count where no group is involved: the histogram and the AUC (unit 9,
    // a negative scored 0.95, ends the perfect separation).
    assert_eq!(values(&out[1]), vec![3.0, 7.0]);
    assert_eq!(reference.outputs[2].values[0].value, 1.0);
    assert!(out[2].values[0].value < 1.0);
}

#[test]
fn a_null_label_makes_its_unit_absent_from_the_auc_only() {
    let p = policy(2);
    let mut rows = seven_units_nullable();
    // Unit 8: a positive with the lowest score (it would spoil the perfect AUC of 1.0) and a
    // row whose label is null.
    rows.extend([(8, Some(2), Some(1), Some(0.05)), (8, Some(2), None, Some(0.7))]);
    let report = accumulate(&spec("1"), &p, &[batch_with_nulls(&rows)], [0; 32]).finish_exact().unwrap();
    assert_eq!((report.units, report.units_absent), (8, 0));
    let out = &report.outputs;
    assert_eq!(out[2].values[0].value, 1.0, "unit 8 is absent from the AUC");
    // Its scores count in the histogram and in group c's mean: (0.5 + 0.05 + 0.7) / 3.
    assert_eq!(values(&out[1]), vec![4.0, 5.0]);
    assert!((out[0].values[2].value - 1.25 / 3.0).abs() < 1e-9);
    // With the label present, the same unit does spoil the AUC.
    rows.pop();
    rows.push((8, Some(2), Some(0), Some(0.7)));
    let report = accumulate(&spec("1"), &p, &[batch_with_nulls(&rows)], [0; 32]).finish_exact().unwrap();
    assert!(report.outputs[2].values[0].value < 1.0);
}
