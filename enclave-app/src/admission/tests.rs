//! One test per refusal: each starts from a request that passes and changes one thing.

use super::*;
use protocol::grant::LedgerFigures;
use protocol::job::OutputSpec;
use protocol::policy::{Collaborator, ColumnPolicy, ColumnRole, Decimal, SandboxLimits, Timing};
use protocol::signing::SigningKey;

const NOW: u64 = 1_796_083_200;

fn owner() -> SigningKey {
    SigningKey::from_seed([1; 32])
}
fn provider() -> SigningKey {
    SigningKey::from_seed([2; 32])
}
fn enclave() -> SigningKey {
    SigningKey::from_seed([3; 32])
}
fn module() -> Digest {
    Digest::of(b"module")
}

fn policy() -> Policy {
    let col = ColumnPolicy::new;
    Policy {
        population: "pop".into(),
        sealed_chunks: 2,
        rows_per_chunk: 100,
        allowed_modules: vec![module()],
        allowed_query_classes: vec!["group_mean".into(), "histogram".into(), "auc".into()],
        collaborators: vec![Collaborator { name: "acme".into(), public_key: Bytes(provider().public_key()) }],
        min_group_size: 5,
        timing: Timing {
            max_deadline_ms: 60_000,
            setup_ms: 10,
            ns_per_fuel: 1,
            unit_overhead_ns: 1000,
            ingest_ns_per_row: 1000,
            ns_per_memory_page: 1,
        },
        sandbox: SandboxLimits { fuel_per_unit: 1000, memory_limit_bytes: 1 << 20, max_module_bytes: 1 << 20 },
        ..Policy::new(
            owner().public_key(),
            Digest::of(b"dataset"),
            "unit",
            vec![
                col("unit", "token", vec![]),
                col("x", "f64", vec![ColumnRole::Input]),
                col("g", "dict", vec![ColumnRole::GroupBy]),
                col("y", "i64", vec![ColumnRole::Label]),
            ],
        )
    }
}

fn spec() -> QuerySpec {
    QuerySpec {
        job_id: "job-1".into(),
        collaborator: "acme".into(),
        dataset_digest: Digest::of(b"dataset"),
        module_hash: module(),
        inputs: vec!["x".into()],
        outputs: vec![
            OutputSpec::mean("m", "g", 0.0, 1.0, "0.4"),
            OutputSpec::histogram("h", vec![0.0, 0.5, 1.0], "0.3"),
            OutputSpec::auc("a", "y", 10, "0.3"),
        ],
        delta: None,
        deadline_ms: 10_000,
        training: None,
    }
}

fn grant() -> BudgetGrant {
    let d = |s: &str| Decimal::literal(s);
    BudgetGrant {
        grant_id: "grant-1".into(),
        job_id: "job-1".into(),
        query_digest: spec().digest(),
        dataset_digest: Digest::of(b"dataset"),
        policy_digest: policy().digest(),
        population: "pop".into(),
        collaborator: "acme".into(),
        provider_public_key: Bytes(provider().public_key()),
        epsilon: d("1"),
        delta: d("0.000001"),
        expires_at: NOW + 60,
        nonce: Bytes(vec![0; 16]),
        enclave_public_key: Bytes(enclave().public_key()),
        ledger: LedgerFigures {
            collaborator_epsilon_before: d("3"),
            collaborator_epsilon_after: d("2"),
            population_epsilon_before: d("5"),
            population_epsilon_after: d("4"),
            collaborator_delta_after: d("0"),
            population_delta_after: d("0"),
        },
    }
}

/// The fixture's grant, for a policy `p` that differs from the fixture's.
fn grant_for(p: &Policy) -> BudgetGrant {
    BudgetGrant { policy_digest: p.digest(), ..grant() }
}

fn code<T: std::fmt::Debug>(r: Result<T, Refusal>) -> Code {
    r.expect_err("must be refused").code
}

