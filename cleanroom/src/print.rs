//! How the command line shows each report. Text only: every figure here was computed by a
//! library call.

use cleanroom::commands::audit::CheckedResult;
use cleanroom::commands::compare::Comparison;
use cleanroom::commands::owner::{DatasetRow, JobDiagnostics, ReleaseOutcome, Rotation, Sealed, TokenKeys};
use cleanroom::commands::provider::{SubmitStep, Submitted};
use cleanroom::commands::Attested;
use cleanroom::provider::{CheckReport, TestReport, LOCAL_TEST_NOTICE};
use ledger::{BudgetRow, PopulationRow};
use owner_prep::hsm_keys::Pkcs11Location;
use owner_prep::suggest::Suggestion;
use protocol::job::QuerySpec;
use protocol::result::OutputRelease;
use std::path::Path;

pub fn draft(s: &Suggestion, input: &Path, draft: &Path) {
    println!("scanned {} of {} rows; draft rules written to {}", s.rows_scanned, s.rows_seen, draft.display());
    if let Some(u) = &s.unit {
        println!("suggested privacy unit: {u}");
    }
    println!(
        "review every column (label, transform, roles, reason), then: cleanroom prepare {} --rules {}",
        input.display(),
        draft.display()
    );
}

pub fn sealed(s: &Sealed, out: &Path, ledger: Option<&Path>) {
    if let (Some(l), Some(seq)) = (ledger, s.ledger_entry) {
        println!("manifest appended to the owner's log in {} (entry {seq})", l.display());
    }
    print!("{}", owner_prep::prepare::summary(&s.report, out));
}

pub fn diagnostics(jobs: &[JobDiagnostics]) {
    for j in jobs {
        let d = &j.diagnostics;
        println!(
            "job {} ({}): {} rows, {} units, absent after a fault: {:?}{}",
            j.job_id.as_deref().unwrap_or("?"),
            j.event,
            d.rows,
            d.units,
            d.faults,
            d.failure.as_ref().map(|f| format!("; failed: {f}")).unwrap_or_default()
        );
    }
}

pub fn datasets(rows: &[DatasetRow]) {
    for r in rows {
        println!(
            "{:>4}  {:<20} {}  recorded {}  retention {}{}",
            r.seq,
            r.name,
            r.digest,
            r.recorded_at,
            r.retention_until.as_deref().unwrap_or("none"),
            if r.expired { "  EXPIRED" } else { "" }
        );
    }
}

pub fn population_cap(p: &PopulationRow) {
    println!(
        "population {}: cap ε {} δ {}; spent ε {} δ {}",
        p.population, p.epsilon.total, p.delta.total, p.epsilon.spent, p.delta.spent
    );
}

pub fn budget(b: &BudgetRow) {
    println!(
        "budget for {} on population {}: ε {} (remaining {}), δ {} (remaining {})",
        b.collaborator, b.population, b.epsilon.total, b.epsilon.remaining, b.delta.total, b.delta.remaining
    );
}

pub fn budgets(populations: &[PopulationRow], budgets: &[BudgetRow]) {
    println!("populations (caps across every collaborator and re-seal):");
    let p_row = |c: [&str; 7]| {
        println!("  {:<34} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7}", c[0], c[1], c[2], c[3], c[4], c[5], c[6])
    };
    p_row(["population", "cap ε", "spent ε", "cap δ", "spent δ", "collab.", "grants"]);
    for p in populations {
        let (e, d) = (&p.epsilon, &p.delta);
        let (n, g) = (p.collaborators.to_string(), p.grants.to_string());
        p_row([
            &p.population,
            &e.total.to_string(),
            &e.spent.to_string(),
            &d.total.to_string(),
            &d.spent.to_string(),
            &n,
            &g,
        ]);
    }
    println!("collaborators:");
    let b_row = |c: [&str; 7]| {
        println!("  {:<34} {:<14} {:>8} {:>8} {:>10} {:>10} {:>7}", c[0], c[1], c[2], c[3], c[4], c[5], c[6])
    };
    b_row(["population", "collaborator", "total ε", "spent ε", "total δ", "spent δ", "grants"]);
    for b in budgets {
        let (e, d, g) = (&b.epsilon, &b.delta, b.grants.to_string());
        b_row([
            &b.population,
            &b.collaborator,
            &e.total.to_string(),
            &e.spent.to_string(),
            &d.total.to_string(),
            &d.spent.to_string(),
            &g,
        ]);
    }
}

