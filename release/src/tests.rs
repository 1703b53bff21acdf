use super::*;
use protocol::job::OutputSpec;
use protocol::policy::SandboxLimits;
use protocol::table::Column;
use protocol::Digest;

fn policy(k: u32) -> Policy {
    Policy {
        policy_id: "t".into(),
        owner_public_key: protocol::Bytes(vec![0; 32]),
        dataset_digest: Digest::default(),
        privacy_unit: "unit".into(),
        allowed_modules: vec![],
        allowed_query_classes: vec![],
        collaborators: vec![],
        min_group_size: 3,
        max_rows_per_unit: k,
        rows_sorted_by_unit: false,
        max_epsilon_per_job: Decimal("10".into()),
        partition_delta: Decimal("0.000001".into()),
        release_quantum_ms: 0,
        sandbox: SandboxLimits { time_limit_ms: 1, memory_limit_bytes: 1, max_module_bytes: 1 },
    }
}

fn spec(eps: &str) -> QuerySpec {
    QuerySpec {
        job_id: "j".into(),
        collaborator: "c".into(),
        dataset_digest: Digest::default(),
        module_hash: Digest::default(),
        inputs: vec![],
        outputs: vec![
            OutputSpec::GroupMean {
                name: "m".into(),
                group_by: "g".into(),
                lower: 0.0,
                upper: 1.0,
                epsilon: Decimal(eps.into()),
            },
            OutputSpec::Histogram { name: "h".into(), edges: vec![0.0, 0.5, 1.0], epsilon: Decimal(eps.into()) },
            OutputSpec::Auc { name: "a".into(), label: "y".into(), bins: 4, epsilon: Decimal(eps.into()) },
        ],
    }
}

/// `n` units; unit i has score s(i), group "a" for even i else "b" (group "c" only unit 0),
/// label 1 when the score is high.
fn batch(units: &[u8], groups: &[u32], scores_labels: &[i64]) -> RecordBatch {
    RecordBatch::new(vec![
        Column { name: "unit".into(), data: ColumnData::Token(units.iter().map(|&u| [u; 32]).collect()) },
        Column {
            name: "g".into(),
            data: ColumnData::Dict { codes: groups.to_vec(), values: vec!["a".into(), "b".into(), "c".into()] },
        },
        Column { name: "y".into(), data: ColumnData::I64(scores_labels.to_vec()) },
    ])
    .unwrap()
}

fn exact(acc: Accumulator) -> Vec<OutputRelease> {
    acc.finish::<dp::DpRng>(Mode::Exact { min_group_size: 3 }).unwrap().0
}

#[test]
fn exact_values_and_group_suppression() {
    let mut acc = Accumulator::new(&spec("1"), &policy(1), [0; 32]).unwrap();
    let b = batch(&[1, 2, 3, 4, 5, 6, 7], &[0, 0, 0, 1, 1, 1, 2], &[0, 0, 1, 0, 1, 1, 1]);
    acc.add_batch(&b, &[0.1, 0.2, 0.9, 0.3, 0.8, 0.95, 0.5]).unwrap();
    let out = exact(acc);
    // Group means; "c" has one member and is withheld.
    assert_eq!(out[0].values.len(), 2);
    assert!((out[0].values[0].value - 0.4).abs() < 1e-9);
    assert!((out[0].values[1].value - (0.3 + 0.8 + 0.95) / 3.0).abs() < 1e-9);
    assert_eq!(out[0].suppressed_groups, 1);
    // Histogram [0,0.5): 3, [0.5,1]: 4.
    assert_eq!(out[1].values.iter().map(|v| v.value).collect::<Vec<_>>(), vec![3.0, 4.0]);
    // AUC: positives 0.9, 0.8, 0.95, 0.5 vs negatives 0.1, 0.2, 0.3 → perfectly separated.
    assert_eq!(out[2].values[0].value, 1.0);
}