/// Run `check_grant` on the fixture with `edit` applied to the grant (re-signed by the owner).
fn grant_with(edit: impl FnOnce(&mut BudgetGrant), book: &GrantBook) -> Result<BudgetGrant, Refusal> {
    let p = policy();
    let digest = p.digest();
    let key = enclave().public_key();
    let me = Me { policy: &p, policy_digest: &digest, public_key: &key };
    let mut g = grant();
    edit(&mut g);
    check_grant(&me, book, &owner().sign(GRANT_CONTEXT, &g), &p.dataset_digest, NOW)
}

#[test]
fn a_good_grant_passes_and_each_wrong_field_is_named() {
    let book = GrantBook::default();
    grant_with(|_| {}, &book).unwrap();
    assert_eq!(code(grant_with(|g| g.enclave_public_key = Bytes(vec![9; 32]), &book)), Code::GrantWrongEnclave);
    assert_eq!(code(grant_with(|g| g.policy_digest = Digest::of(b"other"), &book)), Code::GrantWrongPolicy);
    assert_eq!(code(grant_with(|g| g.dataset_digest = Digest::of(b"other"), &book)), Code::GrantWrongDataset);
    assert_eq!(code(grant_with(|g| g.population = "other".into(), &book)), Code::GrantWrongPopulation);
    assert_eq!(code(grant_with(|g| g.provider_public_key = Bytes(vec![9; 32]), &book)), Code::GrantWrongProviderKey);
    assert_eq!(code(grant_with(|g| g.collaborator = "mallory".into(), &book)), Code::CollaboratorNotAllowed);
    assert_eq!(code(grant_with(|g| g.expires_at = NOW, &book)), Code::GrantExpired);
    // The dataset's retention date, from the owner's rules through the policy.
    let mut p = policy();
    p.dataset_expires_at = Some(NOW);
    let (digest, key) = (p.digest(), enclave().public_key());
    let me = Me { policy: &p, policy_digest: &digest, public_key: &key };
    let expired = check_grant(&me, &book, &owner().sign(GRANT_CONTEXT, &grant_for(&p)), &p.dataset_digest, NOW);
    assert_eq!(code(expired), Code::DatasetExpired);
    p.dataset_expires_at = Some(NOW + 1);
    let digest = p.digest();
    let me = Me { policy: &p, policy_digest: &digest, public_key: &key };
    check_grant(&me, &book, &owner().sign(GRANT_CONTEXT, &grant_for(&p)), &p.dataset_digest, NOW).unwrap();
    assert_eq!(code(grant_with(|g| g.epsilon = Decimal::literal("1.5"), &book)), Code::GrantExceedsPolicy);
    assert_eq!(code(grant_with(|g| g.delta = Decimal::literal("0.001"), &book)), Code::GrantExceedsPolicy);
    // A grant whose ε is not a number does not even decode: it is malformed.
    let mut raw = ciborium::Value::serialized(&grant_for(&p)).unwrap();
    let ciborium::Value::Map(fields) = &mut raw else { panic!("a grant is a map") };
    let eps = fields.iter_mut().find(|(k, _)| k.as_text() == Some("epsilon")).expect("epsilon field");
    eps.1 = ciborium::Value::Text("lots".into());
    let lots = check_grant(&me, &book, &owner().sign(GRANT_CONTEXT, &raw), &p.dataset_digest, NOW);
    assert_eq!(code(lots), Code::GrantMalformed);
}

#[test]
fn replayed_signed_by_another_key_or_malformed_grants_are_refused() {
    let p = policy();
    let digest = p.digest();
    let key = enclave().public_key();
    let me = Me { policy: &p, policy_digest: &digest, public_key: &key };
    let mut book = GrantBook::default();
    book.seen.insert("grant-1".into());
    assert_eq!(code(grant_with(|_| {}, &book)), Code::GrantReplayed);
    let mut book = GrantBook::default();
    book.pending.insert(spec().digest(), grant());
    assert_eq!(code(grant_with(|g| g.grant_id = "grant-2".into(), &book)), Code::QueryAlreadyGranted);
    let book = GrantBook::default();
    let forged = provider().sign(GRANT_CONTEXT, &grant());
    assert_eq!(code(check_grant(&me, &book, &forged, &p.dataset_digest, NOW)), Code::GrantSignature);
    let junk = owner().sign(GRANT_CONTEXT, &"not a grant");
    assert_eq!(code(check_grant(&me, &book, &junk, &p.dataset_digest, NOW)), Code::GrantMalformed);
    let signed = owner().sign(GRANT_CONTEXT, &grant());
    assert_eq!(code(check_grant(&me, &book, &signed, &Digest::of(b"other"), NOW)), Code::GrantWrongDataset);
}