pub fn rotation(r: &Rotation, keys: &Path, ledger: &Path) {
    println!("tokenization key rotated: {} -> {}", r.old, r.new);
    println!("  tokens made with the new key do not link to earlier ones: re-sealed tables share no token with earlier seals,");
    println!(
        "  and the old key is gone from {}, so nobody can re-create the old tokens from this file;",
        keys.display()
    );
    println!(
        "  the budget does not restart: population {} spends the budget of {} in {}.",
        r.new,
        r.budget_of,
        ledger.display()
    );
}

pub fn token_keys(k: &TokenKeys, loc: &Pkcs11Location) {
    println!("tokenization key {:?} generated in token {:?} (non-extractable)", loc.key, loc.token);
    println!("key id (population): {}", k.key_id);
    println!(
        "grant-signing key {:?} generated (non-extractable); public key: {}",
        k.grant_key_label,
        hex::encode(&k.grant_public_key)
    );
}

fn attested(a: &Attested) {
    if a.simulated {
        println!("attestation: SIMULATED evidence accepted because --allow-simulated was given (development only, not hardware-backed)");
    }
    if a.emulated_nsm {
        println!("attestation: EMULATED NSM evidence accepted because --allow-emulated-nsm was given (QEMU nitro-enclave machine: unsigned, no AWS signature, not Nitro hardware; test only)");
    }
    println!("attestation verified ({}): checks passed: {}", a.platform, a.checks_passed.join(", "));
}

pub fn released(o: &ReleaseOutcome) {
    print!("{}", o.review);
    attested(&o.attested);
    for (i, s) in o.shards.iter().enumerate() {
        println!("shard {i}: {} attested (same image and policy), key {}", s.endpoint, hex::encode(&s.public_key.0));
    }
    if !o.shards.is_empty() {
        println!("named {} shards to the enclave for this query: it coordinates, they read the data", o.shards.len());
    }
    let r = &o.released;
    match r.checked_from {
        Some(old) => println!(
            "audit log: the enclave proved its log ({} records) extends the checkpoint the ledger held ({old} records)",
            r.checkpoint.size
        ),
        None => println!("audit log: no checkpoint held yet; the enclave's log has {} records", r.checkpoint.size),
    }
    let (grant, l) = (&r.grant, &r.grant.ledger);
    println!(
        "ledger: granted ε {} δ {} for query {} (job {}) to {}; collaborator ε remaining {} -> {}, population ε remaining {} -> {}",
        grant.epsilon,
        grant.delta,
        grant.query_digest,
        grant.job_id,
        grant.collaborator,
        l.collaborator_epsilon_before,
        l.collaborator_epsilon_after,
        l.population_epsilon_before,
        l.population_epsilon_after
    );
    println!(
        "data key and grant {} released to the attested enclave; logged as record {} (checkpoint of {} records kept in the ledger)",
        grant.grant_id,
        r.receipt.index + 1,
        r.checkpoint.size
    );
}

pub fn submit_step(step: SubmitStep<'_>) {
    match step {
        SubmitStep::Attested(a) => attested(a),
        SubmitStep::Submitting { module_blob, job_id, deadline_ms } => println!(
            "module {module_blob} uploaded; submitting job {job_id} (the reply comes at its {deadline_ms} ms deadline)"
        ),
        SubmitStep::FailureLogged { path, log_index, checkpoint_size } => eprintln!(
            "the failure is logged as record {} (checkpoint of {checkpoint_size} records in {})",
            log_index + 1,
            path.display()
        ),
    }
}

