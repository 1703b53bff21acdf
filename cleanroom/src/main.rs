//! `cleanroom`: the owner's, provider's and auditor's command line. Each command parses its
//! arguments (cli.rs), makes one library call (`cleanroom::commands` and the crates it
//! builds on) and prints the report (print.rs). No decision is made here.

mod cli;
mod print;
mod progress;

use clap::Parser;
use cleanroom::commands::{audit as audit_cmd, compare, owner, provider as provider_cmd};
use cleanroom::files::{load_policy, load_query, read, sha384_hex};
use cleanroom::{client, provider, Error};
use cli::*;
use ledger::Ledger;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cleanroom: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn run(cmd: Cmd) -> Result<(), Error> {
    match cmd {
        Cmd::Generate { rows, seed, out } => {
            let (csv, pq, s) = owner_prep::datagen::generate_into(rows, seed, &out)?;
            println!("generated {rows} customers (seed {seed}): {} and {}", csv.display(), pq.display());
            println!("{s:?}");
        }
        Cmd::Prepare { input, suggest_rules: Some(draft), .. } => {
            print::draft(&owner::draft_rules(&input, &draft, now())?, &input, &draft)
        }
        Cmd::Prepare {
            input, rules, keys, out, rows_per_chunk, overwrite, ledger, sort_segment_rows, pkcs11, ..
        } => {
            let (Some(rules), Some(keys), Some(out)) = (rules, keys, out) else {
                return Err(Error::Usage("--rules, --keys and --out are required to seal".into()));
            };
            let request = owner::SealRequest {
                input: &input,
                rules: &rules,
                keys: &keys,
                out: &out,
                rows_per_chunk,
                overwrite,
                sort_segment_rows,
                ledger: ledger.as_deref(),
                token_key: pkcs11.key_home(),
                now: now(),
            };
            let bar = progress::CliProgress::new();
            let sealed = owner::seal(&request, &bar);
            bar.finish();
            print::sealed(&sealed?, &out, ledger.as_deref());
        }
        Cmd::Policy(PolicyCmd::Init(args)) => {
            let policy = owner::init_policy(args.request())?;
            println!("policy written to {}; digest {}", args.out.display(), policy.digest());
            println!("population {}", policy.population);
        }
        Cmd::Policy(PolicyCmd::Digest { policy }) => println!("{}", load_policy(&policy)?.digest()),
        Cmd::QueryInit(args) => {
            provider_cmd::query_init(args.request())?;
            println!("query written to {} (commented; check it with `cleanroom query check`)", args.out.display());
        }
        Cmd::Query(QueryCmd::Check { query, manifest, policy, module, group_sizes }) => {
            print!("{}", provider_cmd::query_check(&query, &manifest, &policy, module.as_deref(), &group_sizes)?)
        }
        Cmd::Diagnostics(DiagnosticsCmd::Keygen { out }) => {
            let public = client::create_diagnostics_key(&out).map_err(Error::Usage)?;
            println!("diagnostics key written to {} (keep it secret)", out.display());
            println!("public key (for policy init --diagnostics-key): {}", hex::encode(public));
        }
        Cmd::Diagnostics(DiagnosticsCmd::Show { log, key }) => print::diagnostics(&owner::diagnostics(&log, &key)?),
        Cmd::Datasets { ledger, expired } => print::datasets(&owner::datasets(&ledger, now(), expired)?),
        Cmd::Budget(BudgetCmd::Link { ledger, population, same_people_as }) => {
            let target = Ledger::open(&ledger)?.link_population(&population, &same_people_as, now())?;
            println!("population {population} now spends the budget of {target} (the same people under a new key)");
        }
        Cmd::Budget(BudgetCmd::Cap { ledger, population, epsilon, delta }) => {
            let l = Ledger::open(&ledger)?;
            l.set_population_cap(&population, &epsilon, &delta, now())?;
            print::population_cap(&l.population(&population)?);
        }
        Cmd::Budget(BudgetCmd::Set { ledger, population, collaborator, epsilon, delta }) => {
            let l = Ledger::open(&ledger)?;
            l.set_budget(&population, &collaborator, &epsilon, &delta, now())?;
            print::budget(&l.budget(&population, &collaborator)?);
        }
        Cmd::Budget(BudgetCmd::Show { ledger }) => {
            let l = Ledger::open(&ledger)?;
            print::budgets(&l.populations()?, &l.budgets()?);
        }
        Cmd::Keys(KeysCmd::Rotate { keys, ledger }) => {
            print::rotation(&owner::rotate_token_key(&keys, &ledger, now())?, &keys, &ledger)
        }
        Cmd::Keys(KeysCmd::Pkcs11Init { pkcs11 }) => {
            let loc = pkcs11
                .location()
                .ok_or(Error::Usage("--pkcs11-module, --pkcs11-token and --pkcs11-key are required".into()))?;
            print::token_keys(&owner::init_token(&loc)?, &loc);
        }
        Cmd::Keygen { out } => {
            let k = client::create_provider_key(&out).map_err(Error::Usage)?;
            println!("provider key written to {} (keep it secret)", out.display());
            println!("public key (give it to the owner for the policy): {}", hex::encode(k.public_key()));
        }
        Cmd::Review { query, policy, group_size } => {
            print!("{}", cleanroom::review::review(&load_query(&query)?, &load_policy(&policy)?, group_size)?)
        }
        Cmd::Measure { binary } => println!("{}", sha384_hex(&read(&binary)?)),
        Cmd::Upload { blob_api, sealed: Some(dir), .. } => {
            let bar = progress::CliProgress::new();
            let uploaded = provider_cmd::upload_sealed(&blob_api, &dir, &bar);
            bar.finish();
            let uploaded = uploaded?;
            eprintln!("uploaded {} sealed chunks; sealed index:", uploaded.chunks);
            println!("{}", uploaded.index);
        }
        Cmd::Upload { blob_api, file: Some(f), .. } => println!("{}", provider_cmd::upload_file(&blob_api, &f)?),
        Cmd::Upload { .. } => return Err(Error::Usage("give --sealed DIR or --file FILE".into())),
        Cmd::Release { attest, keys, ledger, policy, query, ttl, pkcs11, shards } => {
            let request = owner::ReleaseRequest {
                front_door: &attest.front_door,
                image: attest.image()?,
                allow_simulated: attest.allow_simulated,
                allow_emulated_nsm: attest.allow_emulated_nsm,
                keys: &keys,
                ledger: &ledger,
                policy: &policy,
                query: &query,
                ttl,
                grant_key: pkcs11.key_home(),
                now: now(),
                shards: &shards,
            };
            print::released(&owner::release(&request)?);
        }
        Cmd::Submit { attest, policy_digest, blob_api, module, query, sealed_index, provider_key, out } => {
            let request = provider_cmd::SubmitRequest {
                front_door: &attest.front_door,
                image: attest.image()?,
                allow_simulated: attest.allow_simulated,
                allow_emulated_nsm: attest.allow_emulated_nsm,
                policy_digest,
                blob_api: &blob_api,
                module: &module,
                query: &query,
                sealed_index,
                provider_key: &provider_key,
                out: &out,
            };
            let submitted = provider_cmd::submit(&request, &mut print::submit_step)?;
            print::submitted(&submitted, &out);
        }
        Cmd::VerifyResult { result, image } => {
            print::checked_result(&audit_cmd::verify_result(&result, &image.expected()?)?)
        }
        Cmd::OwnerCheck { sealed, keys, policy, module, query, out } => {
            let request = owner::OwnerCheckRequest {
                sealed: &sealed,
                keys: &keys,
                policy: &policy,
                module: &module,
                query: &query,
                out: &out,
            };
            let c = owner::owner_check(&request)?;
            println!(
                "owner's exact check over {} rows ({} units, {} absent after a fault) written to {}",
                c.rows,
                c.units,
                c.units_absent,
                out.display()
            );
        }
        Cmd::Compare { result, truth } => print::comparison(&compare::load(&result, &truth)?),
        Cmd::Dp(DpCmd::Plan(args)) => cleanroom::dp_plan::write(&args, &mut std::io::stdout().lock())?,
        Cmd::Provider(ProviderCmd::Check { module, limits }) => {
            print::module_check(&provider::check(&read(&module)?, &limits.limits())?)
        }
        Cmd::Provider(ProviderCmd::Test { module, csv, query, limits, min_group_size, max_rows_per_unit, out }) => {
            let spec = load_query(&query)?;
            println!("{}.", provider::LOCAL_TEST_NOTICE);
            let r = provider::test(&read(&module)?, &csv, &spec, limits.limits(), min_group_size, max_rows_per_unit)?;
            if let Some(path) = &out {
                provider_cmd::write_local_test(path, &r)?;
            }
            print::local_test(&r, &spec, max_rows_per_unit, out.as_deref());
        }
        Cmd::Audit(AuditCmd::Fetch { blob_api, out }) => {
            let n = audit_cmd::fetch(&blob_api, &out)?;
            println!(
                "{} audit records written to {} (evidence documents in {})",
                n.records,
                out.join("audit.log").display(),
                out.join("evidence").display()
            );
        }
        Cmd::Audit(AuditCmd::Export { check, format, out }) => {
            let expected = check.image.expected()?;
            let n = audit_cmd::export(&check.files(&expected), format.into(), &out, now())?;
            match format {
                ExportFormat::Jsonl => println!("{n} records written to {} as JSON lines", out.display()),
                ExportFormat::Bundle => println!("evidence bundle with {n} records written to {}", out.display()),
            }
        }
        Cmd::Audit(AuditCmd::Verify(check)) => {
            let expected = check.image.expected()?;
            let (checked, budgets) = audit_cmd::verify(&check.files(&expected), now())?;
            print::audit(&checked.report, &budgets);
        }
        Cmd::Audit(AuditCmd::Report { check, out }) => {
            let expected = check.image.expected()?;
            let path = audit_cmd::report_page(&check.files(&expected), &out, now())?;
            println!("audit report written to {} (self-contained; open it in any browser)", path.display());
        }
    }
    Ok(())
}