#[test]
fn the_submission_proof_is_checked_for_this_channel_and_this_query() {
    let p = policy();
    let s = spec();
    let q = s.digest();
    let exporter = [7u8; 32];
    let proof = |key: &SigningKey, ex: &[u8], q: &Digest| {
        key.sign_bytes(SUBMIT_CONTEXT, submit_binding(ex, q).as_bytes().to_vec()).signature
    };
    check_proof(&p, &exporter, &s, &q, &proof(&provider(), &exporter, &q)).unwrap();
    for bad in [
        proof(&owner(), &exporter, &q),
        proof(&provider(), &[8; 32], &q),
        proof(&provider(), &exporter, &Digest::of(b"x")),
    ] {
        assert_eq!(code(check_proof(&p, &exporter, &s, &q, &bad)), Code::BadProviderProof);
    }
    let mut other = spec();
    other.collaborator = "mallory".into();
    assert_eq!(
        code(check_proof(&p, &exporter, &other, &q, &proof(&provider(), &exporter, &q))),
        Code::CollaboratorNotAllowed
    );
}

fn query_with(edit: impl FnOnce(&mut QuerySpec)) -> Result<Cost, Refusal> {
    let mut s = spec();
    edit(&mut s);
    check_query(&policy(), &s)
}

#[test]
fn a_good_query_passes_and_each_policy_limit_is_named() {
    let cost = query_with(|_| {}).unwrap();
    assert_eq!(cost.epsilon.to_string(), "1");
    assert_eq!(code(query_with(|s| s.outputs.clear())), Code::BadQuery);
    assert_eq!(code(query_with(|s| s.dataset_digest = Digest::of(b"other"))), Code::DatasetNotGoverned);
    assert_eq!(code(query_with(|s| s.module_hash = Digest::of(b"other"))), Code::ModuleNotAllowed);
    assert_eq!(code(query_with(|s| s.inputs = vec!["nope".into()])), Code::UnknownColumn);
    // y may be a label, not an input; g a group key, not a label.
    assert_eq!(code(query_with(|s| s.inputs = vec!["y".into()])), Code::ColumnRoleNotAllowed);
    assert_eq!(
        code(query_with(|s| {
            if let OutputSpec::Auc { label, .. } = &mut s.outputs[2] {
                *label = "g".into()
            }
        })),
        Code::ColumnRoleNotAllowed
    );
    assert_eq!(
        code(query_with(|s| {
            if let OutputSpec::Auc { epsilon, .. } = &mut s.outputs[2] {
                *epsilon = Decimal::literal("0.5")
            }
        })),
        Code::EpsilonExceedsPolicy
    );
    let mut p = policy();
    p.allowed_query_classes.retain(|c| c != "auc");
    assert_eq!(code(check_query(&p, &spec())), Code::QueryClassNotAllowed);
    let mut p = policy();
    p.max_delta_per_job = Decimal::literal("0.0000001");
    assert_eq!(code(check_query(&p, &spec())), Code::DeltaExceedsPolicy);
}