pub fn submitted(s: &Submitted, out: &Path) {
    let r = &s.result;
    println!(
        "signed result for job {} received ({} outputs, ε spent {}{}{}); logged as record {} under a checkpoint of {} records; written to {}",
        r.job_id,
        r.outputs.len(),
        r.epsilon_spent,
        if r.simulated { ", SIMULATED attestation" } else { "" },
        if r.insecure_fixed_noise { ", INSECURE FIXED NOISE" } else { "" },
        s.log_index + 1,
        s.checkpoint_size,
        out.display()
    );
}

pub fn checked_result(c: &CheckedResult) {
    let (v, r) = (&c.verified.verdict, &c.verified.result);
    println!(
        "result for job {} is signed by an attested enclave key ({}{}) running the expected image and policy",
        r.job_id,
        r.platform,
        if v.simulated {
            ", SIMULATED: not hardware-backed"
        } else if v.emulated_nsm {
            ", EMULATED NSM: unsigned, not hardware-backed"
        } else {
            ""
        }
    );
    if r.insecure_fixed_noise {
        println!("  INSECURE FIXED NOISE: the noise came from a seed given on the command line; this release protects no one");
    }
    if !r.shard_keys.is_empty() {
        println!(
            "  run across {} shard enclaves the owner attested (keys named in the signed result)",
            r.shard_keys.len()
        );
    }
    println!(
        "  logged as record {} under a checkpoint of {} records signed by the same key",
        c.file.receipt.index + 1,
        c.checkpoint_size
    );
    println!(
        "  query {} on dataset {}; spent ε {} δ {}; released at {} (the query's deadline)",
        r.query_digest, r.dataset_digest, r.epsilon_spent, r.delta_spent, r.released_at
    );
    for o in &r.outputs {
        println!(
            "  {} ({}, {}, ε {}{}, sensitivity {}, noise scale {}): {} values",
            o.name,
            o.class,
            o.mechanism,
            o.epsilon,
            o.delta.as_ref().map(|d| format!(", δ {d}")).unwrap_or_default(),
            o.sensitivity,
            o.noise_scale,
            o.values.len()
        );
    }
}

pub fn audit(report: &audit::AuditReport, budgets: &[BudgetRow]) {
    print!("{}", audit::files::summary_text(report));
    for b in budgets {
        println!(
            "  ledger: {} on population {}: spent ε {} of {}, δ {} of {}",
            b.collaborator, b.population, b.epsilon.spent, b.epsilon.total, b.delta.spent, b.delta.total
        );
    }
}

pub fn module_check(r: &CheckReport) {
    println!("module admitted by the cleanroom sandbox (the same admission the enclave runs)");
    println!("  sha256:          {}", r.hash);
    println!("                   (the owner lists this in the policy's allowed_modules;");
    println!("                    the query spec's module_hash must equal it)");
    println!("  ABI version:     {}", r.abi_version);
    println!("  size:            {} bytes (limit {} bytes)", r.size, r.config.max_module_bytes);
    println!("  inputs:          {} ({})", r.inputs.len(), r.inputs.join(", "));
    println!("  outputs per row: {} ({})", r.outputs_per_row, r.output_names.join(", "));
    println!("  imports:         {}", if r.imports.is_empty() { "none".into() } else { r.imports.join(", ") });
    println!("  exports:         {}", r.exports.join(", "));
    println!(
        "  limits:          memory {} MiB per unit, a fresh instance per unit, Wasm stack {} KiB, one memory, one table of at most {} elements",
        r.config.memory_limit_bytes >> 20,
        r.config.max_wasm_stack >> 10,
        sandbox::MAX_TABLE_ELEMENTS
    );
    println!("  compile time:    {:.1} ms", r.compile_time.as_secs_f64() * 1e3);
}