#[test]
fn rows_per_unit_are_bounded_before_aggregation() {
    let mut acc = Accumulator::new(&spec("1"), &policy(1), [0; 32]).unwrap();
    // Unit 9 appears five times; only one of its rows may count.
    let b = batch(&[9, 9, 9, 9, 9, 1, 2], &[0; 7], &[0; 7]);
    acc.add_batch(&b, &[0.9; 7]).unwrap();
    let (out, stats) = acc.finish::<dp::DpRng>(Mode::Exact { min_group_size: 1 }).unwrap();
    assert_eq!(stats.units, 3);
    assert_eq!(stats.rows_dropped_by_bounding, 4);
    assert_eq!(out[1].values.iter().map(|v| v.value).sum::<f64>(), 3.0);
}

#[test]
fn dp_release_is_close_at_large_epsilon_and_names_its_mechanism() {
    let mut acc = Accumulator::new(&spec("1000"), &policy(1), [0; 32]).unwrap();
    let units: Vec<u8> = (0..200).collect();
    let groups: Vec<u32> = (0..200).map(|i| (i % 2) as u32).collect();
    let labels: Vec<i64> = (0..200).map(|i| (i % 3 == 0) as i64).collect();
    let scores: Vec<f64> = (0..200).map(|i| if i % 3 == 0 { 0.9 } else { 0.2 }).collect();
    acc.add_batch(&batch(&units, &groups, &labels), &scores).unwrap();
    let mut rng = dp::seeded_rng([7; 32]);
    let mode = Mode::Dp { rng: &mut rng, min_group_size: 3, partition_delta: "0.000001".parse().unwrap() };
    let (out, _) = acc.finish(mode).unwrap();
    assert_eq!(out[0].mechanism, "discrete_laplace");
    assert_eq!(out[0].values.len(), 2);
    let total: f64 = out[1].values.iter().map(|v| v.value).sum();
    assert!((total - 200.0).abs() <= 10.0, "{total}");
    assert!((out[2].values[0].value - 1.0).abs() < 0.05);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut acc = Accumulator::new(&spec("1"), &policy(1), [0; 32]).unwrap();
    let b = batch(&[1, 2], &[0, 0], &[0, 2]);
    assert!(matches!(acc.add_batch(&b, &[0.1, 0.2]), Err(ReleaseError::BadLabel { row: 1, value: 2, .. })));
    let b = batch(&[1, 2], &[0, 0], &[0, 1]);
    assert!(matches!(acc.add_batch(&b, &[0.1]), Err(ReleaseError::ScoreCount { rows: 2, got: 1 })));
    assert!(matches!(acc.add_batch(&b, &[0.1, f64::NAN]), Err(ReleaseError::NonFiniteScore { row: 1 })));
    let no_unit = RecordBatch::new(vec![Column { name: "g".into(), data: ColumnData::I64(vec![1]) }]).unwrap();
    assert!(matches!(acc.add_batch(&no_unit, &[0.1]), Err(ReleaseError::MissingColumn(_))));
}

#[test]
fn query_epsilon_composes_outputs() {
    assert_eq!(query_epsilon(&spec("0.25")).unwrap().to_string(), "0.75");
}

/// Issue 8, bad input: every parameter error is caught by `Accumulator::new` (so before any
/// batch is read, any noise is drawn or, in the enclave, any grant is spent), as a typed
/// error with a clear message.
#[test]
fn bad_parameters_fail_before_any_data_or_noise() {
    let p = policy(1);
    let with = |o: OutputSpec| QuerySpec { outputs: vec![o], ..spec("1") };
    let hist =
        |edges: Vec<f64>, eps: &str| OutputSpec::Histogram { name: "h".into(), edges, epsilon: Decimal(eps.into()) };
    let mean = |lower: f64, upper: f64, eps: &str| OutputSpec::GroupMean {
        name: "m".into(),
        group_by: "g".into(),
        lower,
        upper,
        epsilon: Decimal(eps.into()),
    };
    let auc = |bins: u32| OutputSpec::Auc { name: "a".into(), label: "y".into(), bins, epsilon: Decimal("1".into()) };
    let many_edges: Vec<f64> = (0..=protocol::job::MAX_BINS + 1).map(|i| i as f64).collect();
    let cases: Vec<(QuerySpec, &str)> = vec![
        // ε ≤ 0, NaN, infinite, not a number
        (spec("0"), "epsilon must be > 0"),
        (spec("-1"), "invalid number"),
        (spec("NaN"), "invalid number"),
        (spec("inf"), "invalid number"),
        (spec(""), "invalid number"),
        (with(hist(vec![0.0, 1.0], "1e-40")), "invalid"),
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
        // no outputs, duplicate names
        (QuerySpec { outputs: vec![], ..spec("1") }, "outputs"),
        (QuerySpec { outputs: vec![hist(vec![0.0, 1.0], "1"), hist(vec![0.0, 2.0], "1")], ..spec("1") }, "duplicate"),
    ];
    for (q, want) in cases {
        let e = match Accumulator::new(&q, &p, [0; 32]) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {:?}", q.outputs),
        };
        assert!(e.contains(want), "{:?}: {e:?} !~ {want:?}", q.outputs);
        assert!(!e.contains('\n'));
    }
    // A policy with no row bound, or a partition δ of 0, is refused the same way.
    assert!(Accumulator::new(&spec("1"), &policy(0), [0; 32]).is_err());
    let mut p0 = policy(1);
    p0.partition_delta = Decimal("0".into());
    let e = Accumulator::new(&spec("1"), &p0, [0; 32]).err().unwrap().to_string();
    assert!(e.contains("delta"), "{e}");
    // The valid spec passes.
    Accumulator::new(&spec("1"), &p, [0; 32]).unwrap();
}