#[test]
fn the_grant_must_be_pending_for_this_collaborator_unexpired_and_cover_the_cost() {
    let s = spec();
    let q = s.digest();
    let cost = check_query(&policy(), &s).unwrap();
    let book_with = |g: BudgetGrant| {
        let mut b = GrantBook::default();
        b.pending.insert(q, g);
        b
    };
    check_grant_covers(&s, &q, &book_with(grant()), true, &cost, NOW).unwrap();
    assert_eq!(code(check_grant_covers(&s, &q, &GrantBook::default(), true, &cost, NOW)), Code::NoGrant);
    assert_eq!(code(check_grant_covers(&s, &q, &book_with(grant()), false, &cost, NOW)), Code::NoDataKey);
    let mut g = grant();
    g.collaborator = "other".into();
    assert_eq!(code(check_grant_covers(&s, &q, &book_with(g), true, &cost, NOW)), Code::GrantWrongCollaborator);
    assert_eq!(code(check_grant_covers(&s, &q, &book_with(grant()), true, &cost, NOW + 60)), Code::GrantExpired);
    let mut g = grant();
    g.epsilon = Decimal::literal("0.9");
    assert_eq!(code(check_grant_covers(&s, &q, &book_with(g), true, &cost, NOW)), Code::EpsilonExceedsGrant);
    let mut g = grant();
    g.delta = Decimal::literal("0");
    assert_eq!(code(check_grant_covers(&s, &q, &book_with(g), true, &cost, NOW)), Code::DeltaExceedsGrant);
}

#[test]
fn the_module_must_be_the_named_one_and_read_the_sealed_types() {
    use sandbox::ColumnKind;
    let (p, s, m) = (policy(), spec(), module());
    check_module(&p, &s, &m, &m, &[ColumnKind::F64]).unwrap();
    let other = Digest::of(b"other");
    assert_eq!(code(check_module(&p, &s, &other, &m, &[ColumnKind::F64])), Code::ModuleHashMismatch);
    assert_eq!(code(check_module(&p, &s, &m, &other, &[ColumnKind::F64])), Code::ModuleHashMismatch);
    assert_eq!(code(check_module(&p, &s, &m, &m, &[])), Code::InputCount);
    assert_eq!(code(check_module(&p, &s, &m, &m, &[ColumnKind::I64])), Code::InputType);
}

#[test]
fn the_sealed_index_must_decode_and_match_the_policy_table() {
    let (p, s) = (policy(), spec());
    let index = |dataset: Digest, chunks: usize, rows: u64| {
        protocol::to_cbor(&SealedIndex {
            dataset_digest: dataset,
            chunks: vec![Digest::default(); chunks],
            rows_per_chunk: rows,
        })
    };
    check_index(&p, &s, &index(p.dataset_digest, 2, 100)).unwrap();
    assert_eq!(code(check_index(&p, &s, b"junk")), Code::BadSealedIndex);
    assert_eq!(code(check_index(&p, &s, &index(Digest::of(b"x"), 2, 100))), Code::BadSealedIndex);
    assert_eq!(code(check_index(&p, &s, &index(p.dataset_digest, 1, 100))), Code::BadSealedIndex);
    assert_eq!(code(check_index(&p, &s, &index(p.dataset_digest, 2, 101))), Code::BadSealedIndex);
}

#[test]
fn the_deadline_must_cover_the_worst_case_and_stay_within_the_policy() {
    let p = policy();
    let minimum = check_deadline(&p, &spec(), None).unwrap().minimum;
    let with = |ms: u64| {
        let mut s = spec();
        s.deadline_ms = ms;
        check_deadline(&p, &s, None)
    };
    assert_eq!(code(with(minimum.as_millis() as u64 / 2)), Code::DeadlineTooShort);
    assert_eq!(code(with(p.timing.max_deadline_ms + 1)), Code::DeadlineExceedsPolicy);
    let mut huge = policy();
    huge.sealed_chunks = u64::MAX;
    huge.timing.ns_per_fuel = u64::MAX;
    assert_eq!(code(check_deadline(&huge, &spec(), None)), Code::DeadlineOverflow);
}