pub fn local_test(r: &TestReport, spec: &QuerySpec, max_rows_per_unit: u32, out: Option<&Path>) {
    module_check(&r.check);
    for w in &r.warnings {
        println!("warning: {w}");
    }
    println!(
        "ran job {} over {} rows ({} privacy units scored, {} absent after a fault; at most {} rows per unit)",
        spec.job_id, r.rows, r.units, r.units_absent, max_rows_per_unit
    );
    for o in &r.outputs {
        println!("\n{} ({}): exact, no noise", o.name, o.class);
        let show = o.values.len().min(20);
        for v in &o.values[..show] {
            println!("  {:<20} {:>14.6}", v.key, v.value);
        }
        if o.values.len() > show {
            println!("  … {} more", o.values.len() - show);
        }
    }
    if let Some(path) = out {
        println!("\nexact outputs written to {}", path.display());
    }
    println!("\n{LOCAL_TEST_NOTICE}.");
}

pub fn comparison(c: &Comparison) {
    match &c.truth.training {
        Some(t) => training_comparison(c, t),
        None => outputs_comparison(c),
    }
}

fn outputs_comparison(c: &Comparison) {
    let truth = &c.truth.outputs;
    println!("DP result (released to the provider) vs the owner's own exact check (never released)");
    for o in &c.result.outputs {
        println!("\n{} ({}, ε = {}, noise scale {})", o.name, o.mechanism, o.epsilon, o.noise_scale);
        println!(
            "  {:<16} {:<13} {:>14} {:>27} {:>14} {:>10}",
            "key", "statistic", "DP value", "stated 95% interval", "true value", "abs error"
        );
        let show = o.values.len().min(12);
        for v in &o.values[..show] {
            let ci = v.ci95.map(|[lo, hi]| format!("[{lo:.4}, {hi:.4}]")).unwrap_or_else(|| "(see note)".into());
            let (key, stat, value) = (&v.key, &v.stat, v.value);
            match Comparison::exact(truth, &o.name, v) {
                Some(t) => {
                    println!("  {key:<16} {stat:<13} {value:>14.4} {ci:>27} {t:>14.4} {:>10.4}", (value - t).abs())
                }
                None => println!("  {key:<16} {stat:<13} {value:>14.4} {ci:>27} {:>14} {:>10}", "-", "-"),
            }
        }
        if o.values.len() > show {
            println!("  … {} more", o.values.len() - show);
        }
        if let Some(e) = truth.iter().find(|x| x.name == o.name) {
            if e.values.len() != o.values.len() {
                println!(
                    "  {} groups released under DP partition selection; {} pass the minimum size exactly (owner's figure)",
                    o.values.len(),
                    e.values.len()
                );
            }
        }
    }
}

/// A training result next to the owner's reference: the DP parameters beside the pretrained
/// and the non-private ones, and each DP evaluation value beside the exact value with the
/// pretrained and with the non-private parameters.
fn training_comparison(c: &Comparison, t: &cleanroom::local_run::OwnerTrainingCheck) {
    let (pre, non) = (&t.pretrained_parameters, &t.nonprivate_parameters);
    println!("DP fine-tuning (released to the provider) vs the owner's own reference (never released)");
    for o in &c.result.outputs {
        println!("\n{} ({}, ε = {})", o.name, o.mechanism, o.epsilon);
        if o.class == "dp_sgd" {
            println!("  {:<10} {:>12} {:>12} {:>14}", "parameter", "pretrained", "DP-SGD", "non-private");
            for (i, v) in o.values.iter().enumerate() {
                let at = |p: &[f64]| p.get(i).map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
                println!("  {:<10} {:>12} {:>12.4} {:>14}", v.key, at(pre), v.value, at(non));
            }
            continue;
        }
        println!(
            "  {:<10} {:<9} {:>22} {:>22} {:>26}",
            "key", "statistic", "pretrained (exact)", "DP-SGD model (DP)", "non-private model (exact)"
        );
        let exact = |outputs: &[OutputRelease], v| {
            Comparison::exact(outputs, &o.name, v).map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
        };
        for v in o.values.iter().take(12) {
            println!(
                "  {:<10} {:<9} {:>22} {:>22.4} {:>26}",
                v.key,
                v.stat,
                exact(&t.pretrained_outputs, v),
                v.value,
                exact(&c.truth.outputs, v)
            );
        }
    }
}