/// A query on an undeclared column (or one of the wrong type) is caught by `check_schema`
/// on the first batch, which the enclave runs before the module sees data or the grant is
/// spent.
#[test]
fn undeclared_columns_fail_the_schema_check() {
    let good = batch(&[1, 2], &[0, 1], &[0, 1]);
    let acc = Accumulator::new(&spec("1"), &policy(1), [0; 32]).unwrap();
    acc.check_schema(&good).unwrap();

    let mut q = spec("1");
    if let OutputSpec::GroupMean { group_by, .. } = &mut q.outputs[0] {
        *group_by = "zip9".into();
    }
    let acc = Accumulator::new(&q, &policy(1), [0; 32]).unwrap();
    assert_eq!(acc.check_schema(&good).unwrap_err().to_string(), "column \"zip9\" is not in the dataset");

    let mut q = spec("1");
    if let OutputSpec::Auc { label, .. } = &mut q.outputs[2] {
        *label = "g".into(); // a dictionary column, not 0/1 labels
    }
    let acc = Accumulator::new(&q, &policy(1), [0; 32]).unwrap();
    assert!(matches!(acc.check_schema(&good), Err(ReleaseError::ColumnType { expected: "i64", .. })));

    let q = QuerySpec { inputs: vec!["y".into(), "salary".into()], ..spec("1") };
    let acc = Accumulator::new(&q, &policy(1), [0; 32]).unwrap();
    assert!(matches!(acc.check_schema(&good), Err(ReleaseError::MissingColumn(c)) if c == "salary"));

    let mut p = policy(1);
    p.privacy_unit = "g".into();
    let acc = Accumulator::new(&spec("1"), &p, [0; 32]).unwrap();
    assert!(matches!(acc.check_schema(&good), Err(ReleaseError::ColumnType { expected: "token", .. })));
}

/// The DP release draws exactly as many noise values as the outputs need and nothing before
/// the data is aggregated; with parameters checked up front, `finish` cannot fail half-way.
#[test]
fn valid_query_releases_every_output() {
    let mut acc = Accumulator::new(&spec("0.5"), &policy(1), [0; 32]).unwrap();
    let b = batch(&[1, 2, 3, 4, 5, 6, 7], &[0, 0, 0, 1, 1, 1, 2], &[0, 0, 1, 0, 1, 1, 1]);
    acc.check_schema(&b).unwrap();
    acc.add_batch(&b, &[0.1, 0.2, 0.9, 0.3, 0.8, 0.95, 0.5]).unwrap();
    let mut rng = dp::seeded_rng([1; 32]);
    let mode = Mode::Dp { rng: &mut rng, min_group_size: 3, partition_delta: "0.000001".parse().unwrap() };
    let (out, _) = acc.finish(mode).unwrap();
    assert_eq!(out.len(), 3);
}

fn sorted_policy(k: u32) -> Policy {
    Policy { rows_sorted_by_unit: true, ..policy(k) }
}