/// Release errors found while admitting (the module's outputs, each output's parameters)
/// keep a code of their own; only a DP parameter that does not check is `release_failed`.
#[test]
fn release_errors_map_to_their_refusal_codes() {
    use release::ReleaseError as E;
    let unknown = E::UnknownModelOutput { output: "m".into(), name: "q".into(), available: "p, r".into() };
    assert_eq!(Refusal::from(unknown).code, Code::UnknownModelOutput);
    let bad = E::BadOutput { output: "m".into(), why: "of: the module has 2 outputs".into() };
    assert_eq!(Refusal::from(bad).code, Code::BadQuery);
    let field = protocol::job::FieldError { output: "m".into(), field: "upper", why: "not finite".into() };
    let r = Refusal::from(E::Spec(field));
    assert_eq!(r.code, Code::BadQuery);
    assert!(r.message.contains("m.upper: not finite"), "{}", r.message);
    assert_eq!(Refusal::from(E::Dp(dp::DpError::ZeroDelta)).code, Code::ReleaseFailed);
}

fn training_spec() -> QuerySpec {
    use protocol::training::{Optimizer, TrainingSpec};
    let d = |v: &str| Decimal::literal(v);
    QuerySpec {
        outputs: vec![],
        training: Some(TrainingSpec {
            label: "y".into(),
            sample_rate: d("0.05"),
            noise_multiplier: d("1"),
            clip_norm: d("1"),
            steps: 10,
            expected_batch_size: 10,
            optimizer: Optimizer::Sgd { learning_rate: d("0.1"), momentum: d("0.9") },
            delta: d("0.000001"),
        }),
        ..spec()
    }
}

fn trainable(n_params: u32, label: sandbox::ColumnKind) -> sandbox::TrainManifest {
    sandbox::TrainManifest { n_params, label, layout: vec![sandbox::Tensor { name: "w".into(), len: n_params }] }
}

#[test]
fn a_training_query_needs_the_policy_s_bounds_and_a_trainable_module_that_fits_them() {
    use protocol::training::TrainingLimits;
    let allowing = Policy { training: Some(TrainingLimits::default()), ..policy() };
    let ok = trainable(6, sandbox::ColumnKind::I64);
    // Passes: a plan with the accountant's (ε, δ).
    let plan = check_training(&allowing, &training_spec(), Some(&ok)).unwrap().expect("a training plan");
    assert!(plan.epsilon.to_f64() > 0.0);
    // A query without training needs nothing.
    assert!(check_training(&policy(), &spec(), None).unwrap().is_none());
    // No training bounds in the policy.
    assert_eq!(code(check_training(&policy(), &training_spec(), Some(&ok))), Code::TrainingNotAllowed);
    // A hyperparameter outside them.
    let mut steep = training_spec();
    steep.training.as_mut().unwrap().steps = 10_001;
    assert_eq!(code(check_training(&allowing, &steep, Some(&ok))), Code::TrainingNotAllowed);
    // A module without a training section, with more parameters than the policy allows, or
    // reading its label as another type than the sealed one.
    assert_eq!(code(check_training(&allowing, &training_spec(), None)), Code::ModuleNotTrainable);
    let big = trainable(TrainingLimits::default().max_params + 1, sandbox::ColumnKind::I64);
    assert_eq!(code(check_training(&allowing, &training_spec(), Some(&big))), Code::ModuleNotTrainable);
    let f64_label = trainable(6, sandbox::ColumnKind::F64);
    assert_eq!(code(check_training(&allowing, &training_spec(), Some(&f64_label))), Code::ModuleNotTrainable);
    // The deadline covers the training's worst case: the scoring-only minimum is too short.
    // (2,000 steps: a coin per unit per step is then tens of milliseconds.)
    let mut s = training_spec();
    s.training.as_mut().unwrap().steps = 2_000;
    let plan = check_training(&allowing, &s, Some(&ok)).unwrap().expect("a training plan");
    let scoring = check_deadline(&allowing, &spec(), None).unwrap().minimum;
    s.deadline_ms = scoring.as_millis() as u64 + 1;
    assert_eq!(code(check_deadline(&allowing, &s, Some((&plan, 6)))), Code::DeadlineTooShort);
    let training = release::training::schedule(&s, &allowing, Some((&plan, 6))).unwrap().minimum;
    s.deadline_ms = training.as_millis() as u64 + 1;
    assert!(check_deadline(&allowing, &s, Some((&plan, 6))).is_ok());
}