#[test]
fn sorted_streaming_bounding_equals_in_memory_bounding() {
    // Units sorted, several rows per unit, split across two batches mid-unit; with k large
    // enough to keep every row, both bounders must give identical exact results.
    let units = [1u8, 1, 2, 3, 3, 3, 4, 5, 6, 7];
    let groups = [0u32, 0, 1, 1, 1, 1, 0, 0, 1, 0];
    let labels = [0i64, 1, 0, 1, 1, 0, 0, 1, 1, 0];
    let scores = [0.1, 0.9, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6, 0.95, 0.05];
    let run = |p: Policy| {
        let mut acc = Accumulator::new(&spec("1"), &p, [3; 32]).unwrap();
        acc.add_batch(&batch(&units[..4], &groups[..4], &labels[..4]), &scores[..4]).unwrap();
        acc.add_batch(&batch(&units[4..], &groups[4..], &labels[4..]), &scores[4..]).unwrap();
        acc.finish::<dp::DpRng>(Mode::Exact { min_group_size: 1 }).unwrap()
    };
    let (a, sa) = run(policy(3));
    let (b, sb) = run(sorted_policy(3));
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_eq!(sb.units, 7);
    // With k = 1 both drop the same number of rows (which rows is random).
    let (_, sa) = run(policy(1));
    let (_, sb) = run(sorted_policy(1));
    assert_eq!((sa.rows_dropped_by_bounding, sb.rows_dropped_by_bounding), (3, 3));
    assert_eq!(sb.units, 7);
}

#[test]
fn sorted_mode_refuses_an_unsorted_stream() {
    let mut acc = Accumulator::new(&spec("1"), &sorted_policy(1), [0; 32]).unwrap();
    acc.add_batch(&batch(&[1, 5], &[0, 0], &[0, 1]), &[0.1, 0.2]).unwrap();
    let r = acc.add_batch(&batch(&[4], &[0], &[0]), &[0.3]);
    assert!(matches!(r, Err(ReleaseError::NotSortedByUnit)), "{r:?}");
}

#[test]
fn sorted_reservoir_keeps_rows_uniformly() {
    // One unit with 4 rows, k = 1: each row kept with probability 1/4.
    let mut hits = [0u32; 4];
    for seed in 0..4000u32 {
        let mut s = [0u8; 32];
        s[..4].copy_from_slice(&seed.to_le_bytes());
        let mut acc = Accumulator::new(&spec("1"), &sorted_policy(1), s).unwrap();
        let sc = [0.05, 0.35, 0.65, 0.95];
        acc.add_batch(&batch(&[1, 1, 1, 1], &[0; 4], &[0; 4]), &sc).unwrap();
        let (out, _) = acc.finish::<dp::DpRng>(Mode::Exact { min_group_size: 1 }).unwrap();
        // The histogram output has bins [0,0.5) and [0.5,1]; use the group mean instead.
        let m = out[0].values[0].value;
        hits[sc.iter().position(|&x| (x - m).abs() < 1e-9).unwrap()] += 1;
    }
    for h in hits {
        assert!((850..=1150).contains(&h), "{hits:?}");
    }
}

#[test]
fn centred_sums_halve_the_sensitivity_of_zero_to_one_bounds() {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION).unwrap();
    assert_eq!(centred_sum_bound(&fp, 0.0, 1.0, 1).unwrap(), (5_000, 5_000));
    assert_eq!(centred_sum_bound(&fp, 0.0, 1.0, 3).unwrap(), (5_000, 15_000));
    // Asymmetric bounds: the centre is the midpoint, the bound its larger distance.
    assert_eq!(centred_sum_bound(&fp, -1.0, 0.5, 1).unwrap(), (-2_500, 7_500));
    // The mechanism names the centred bound it used.
    let mut acc = Accumulator::new(&spec("1"), &policy(1), [0; 32]).unwrap();
    acc.add_batch(&batch(&[1, 2, 3], &[0, 0, 0], &[0, 1, 0]), &[0.2, 0.4, 0.9]).unwrap();
    let mut rng = dp::seeded_rng([1; 32]);
    let mode = Mode::Dp { rng: &mut rng, min_group_size: 1, partition_delta: "0.000001".parse().unwrap() };
    let (out, _) = acc.finish(mode).unwrap();
    assert!(out[0].sensitivity.contains("centred sum: 5000"), "{}", out[0].sensitivity);
}
