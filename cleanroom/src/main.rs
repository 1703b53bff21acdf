//! `cleanroom`: the command line for data owners, model providers and auditors.

use clap::{Args, Parser, Subcommand};
use cleanroom::client::{connect_attested, BlobClient, Expected};
use cleanroom::keystore::KeyStore;
use cleanroom::ledger::Ledger;
use cleanroom::owner::OwnerKeys;
use protocol::job::QuerySpec;
use protocol::manifest::{Manifest, PublicManifest};
use protocol::policy::Policy;
use protocol::result::{JobResult, RESULT_CONTEXT};
use protocol::sealed::SealedIndex;
use protocol::signing::Signed;
use protocol::wire::{ClientMessage, EnclaveMessage};
use protocol::Digest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use transport::Endpoint;

mod progress;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(name = "cleanroom", about = "cleanroom: owner, provider and auditor tools")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate the synthetic bank table (CSV and Parquet), deterministically.
    Generate {
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Owner: seal a table by its rules file, or scan it and draft the rules.
    Prepare {
        /// The source table: CSV (dialect set in the rules' [input]) or Parquet.
        input: PathBuf,
        /// The rules file (TOML, docs/prepare-rules.md): one rule per source column.
        #[arg(long, required_unless_present = "suggest_rules")]
        rules: Option<PathBuf>,
        /// Scan the table and write a draft rules file here, a comment on every column
        /// saying what the scan found. Nothing is sealed.
        #[arg(long, conflicts_with = "rules")]
        suggest_rules: Option<PathBuf>,
        /// The owner's key file (tokenization key, grant-signing key, data keys); created if absent.
        #[arg(long, required_unless_present = "suggest_rules")]
        keys: Option<PathBuf>,
        /// Output folder: manifest.json (the owner's), public-manifest.json (for providers), chunks/.
        #[arg(long, required_unless_present = "suggest_rules")]
        out: Option<PathBuf>,
        /// Rows per sealed chunk (the host sees only the chunk count).
        #[arg(long, default_value_t = 16_384)]
        rows_per_chunk: u64,
        /// Replace a sealed dataset already in --out.
        #[arg(long)]
        overwrite: bool,
        /// The owner's ledger; the manifest and its digest are appended to its log.
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Rows the external sort holds in memory before spilling a sorted segment to disk
        /// (memory use is about this many transformed rows, whatever the table's size).
        #[arg(long, default_value_t = cleanroom::prepare::DEFAULT_SEGMENT_ROWS)]
        sort_segment_rows: usize,
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
    /// Owner: keys in a PKCS#11 token (HSM).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Owner: the datasets in the owner's log with their retention dates; `--expired` lists
    /// only those past it (their policies' enclaves and `release` refuse them).
    Datasets {
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        expired: bool,
    },
    /// Owner: write or inspect a policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Provider: write a commented query skeleton for a module and dataset, from the public
    /// manifest and the module's ABI section.
    QueryInit {
        /// The owner's public manifest (schema only; `prepare` writes public-manifest.json).
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        module: PathBuf,
        /// Sealed columns for the module's inputs, in ABI order (comma-separated); default:
        /// the first unused input column of each type, in manifest order.
        #[arg(long, value_delimiter = ',')]
        inputs: Option<Vec<String>>,
        #[arg(long)]
        job: String,
        #[arg(long)]
        collaborator: String,
        /// The owner's policy (public): sizes the deadline to the policy's worst case.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Milliseconds from the spend to the reply; default: the policy's worst case.
        #[arg(long)]
        deadline_ms: Option<u64>,
        /// Write a DP fine-tuning query against this label column (the module must be
        /// trainable): starting hyperparameters within the policy's ε, and the trained
        /// model's AUC as its one output.
        #[arg(long)]
        train_label: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Provider: check a query offline and print its plan.
    #[command(subcommand)]
    Query(QueryCmd),
    /// Owner: its diagnostics key, and reading the sealed diagnostics of spent jobs.
    #[command(subcommand)]
    Diagnostics(DiagnosticsCmd),
    /// Provider: create an Ed25519 key; its public half goes into the owner's policy.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Owner: show in plain words what a query computes, its ε and δ, and each output's
    /// expected error, before granting it with `release --query`.
    Review {
        query: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// Group size the errors of group means are shown at.
        #[arg(long, default_value_t = 100)]
        group_size: u64,
    },
    /// Print the simulated platform's PCR0 for an enclave-app binary (SHA-384 of the file).
    Measure { binary: PathBuf },
    /// Upload a sealed dataset (chunks + index) or a file to the host's blob store.
    Upload {
        #[arg(long)]
        blob_api: Endpoint,
        #[arg(long, conflicts_with = "file")]
        sealed: Option<PathBuf>,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Owner: the privacy-budget ledger.
    #[command(subcommand)]
    Budget(BudgetCmd),
    /// Owner: attest the enclave, then release the data key and a budget grant for exactly
    /// one reviewed query, submitted by the key the policy lists for its collaborator.
    Release {
        #[command(flatten)]
        attest: AttestArgs,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// The query the provider proposed (after `cleanroom review`).
        #[arg(long)]
        query: PathBuf,
        /// Seconds the grant stays valid.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Sign the grant with the Ed25519 key in a PKCS#11 token (label KEY-grants).
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
    /// Provider: attest the enclave, submit a module and query, receive the signed result.
    Submit {
        #[command(flatten)]
        attest: AttestArgs,
        #[arg(long)]
        policy_digest: Digest,
        #[arg(long)]
        blob_api: Endpoint,
        #[arg(long)]
        module: PathBuf,
        #[arg(long)]
        query: PathBuf,
        #[arg(long)]
        sealed_index: Digest,
        /// The provider's key file (`cleanroom keygen`).
        #[arg(long)]
        provider_key: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a result: its signature, the evidence for its signing key against the image
    /// and policy you expect, and its receipt (the result's record is in the signed log).
    VerifyResult {
        result: PathBuf,
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Owner: compute the true values on the owner's own machine (no DP; never leaves it).
    OwnerCheck {
        #[arg(long)]
        sealed: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        module: PathBuf,
        #[arg(long)]
        query: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a DP result next to the owner's true values.
    Compare { result: PathBuf, truth: PathBuf },
    /// Fetch, verify or export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Owner: plan DP noise (scale, expected error, 95% interval) or print raw samples.
    #[command(subcommand)]
    Dp(cleanroom::dp_plan::DpCmd),
    /// Provider: check a module's admission, or test it on a local sample (no DP, no attestation).
    #[command(subcommand)]
    Provider(cleanroom::provider::ProviderCmd),
}

#[derive(Args)]
struct AttestArgs {
    /// The host proxy's front door.
    #[arg(long)]
    front_door: Endpoint,
    /// Expected PCR0 (hex), recomputed from source (process mode: `cleanroom measure`).
    /// Nitro and simulated evidence only.
    #[arg(long, required_unless_present_any = ["expect_pcrs", "expect_snp"], conflicts_with_all = ["expect_pcrs", "expect_snp"])]
    expect_pcr0: Option<String>,
    /// Expected boot PCRs from the pcrs.json that `make eif` / `eif-build build` wrote.
    /// Nitro and simulated evidence only.
    #[arg(long, conflicts_with = "expect_snp")]
    expect_pcrs: Option<PathBuf>,
    /// SEV-SNP: the launch reference (JSON: measurement, min_tcb, max_vmpl, optional
    /// policy) that replaces the PCRs; SNP evidence is refused without it.
    #[arg(long, value_name = "MEASUREMENT.json")]
    expect_snp: Option<PathBuf>,
    /// Accept simulated evidence (development only; not hardware-backed).
    #[arg(long)]
    allow_simulated: bool,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum QueryCmd {
    /// Validate a query against the manifest, the policy and (optionally) the module, and
    /// print per output the mechanism, ε/δ, every noise term with its sensitivity, and the
    /// expected 95% error at the group sizes given: the plan the owner's `review` shows.
    Check {
        query: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// The module: checks each `of` against its declared outputs.
        #[arg(long)]
        module: Option<PathBuf>,
        /// Group sizes (rows) to state the expected error at; repeatable.
        #[arg(long = "group-size", default_values_t = [100u64, 1000])]
        group_sizes: Vec<u64>,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum PolicyCmd {
    /// Write a policy for a prepared dataset.
    Init {
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long = "allow-module", required = true)]
        modules: Vec<PathBuf>,
        /// A provider allowed to submit: NAME=ED25519_PUBLIC_KEY_HEX (`cleanroom keygen`).
        #[arg(long = "collaborator", required = true)]
        collaborators: Vec<String>,
        /// An i64 0/1 column that may serve as a label (AUC); no column is a label otherwise.
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long, default_value = "1")]
        max_epsilon: String,
        #[arg(long, default_value = "0.00001")]
        max_delta: String,
        #[arg(long, default_value_t = 50)]
        min_group_size: u64,
        #[arg(long, default_value_t = 1)]
        max_rows_per_unit: u32,
        /// Fuel per privacy unit; a unit that runs out is absent from the job.
        #[arg(long, default_value_t = 40_000)]
        fuel_per_unit: u64,
        /// Longest deadline a query may declare.
        #[arg(long, default_value_t = 600_000)]
        max_deadline_ms: u64,
        /// Let modules read the privacy-unit token column.
        #[arg(long)]
        token_as_input: bool,
        /// Admit DP fine-tuning queries, within the default training bounds (edit the
        /// policy's [training] table to change them).
        #[arg(long)]
        allow_training: bool,
        /// X25519 public key (hex, `cleanroom diagnostics keygen`) that spent jobs' owner-only
        /// diagnostics are sealed to.
        #[arg(long)]
        diagnostics_key: Option<String>,
        /// The owner key is the Ed25519 key in a PKCS#11 token (label KEY-grants).
        #[command(flatten)]
        pkcs11: Pkcs11Args,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a policy's digest (what PCR16 measures).
    Digest { policy: PathBuf },
}

/// A tokenization key in a PKCS#11 token instead of the key file (PIN from
/// `--pkcs11-pin-file` or the CLEANROOM_PKCS11_PIN variable).
#[derive(Args, Clone)]
struct Pkcs11Args {
    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, requires_all = ["pkcs11_token", "pkcs11_key"])]
    pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long)]
    pkcs11_token: Option<String>,
    /// The tokenization key's label in the token.
    #[arg(long)]
    pkcs11_key: Option<String>,
    /// A file (mode 0600) holding the user PIN.
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
}

impl Pkcs11Args {
    fn location(&self) -> Option<cleanroom::hsm_keys::Pkcs11Location> {
        Some(cleanroom::hsm_keys::Pkcs11Location {
            module: self.pkcs11_module.clone()?,
            token: self.pkcs11_token.clone()?,
            key: self.pkcs11_key.clone()?,
            pin_file: self.pkcs11_pin_file.clone(),
        })
    }
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Replace the key file's tokenization key with a fresh one and link the new
    /// population to the old one in the ledger (the same people keep their budget).
    Rotate {
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        ledger: PathBuf,
    },
    /// Generate a tokenization key inside a PKCS#11 token (sensitive, non-extractable) and
    /// print its key id, which names the population in manifests and the ledger.
    Pkcs11Init {
        #[command(flatten)]
        pkcs11: Pkcs11Args,
    },
}

#[derive(Subcommand)]
enum DiagnosticsCmd {
    /// Create an X25519 key; give its public half to `policy init --diagnostics-key`.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Decrypt the owner-only diagnostics in an audit log (what a spent job read, how many
    /// units were absent after which fault, why a job failed).
    Show {
        log: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum BudgetCmd {
    /// Cap the total ε and δ spent on a population (the people behind one token key),
    /// across all collaborators and re-seals.
    Cap {
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        population: String,
        #[arg(long)]
        epsilon: String,
        #[arg(long)]
        delta: String,
    },
    /// Set one collaborator's total ε and δ on a population.
    Set {
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        population: String,
        #[arg(long)]
        collaborator: String,
        #[arg(long)]
        epsilon: String,
        #[arg(long)]
        delta: String,
    },
    /// Show budget spent and remaining.
    Show {
        #[arg(long)]
        ledger: PathBuf,
    },
    /// After a tokenization key is replaced: the new key's population is the same people
    /// as an old one, so its grants spend the old one's budget (what was spent stays spent).
    Link {
        #[arg(long)]
        ledger: PathBuf,
        /// The new key id.
        #[arg(long)]
        population: String,
        /// The key id it replaces.
        #[arg(long)]
        same_people_as: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Download the audit log and the signers' evidence documents from the host into DIR
    /// (DIR/audit.log, DIR/evidence/<sha256>).
    Fetch {
        #[arg(long)]
        blob_api: Endpoint,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a log offline: every record, the Merkle tree against every checkpoint given
    /// (the ledger's, the results', --checkpoint files), every result's inclusion, each
    /// signer's attestation, and the ledger cross-check. Names the first failure.
    Verify(AuditCheck),
    /// Verify, then write the records: an evidence bundle (JSON) or one flat JSON object
    /// per record (--format jsonl, for SIEM ingestion).
    Export {
        #[command(flatten)]
        check: AuditCheck,
        #[arg(long, value_enum, default_value = "bundle")]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify, then write a self-contained HTML report (DIR/index.html) for auditors.
    Report {
        #[command(flatten)]
        check: AuditCheck,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Bundle,
    Jsonl,
}

/// What a verifier expects of every enclave that signed: never taken from the evidence.
#[derive(Args)]
struct ImageArgs {
    /// Expected PCR0 (hex) recomputed from source. Nitro and simulated evidence only.
    #[arg(long, required_unless_present_any = ["expect_pcrs", "expect_snp"], conflicts_with_all = ["expect_pcrs", "expect_snp"])]
    expect_pcr0: Option<String>,
    /// Expected boot PCRs from the pcrs.json that `make eif` / `eif-build build` wrote.
    /// Nitro and simulated evidence only.
    #[arg(long, conflicts_with = "expect_snp")]
    expect_pcrs: Option<PathBuf>,
    /// SEV-SNP: the launch reference (JSON: measurement, min_tcb, max_vmpl, optional
    /// policy) every signer's report must meet; SNP evidence is refused without it.
    #[arg(long, value_name = "MEASUREMENT.json")]
    expect_snp: Option<PathBuf>,
    /// A policy digest the signers may run (`cleanroom policy digest`); repeatable.
    #[arg(long = "policy-digest", required = true)]
    policy_digests: Vec<Digest>,
    /// Accept simulated (development, not hardware-backed) evidence.
    #[arg(long)]
    allow_simulated: bool,
}

/// What an audit check reads and expects.
#[derive(Args)]
struct AuditCheck {
    /// The log file (`audit fetch` output); evidence documents are read from `evidence/`
    /// beside it.
    log: PathBuf,
    /// The owner's ledger: its checkpoint, and every grant ends in a terminal record.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// A checkpoint file (C2SP signed note) someone holds; repeatable.
    #[arg(long = "checkpoint")]
    checkpoints: Vec<PathBuf>,
    /// A result file (`cleanroom submit --out`): its checkpoint and its inclusion; repeatable.
    #[arg(long = "result")]
    results: Vec<PathBuf>,
    #[command(flatten)]
    image: ImageArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
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

fn read(path: &Path) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn read_text(path: &Path) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Write a file atomically so a crash never leaves half a result.
fn write_atomic(path: &Path, data: &[u8]) -> Res {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn parse_hex(s: &str, what: &str) -> Res<Vec<u8>> {
    hex::decode(s.trim()).map_err(|_| format!("{what} must be hex").into())
}

fn load_policy(path: &Path) -> Res<Policy> {
    Ok(Policy::from_toml(&read_text(path)?).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// A provider's view of the dataset: the public manifest, or the owner's full manifest
/// reduced to it.
fn load_public_manifest(path: &Path) -> Res<PublicManifest> {
    let text = read_text(path)?;
    match PublicManifest::from_json(&text) {
        Ok(m) => Ok(m),
        Err(_) => Ok(Manifest::from_json(&text)?.public()),
    }
}

fn load_manifest(path: &Path) -> Res<Manifest> {
    Ok(Manifest::from_json(&read_text(path)?).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn sha384_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA384, data))
}

fn run(cmd: Cmd) -> Res {
    match cmd {
        Cmd::Generate { rows, seed, out } => {
            std::fs::create_dir_all(&out)?;
            let (csv, pq) = (out.join("bank.csv"), out.join("bank.parquet"));
            let s = cleanroom::datagen::generate(rows, seed, &csv, &pq)?;
            println!("generated {rows} customers (seed {seed}): {} and {}", csv.display(), pq.display());
            println!("{s:?}");
        }
        Cmd::Prepare {
            input,
            rules,
            suggest_rules,
            keys,
            out,
            rows_per_chunk,
            overwrite,
            ledger,
            sort_segment_rows,
            pkcs11,
        } => {
            if let Some(draft) = suggest_rules {
                let today = cleanroom::prepare::Date::from_days_since_epoch((now() / 86_400) as i64)
                    .ok_or("clock out of range")?;
                let s = cleanroom::suggest::suggest_rules(&input, &cleanroom::prepare::InputOptions::default(), today)?;
                write_atomic(&draft, s.toml.as_bytes())?;
                println!(
                    "scanned {} of {} rows; draft rules written to {}",
                    s.rows_scanned,
                    s.rows_seen,
                    draft.display()
                );
                if let Some(u) = &s.unit {
                    println!("suggested privacy unit: {u}");
                }
                println!(
                    "review every column (label, transform, roles, reason), then: cleanroom prepare {} --rules {}",
                    input.display(),
                    draft.display()
                );
                return Ok(());
            }
            let (Some(rules), Some(keys), Some(out)) = (rules, keys, out) else {
                return Err("--rules, --keys and --out are required to seal".into());
            };
            let rules_text = std::fs::read_to_string(&rules).map_err(|e| format!("{}: {e}", rules.display()))?;
            let rules =
                cleanroom::prepare::Rules::from_toml(&rules_text).map_err(|e| format!("{}: {e}", rules.display()))?;
            let mut ks = KeyStore::create_or_open(&keys)?;
            let mut opts = cleanroom::prepare::PrepareOptions {
                rows_per_chunk,
                now_unix: now(),
                rules,
                overwrite,
                segment_rows: sort_segment_rows,
                ..Default::default()
            };
            // A new snapshot is compared with the last one of the same dataset in the log.
            if let Some(l) = &ledger {
                opts.previous = Ledger::open(l)?.latest_manifest(&cleanroom::prepare::dataset_name(&input, &opts))?;
            }
            let progress = progress::CliProgress::new();
            let r = match pkcs11.location() {
                Some(loc) => {
                    let token = loc.open()?;
                    let key = cleanroom::hsm_keys::Pkcs11TokenKey(token.find_hmac_key(&loc.key)?);
                    cleanroom::prepare::prepare_with(&input, &key, &loc.home(), &mut ks, &out, &opts, &progress)
                }
                None => {
                    let key = cleanroom::prepare::FileTokenKey::new(&ks);
                    cleanroom::prepare::prepare_with(&input, &key, "file", &mut ks, &out, &opts, &progress)
                }
            };
            progress.finish();
            let r = r?;
            let public = out.join("public-manifest.json");
            write_atomic(&public, r.manifest.public().to_json().as_bytes())?;
            if let Some(l) = ledger {
                let seq = Ledger::open(&l)?.record_manifest(&r.manifest, now())?;
                println!("manifest appended to the owner's log in {} (entry {seq})", l.display());
            }
            print!("{}", cleanroom::prepare::summary(&r, &out));
        }
        Cmd::Policy(PolicyCmd::Init {
            keys,
            manifest,
            modules,
            collaborators,
            labels,
            max_epsilon,
            max_delta,
            min_group_size,
            max_rows_per_unit,
            fuel_per_unit,
            max_deadline_ms,
            token_as_input,
            allow_training,
            diagnostics_key,
            out,
            pkcs11,
        }) => {
            let ks = KeyStore::create_or_open(&keys)?;
            let m = load_manifest(&manifest)?;
            let mut allowed = vec![];
            for p in &modules {
                allowed.push(Digest::of(&read(p)?));
            }
            let collaborators = collaborators
                .iter()
                .map(|c| cleanroom::owner_policy::parse_collaborator(c))
                .collect::<Result<Vec<_>, _>>()?;
            let params = cleanroom::owner_policy::PolicyParams {
                min_group_size,
                max_rows_per_unit,
                max_epsilon_per_job: max_epsilon,
                max_delta_per_job: max_delta,
                fuel_per_unit,
                max_deadline_ms,
                token_as_input,
                diagnostics_key: diagnostics_key.map(|k| parse_hex(&k, "--diagnostics-key")).transpose()?,
                training: allow_training.then(protocol::training::TrainingLimits::default),
                ..Default::default()
            };
            let owner_key = match pkcs11.location() {
                Some(loc) => {
                    let token = loc.open()?;
                    token.find_ed25519_key(&cleanroom::hsm_keys::grant_key_label(&loc.key))?.public_key().to_vec()
                }
                None => ks.signing_key().public_key(),
            };
            let policy = cleanroom::owner_policy::build(&m, owner_key, allowed, collaborators, &labels, &params)?;
            write_atomic(&out, policy.to_toml().as_bytes())?;
            println!("policy written to {}; digest {}", out.display(), policy.digest());
            println!("population {}", policy.population);
        }
        Cmd::Policy(PolicyCmd::Digest { policy }) => println!("{}", load_policy(&policy)?.digest()),
        Cmd::QueryInit { manifest, module, inputs, job, collaborator, policy, deadline_ms, train_label, out } => {
            let m = load_public_manifest(&manifest)?;
            let policy = policy.map(|p| load_policy(&p)).transpose()?;
            // The ABI section only: a module the sandbox would refuse still gets a query
            // (the enclave refuses it, before any spend, as it would any provider's).
            let wasm = read(&module)?;
            let section = sandbox::read_abi(&wasm).map_err(|e| format!("{}: {e}", module.display()))?;
            let abi = cleanroom::query_init::ModuleAbi {
                hash: Digest::of(&wasm),
                input_types: section.inputs.iter().map(|k| k.sealed_type().to_string()).collect(),
                output_names: section.output_names.clone(),
            };
            let total_epsilon = match &policy {
                Some(p) => release::parse_epsilon(&p.max_epsilon_per_job)?,
                None => "1".parse()?,
            };
            let training = match &train_label {
                None => None,
                Some(label) => {
                    let section = sandbox::read_train(&wasm)
                        .map_err(|e| format!("{}: {e}", module.display()))?
                        .ok_or_else(|| format!("{} is not trainable (no cleanroom_train section)", module.display()))?;
                    let limits = match policy.as_ref().map(|p| p.training.clone()) {
                        Some(None) => return Err("the policy admits no training query".into()),
                        Some(Some(l)) => l,
                        None => protocol::training::TrainingLimits::default(),
                    };
                    let units = m.chunks.saturating_mul(m.rows_per_chunk);
                    let choice = cleanroom::query_init::default_training(label, &total_epsilon, &limits, units)?;
                    Some((choice, section.n_params as usize))
                }
            };
            let deadline_ms = match (deadline_ms, &policy) {
                (Some(d), _) => d,
                (None, Some(p)) => {
                    // The starting outputs never select groups; a training query's
                    // schedule adds its worst case. Whole seconds above it.
                    let mut shape = QuerySpec {
                        job_id: String::new(),
                        collaborator: String::new(),
                        dataset_digest: m.dataset_digest,
                        module_hash: Digest::of(&wasm),
                        inputs: vec![],
                        outputs: vec![],
                        delta: None,
                        deadline_ms: 1,
                        training: None,
                    };
                    let plan = match &training {
                        Some((c, n)) => {
                            shape.training = Some(c.spec.clone());
                            // the evaluation output scores every unit again
                            shape.outputs = vec![protocol::job::OutputSpec::auc("evaluation", &c.spec.label, 100, "1")];
                            Some((release::training::TrainingPlan::new(&c.spec, p)?, *n))
                        }
                        None => None,
                    };
                    let s = release::training::schedule(&shape, p, plan.as_ref().map(|(pl, n)| (pl, *n)))
                        .ok_or("the policy's worst case overflows")?;
                    (s.minimum.as_millis() as u64).div_ceil(1000) * 1000 + 1000
                }
                (None, None) => 60_000,
            };
            let choices = cleanroom::query_init::Choices {
                job_id: job,
                collaborator,
                inputs,
                total_epsilon,
                deadline_ms,
                training: training.map(|(c, _)| c),
            };
            let text = cleanroom::query_init::skeleton(&m, &abi, &choices)?;
            write_atomic(&out, text.as_bytes())?;
            println!("query written to {} (commented; check it with `cleanroom query check`)", out.display());
        }
        Cmd::Query(QueryCmd::Check { query, manifest, policy, module, group_sizes }) => {
            let m = load_public_manifest(&manifest)?;
            let policy = load_policy(&policy)?;
            let spec = QuerySpec::from_toml(&read_text(&query)?)?;
            if spec.dataset_digest != m.dataset_digest || policy.dataset_digest != m.dataset_digest {
                return Err("the query, the policy and the manifest name different datasets".into());
            }
            let (outputs, n_params) = match module {
                Some(w) => {
                    let wasm = read(&w)?;
                    let r = cleanroom::provider::check(&wasm, &policy.sandbox)?;
                    if r.hash != spec.module_hash {
                        return Err(format!("the module is {}, the query names {}", r.hash, spec.module_hash).into());
                    }
                    let train = sandbox::read_train(&wasm).map_err(|e| format!("{}: {e}", w.display()))?;
                    (Some(r.output_names), train.map(|t| t.n_params as usize))
                }
                None => (None, None),
            };
            print!("{}", cleanroom::review::plan(&spec, &policy, outputs.as_deref(), n_params, &group_sizes)?);
        }
        Cmd::Diagnostics(DiagnosticsCmd::Keygen { out }) => {
            let public = cleanroom::client::create_diagnostics_key(&out)?;
            println!("diagnostics key written to {} (keep it secret)", out.display());
            println!("public key (for policy init --diagnostics-key): {}", hex::encode(public));
        }
        Cmd::Diagnostics(DiagnosticsCmd::Show { log, key }) => {
            let secret = cleanroom::client::read_diagnostics_key(&key)?;
            let text = read_text(&log)?;
            for line in tlog::replay::lines(&text)? {
                let signed: Signed = serde_json::from_str(line)?;
                let rec: protocol::audit::AuditRecord = signed.decode()?;
                let (Some(d), Some(q), Some(g)) = (&rec.diagnostics, &rec.query_digest, &rec.grant_id) else {
                    continue;
                };
                let sealed: protocol::diagnostics::SealedDiagnostics = protocol::from_cbor(d.as_slice())?;
                let aad = protocol::diagnostics::job_aad(q, g);
                let d = protocol::diagnostics::open(&secret, &aad, &sealed)?;
                println!(
                    "job {} ({}): {} rows, {} units, absent after a fault: {:?}{}",
                    rec.job_id.as_deref().unwrap_or("?"),
                    rec.event,
                    d.rows,
                    d.units,
                    d.faults,
                    d.failure.map(|f| format!("; failed: {f}")).unwrap_or_default()
                );
            }
        }
        Cmd::Datasets { ledger, expired } => {
            let today = now();
            for (seq, at, m) in Ledger::open(&ledger)?.manifests()? {
                let ends = m.retention_until.as_deref().and_then(cleanroom::prepare::Date::parse_iso);
                let past = ends.is_some_and(|d| d.end_unix() <= today);
                if expired && !past {
                    continue;
                }
                println!(
                    "{seq:>4}  {:<20} {}  recorded {at}  retention {}{}",
                    m.dataset_name,
                    m.dataset_digest,
                    m.retention_until.as_deref().unwrap_or("none"),
                    if past { "  EXPIRED" } else { "" }
                );
            }
        }
        Cmd::Budget(BudgetCmd::Link { ledger, population, same_people_as }) => {
            let target = Ledger::open(&ledger)?.link_population(&population, &same_people_as, now())?;
            println!("population {population} now spends the budget of {target} (the same people under a new key)");
        }
        Cmd::Keys(KeysCmd::Rotate { keys, ledger }) => {
            // Link first: a key must never exist without its population's budget behind it.
            let mut ks = KeyStore::open(&keys)?;
            let l = Ledger::open(&ledger)?;
            let next = cleanroom::keystore::TokenKey::generate()?;
            let target = l.link_population(&next.key_id(), &ks.key_id(), now())?;
            let (old, new) = ks.replace_tokenization_key(next)?;
            println!("tokenization key rotated: {old} -> {new}");
            println!("  tokens made with the new key do not link to earlier ones: re-sealed tables share no token with earlier seals,");
            println!(
                "  and the old key is gone from {}, so nobody can re-create the old tokens from this file;",
                keys.display()
            );
            println!(
                "  the budget does not restart: population {new} spends the budget of {target} in {}.",
                ledger.display()
            );
        }
        Cmd::Keys(KeysCmd::Pkcs11Init { pkcs11 }) => {
            let loc = pkcs11.location().ok_or("--pkcs11-module, --pkcs11-token and --pkcs11-key are required")?;
            let token = loc.open()?;
            let key = token.generate_hmac_key(&loc.key)?;
            let grants = token.generate_ed25519_key(&cleanroom::hsm_keys::grant_key_label(&loc.key))?;
            println!("tokenization key {:?} generated in token {:?} (non-extractable)", loc.key, loc.token);
            println!("key id (population): {}", key.key_id());
            println!(
                "grant-signing key {:?} generated (non-extractable); public key: {}",
                cleanroom::hsm_keys::grant_key_label(&loc.key),
                hex::encode(grants.public_key())
            );
        }
        Cmd::Keygen { out } => {
            let k = cleanroom::client::create_provider_key(&out)?;
            println!("provider key written to {} (keep it secret)", out.display());
            println!("public key (give it to the owner for the policy): {}", hex::encode(k.public_key()));
        }
        Cmd::Review { query, policy, group_size } => {
            let policy = load_policy(&policy)?;
            let spec = QuerySpec::from_toml(&read_text(&query)?)?;
            print!("{}", cleanroom::review::review(&spec, &policy, group_size)?);
        }
        Cmd::Measure { binary } => println!("{}", sha384_hex(&read(&binary)?)),
        Cmd::Upload { blob_api, sealed, file } => {
            let mut c = BlobClient::connect(&blob_api)?;
            if let Some(dir) = sealed {
                let m = load_manifest(&dir.join("manifest.json"))?;
                let paths: Vec<PathBuf> =
                    (0..m.chunks).map(|i| dir.join("chunks").join(cleanroom::prepare::chunk_file_name(i))).collect();
                let total = paths.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
                let progress = progress::CliProgress::new();
                let mut chunks = vec![];
                let mut sent = 0u64;
                for p in &paths {
                    let blob = read(p)?;
                    sent += blob.len() as u64;
                    chunks.push(c.put(blob)?);
                    cleanroom::prepare::Progress::update(&progress, cleanroom::prepare::Phase::Upload, sent, total);
                }
                progress.finish();
                let index = SealedIndex { dataset_digest: m.dataset_digest, chunks, rows_per_chunk: m.rows_per_chunk };
                let d = c.put(protocol::to_cbor(&index))?;
                eprintln!("uploaded {} sealed chunks; sealed index:", m.chunks);
                println!("{d}");
            } else if let Some(f) = file {
                println!("{}", c.put(read(&f)?)?);
            } else {
                return Err("give --sealed DIR or --file FILE".into());
            }
        }
        Cmd::Budget(BudgetCmd::Cap { ledger, population, epsilon, delta }) => {
            let l = Ledger::open(&ledger)?;
            l.set_population_cap(&population, &epsilon, &delta, now())?;
            let p = l.population(&population)?;
            println!(
                "population {population}: cap ε {} δ {}; spent ε {} δ {}",
                p.epsilon.total, p.delta.total, p.epsilon.spent, p.delta.spent
            );
        }
        Cmd::Budget(BudgetCmd::Set { ledger, population, collaborator, epsilon, delta }) => {
            let l = Ledger::open(&ledger)?;
            l.set_budget(&population, &collaborator, &epsilon, &delta, now())?;
            let b = l.budget(&population, &collaborator)?;
            println!(
                "budget for {collaborator} on population {population}: ε {} (remaining {}), δ {} (remaining {})",
                b.epsilon.total, b.epsilon.remaining, b.delta.total, b.delta.remaining
            );
        }
        Cmd::Budget(BudgetCmd::Show { ledger }) => {
            let l = Ledger::open(&ledger)?;
            println!("populations (caps across every collaborator and re-seal):");
            println!(
                "  {:<34} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7}",
                "population", "cap ε", "spent ε", "cap δ", "spent δ", "collab.", "grants"
            );
            for p in l.populations()? {
                println!(
                    "  {:<34} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7}",
                    p.population,
                    p.epsilon.total.to_string(),
                    p.epsilon.spent.to_string(),
                    p.delta.total.to_string(),
                    p.delta.spent.to_string(),
                    p.collaborators,
                    p.grants
                );
            }
            println!("collaborators:");
            println!(
                "  {:<34} {:<14} {:>8} {:>8} {:>10} {:>10} {:>7}",
                "population", "collaborator", "total ε", "spent ε", "total δ", "spent δ", "grants"
            );
            for b in l.budgets()? {
                println!(
                    "  {:<34} {:<14} {:>8} {:>8} {:>10} {:>10} {:>7}",
                    b.population,
                    b.collaborator,
                    b.epsilon.total.to_string(),
                    b.epsilon.spent.to_string(),
                    b.delta.total.to_string(),
                    b.delta.spent.to_string(),
                    b.grants
                );
            }
        }
        Cmd::Release { attest, keys, ledger, policy, query, ttl, pkcs11 } => {
            let ks = KeyStore::open(&keys)?;
            let policy = load_policy(&policy)?;
            let spec = QuerySpec::from_toml(&read_text(&query)?)?;
            cleanroom::owner::check_retention(&policy, now())?;
            // The owner grants exactly what it reviewed.
            print!("{}", cleanroom::review::review(&spec, &policy, 100)?);
            let expect = expected(&attest, policy.digest())?;
            let mut session = connect_attested(&attest.front_door, &expect)?;
            print_verdict(&session.verdict, &session.platform, session.simulated);
            let mut ledger = Ledger::open(&ledger)?;
            // The grant is signed in the PKCS#11 token when one is named, else by the key file.
            let (token, hsm_signer, file_signer);
            let signer: &dyn protocol::signing::Signer = match pkcs11.location() {
                Some(loc) => {
                    token = loc.open()?;
                    hsm_signer = cleanroom::hsm_keys::Pkcs11GrantSigner(
                        token.find_ed25519_key(&cleanroom::hsm_keys::grant_key_label(&loc.key))?,
                    );
                    &hsm_signer
                }
                None => {
                    file_signer = ks.signing_key();
                    &file_signer
                }
            };
            let keys = OwnerKeys { store: &ks, grant_signer: signer };
            let r = cleanroom::owner::release(&mut session, keys, &mut ledger, &policy, &spec, now(), ttl)?;
            match r.checked_from {
                Some(old) => println!(
                    "audit log: the enclave proved its log ({} records) extends the checkpoint the ledger held ({old} records)",
                    r.checkpoint.size
                ),
                None => println!("audit log: no checkpoint held yet; the enclave's log has {} records", r.checkpoint.size),
            }
            let grant = &r.grant;
            println!(
                "ledger: granted ε {} δ {} for query {} (job {}) to {}; collaborator ε remaining {} -> {}, population ε remaining {} -> {}",
                grant.epsilon,
                grant.delta,
                grant.query_digest,
                grant.job_id,
                grant.collaborator,
                grant.ledger.collaborator_epsilon_before,
                grant.ledger.collaborator_epsilon_after,
                grant.ledger.population_epsilon_before,
                grant.ledger.population_epsilon_after
            );
            println!(
                "data key and grant {} released to the attested enclave; logged as record {} (checkpoint of {} records kept in the ledger)",
                grant.grant_id,
                r.receipt.index + 1,
                r.checkpoint.size
            );
        }
        Cmd::Submit { attest, policy_digest, blob_api, module, query, sealed_index, provider_key, out } => {
            let spec = QuerySpec::from_toml(&read_text(&query)?)?;
            let provider = cleanroom::client::read_provider_key(&provider_key)?;
            let wasm = read(&module)?;
            if Digest::of(&wasm) != spec.module_hash {
                return Err(format!("{} is not the module named in the query", module.display()).into());
            }
            let expect = expected(&attest, policy_digest)?;
            let mut session = connect_attested(&attest.front_door, &expect)?;
            print_verdict(&session.verdict, &session.platform, session.simulated);
            let module_blob = BlobClient::connect(&blob_api)?.put(wasm)?;
            println!(
                "module {module_blob} uploaded; submitting job {} (the reply comes at its {} ms deadline)",
                spec.job_id, spec.deadline_ms
            );
            let proof = session.submission_proof(&provider, &spec.digest());
            let reply = session.call(&ClientMessage::SubmitJob {
                spec: Box::new(spec),
                module_blob,
                sealed_index_blob: sealed_index,
                proof,
            })?;
            let (result, receipt) = match reply {
                EnclaveMessage::JobResult { result, receipt } => (result, receipt),
                EnclaveMessage::JobFailed { receipt } => {
                    if let Some(receipt) = receipt {
                        let v = tlog::verify_receipt(&receipt, &session.public_key)?;
                        let path = out.with_extension("failed-receipt.json");
                        write_atomic(&path, serde_json::to_string_pretty(&receipt)?.as_bytes())?;
                        eprintln!(
                            "the failure is logged as record {} (checkpoint of {} records in {})",
                            receipt.index + 1,
                            v.checkpoint.size,
                            path.display()
                        );
                    }
                    return Err(
                        "job_failed: the job failed after its grant was spent (by design, nothing more is said)".into(),
                    );
                }
                _ => return Err("unexpected reply to job submission".into()),
            };
            // The result must be signed by the key we just attested, and logged by it.
            result.verify(RESULT_CONTEXT, &session.public_key)?;
            let v = tlog::verify_receipt(&receipt, &session.public_key)?;
            if !v.record.event.answers_with_result()
                || v.record.result_digest != Some(Digest::of(result.payload.as_slice()))
            {
                return Err("the enclave's receipt does not log this result".into());
            }
            let decoded: JobResult = result.decode()?;
            let file = cleanroom::audit::ResultFile { result, receipt };
            write_atomic(&out, serde_json::to_string_pretty(&file)?.as_bytes())?;
            println!(
                "signed result for job {} received ({} outputs, ε spent {}{}); logged as record {} under a checkpoint of {} records; written to {}",
                decoded.job_id,
                decoded.outputs.len(),
                decoded.epsilon_spent,
                if decoded.simulated { ", SIMULATED attestation" } else { "" },
                file.receipt.index + 1,
                v.checkpoint.size,
                out.display()
            );
        }
        Cmd::VerifyResult { result, image } => {
            let file: cleanroom::audit::ResultFile = serde_json::from_slice(&read(&result)?)
                .map_err(|e| format!("{}: not a result file: {e}", result.display()))?;
            let expected = expected_image(&image)?;
            let r = cleanroom::audit::verify_result(&file, &expected)?;
            let v = &r.verdict;
            let r = &r.result;
            println!(
                "result for job {} is signed by an attested enclave key ({}{}) running the expected image and policy",
                r.job_id,
                r.platform,
                if v.simulated { ", SIMULATED: not hardware-backed" } else { "" }
            );
            println!(
                "  logged as record {} under a checkpoint of {} records signed by the same key",
                file.receipt.index + 1,
                tlog::checkpoint::parse(&file.receipt.checkpoint)?.checkpoint.size
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
        Cmd::OwnerCheck { sealed, keys, policy, module, query, out } => {
            let ks = KeyStore::open(&keys)?;
            let policy = load_policy(&policy)?;
            let spec = QuerySpec::from_toml(&read_text(&query)?)?;
            let key = ks.data_key(&policy.dataset_digest).ok_or("no data key for the policy's dataset")?;
            let batches = cleanroom::prepare::open_sealed(&sealed, &key)?;
            let run = cleanroom::local_run::run_exact(&batches, &read(&module)?, &spec, &policy)?;
            let mut doc = serde_json::json!({
                "label": "owner's own check: exact values from plaintext, computed on the owner's machine; not DP, never released",
                "rows": run.rows,
                "units": run.report.units,
                "units_absent": run.report.units_absent,
                "outputs": run.report.outputs,
            });
            if let Some(t) = &run.training {
                doc["training"] = serde_json::json!({
                    "label": "non-private reference: the query's sampled steps and optimizer without clipping or noise; the outputs above use its parameters",
                    "parameter_names": t.names,
                    "pretrained_parameters": t.pretrained,
                    "nonprivate_parameters": t.trained,
                    "pretrained_outputs": t.pretrained_report.outputs,
                });
            }
            write_atomic(&out, serde_json::to_string_pretty(&doc)?.as_bytes())?;
            println!(
                "owner's exact check over {} rows ({} units, {} absent after a fault) written to {}",
                run.rows,
                run.report.units,
                run.report.units_absent,
                out.display()
            );
        }
        Cmd::Compare { result, truth } => compare(&result, &truth)?,
        Cmd::Dp(c) => cleanroom::dp_plan::run(c)?,
        Cmd::Provider(c) => cleanroom::provider::run(c)?,
        Cmd::Audit(AuditCmd::Fetch { blob_api, out }) => {
            let n = cleanroom::audit_files::fetch(&mut BlobClient::connect(&blob_api)?, &out)?;
            println!(
                "{} audit records written to {} (evidence documents in {})",
                n.records,
                out.join("audit.log").display(),
                out.join("evidence").display()
            );
        }
        Cmd::Audit(AuditCmd::Export { check, format, out }) => audit_export(check, format, &out)?,
        Cmd::Audit(AuditCmd::Verify(check)) => {
            let (report, ledger, _) = audit_check(&check)?;
            print!("{}", cleanroom::audit_files::summary_text(&report));
            if let Some(l) = &ledger {
                for b in l.budgets()? {
                    println!(
                        "  ledger: {} on population {}: spent ε {} of {}, δ {} of {}",
                        b.collaborator, b.population, b.epsilon.spent, b.epsilon.total, b.delta.spent, b.delta.total
                    );
                }
            }
        }
        Cmd::Audit(AuditCmd::Report { check, out }) => {
            let (report, _, _) = audit_check(&check)?;
            let page = cleanroom::audit_report::render(&report, now());
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let path = out.join("index.html");
            write_atomic(&path, page.as_bytes())?;
            println!("audit report written to {} (self-contained; open it in any browser)", path.display());
        }
    }
    Ok(())
}

/// Verify the log with everything the check names; the report, and the ledger if given.
fn audit_check(check: &AuditCheck) -> Res<(cleanroom::audit::AuditReport, Option<Ledger>, String)> {
    let log_text = read_text(&check.log)?;
    let evidence = cleanroom::audit_files::read_evidence_dir(&check.log)?;
    let expected = expected_image(&check.image)?;
    let ledger = check.ledger.as_ref().map(|p| Ledger::open(p)).transpose()?;
    let ledger_view = match &ledger {
        Some(l) => Some(cleanroom::audit::LedgerView { grants: l.grants()?, checkpoints: l.checkpoints()? }),
        None => None,
    };
    let mut checkpoints = vec![];
    for p in &check.checkpoints {
        checkpoints.push(cleanroom::audit::HeldNote { holder: p.display().to_string(), text: read_text(p)? });
    }
    let mut results = vec![];
    for p in &check.results {
        let f: cleanroom::audit::ResultFile =
            serde_json::from_slice(&read(p)?).map_err(|e| format!("{}: not a result file: {e}", p.display()))?;
        results.push((p.display().to_string(), f));
    }
    let report = cleanroom::audit::verify(cleanroom::audit::AuditInputs {
        log_text: &log_text,
        evidence: &evidence,
        expected: &expected,
        checkpoints,
        results,
        ledger: ledger_view,
        now: now(),
    })?;
    Ok((report, ledger, log_text))
}

fn audit_export(check: AuditCheck, format: ExportFormat, out: &Path) -> Res {
    // Verified first: nothing is written for a log that does not verify.
    let (report, ledger, log_text) = audit_check(&check)?;
    let records = cleanroom::audit::flat_records(&log_text)?;
    match format {
        ExportFormat::Jsonl => {
            let text: String = records.iter().map(|r| format!("{r}\n")).collect();
            write_atomic(out, text.as_bytes())?;
            println!("{} records written to {} as JSON lines", report.records, out.display());
        }
        ExportFormat::Bundle => {
            let grants = match &ledger {
                Some(l) => l
                    .grants()?
                    .iter()
                    .map(|g| {
                        serde_json::json!({"grant_id": g.grant_id, "job_id": g.job_id, "query_digest": g.query_digest,
                        "dataset": g.dataset, "population": g.population, "collaborator": g.collaborator,
                        "epsilon": g.epsilon, "delta": g.delta, "issued_at": g.issued_at, "expires_at": g.expires_at})
                    })
                    .collect::<Vec<_>>(),
                None => vec![],
            };
            let bundle = serde_json::json!({
                "format": "cleanroom-evidence-bundle/v2",
                "exported_at": now(),
                "verification": report,
                "records": records,
                "log": log_text,
                "ledger": {"grants": grants},
            });
            write_atomic(out, serde_json::to_string_pretty(&bundle)?.as_bytes())?;
            println!("evidence bundle with {} records written to {}", report.records, out.display());
        }
    }
    Ok(())
}

/// The image the owner expects, from exactly one of --expect-pcr0, --expect-pcrs, --expect-snp.
fn image_reference(
    pcr0: &Option<String>,
    pcrs: &Option<PathBuf>,
    snp: &Option<PathBuf>,
) -> Res<cleanroom::client::ImageReference> {
    use cleanroom::client::ImageReference;
    Ok(match (pcr0, pcrs, snp) {
        (Some(hex), None, None) => {
            ImageReference::Pcrs(std::collections::BTreeMap::from([(0u16, parse_hex(hex, "--expect-pcr0")?)]))
        }
        (None, Some(file), None) => ImageReference::Pcrs(
            cleanroom::client::read_pcrs_json(&read_text(file)?).map_err(|e| format!("{}: {e}", file.display()))?,
        ),
        (None, None, Some(file)) => ImageReference::Snp(
            attestation_verifier::SnpReference::from_json(&read_text(file)?)
                .map_err(|e| format!("{}: {e}", file.display()))?,
        ),
        (None, None, None) => return Err("give --expect-pcr0 HEX, --expect-pcrs pcrs.json or --expect-snp FILE".into()),
        _ => return Err("give only one of --expect-pcr0, --expect-pcrs, --expect-snp".into()),
    })
}

fn expected(a: &AttestArgs, policy_digest: Digest) -> Res<Expected> {
    Ok(Expected {
        image: image_reference(&a.expect_pcr0, &a.expect_pcrs, &a.expect_snp)?,
        policy_digest,
        allow_simulated: a.allow_simulated,
        max_age: Duration::from_secs(300),
    })
}

fn expected_image(a: &ImageArgs) -> Res<tlog::signer::ExpectedImage> {
    Ok(tlog::signer::ExpectedImage {
        image: image_reference(&a.expect_pcr0, &a.expect_pcrs, &a.expect_snp)?,
        policies: a.policy_digests.clone(),
        allow_simulated: a.allow_simulated,
    })
}

fn print_verdict(v: &attestation_verifier::Verdict, platform: &str, simulated: bool) {
    if simulated {
        println!("attestation: SIMULATED evidence accepted because --allow-simulated was given (development only, not hardware-backed)");
    }
    println!("attestation verified ({platform}): checks passed: {}", v.checks_passed.join(", "));
}

/// A training result next to the owner's reference: the DP parameters beside the pretrained
/// and the non-private ones, and each DP evaluation value beside the exact value with the
/// pretrained and with the non-private parameters (the owner's machine only).
fn compare_training(
    r: &JobResult,
    reference: &serde_json::Value,
    nonprivate_outputs: &[protocol::result::OutputRelease],
) -> Res {
    let floats = |k: &str| -> Vec<f64> { serde_json::from_value(reference[k].clone()).unwrap_or_default() };
    let (pre, non) = (floats("pretrained_parameters"), floats("nonprivate_parameters"));
    let pretrained_outputs: Vec<protocol::result::OutputRelease> =
        serde_json::from_value(reference["pretrained_outputs"].clone()).unwrap_or_default();
    println!("DP fine-tuning (released to the provider) vs the owner's own reference (never released)");
    for o in &r.outputs {
        println!("\n{} ({}, ε = {})", o.name, o.mechanism, o.epsilon);
        if o.class == "dp_sgd" {
            println!("  {:<10} {:>12} {:>12} {:>14}", "parameter", "pretrained", "DP-SGD", "non-private");
            for (i, v) in o.values.iter().enumerate() {
                let at = |p: &[f64]| p.get(i).map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
                println!("  {:<10} {:>12} {:>12.4} {:>14}", v.key, at(&pre), v.value, at(&non));
            }
            continue;
        }
        println!(
            "  {:<10} {:<9} {:>22} {:>22} {:>26}",
            "key", "statistic", "pretrained (exact)", "DP-SGD model (DP)", "non-private model (exact)"
        );
        let exact = |outputs: &[protocol::result::OutputRelease], v: &protocol::result::ReleasedValue| {
            outputs
                .iter()
                .find(|x| x.name == o.name)
                .and_then(|e| e.values.iter().find(|x| x.key == v.key && x.stat == v.stat))
                .map(|x| format!("{:.4}", x.value))
                .unwrap_or_else(|| "-".into())
        };
        for v in o.values.iter().take(12) {
            println!(
                "  {:<10} {:<9} {:>22} {:>22.4} {:>26}",
                v.key,
                v.stat,
                exact(&pretrained_outputs, v),
                v.value,
                exact(nonprivate_outputs, v)
            );
        }
    }
    Ok(())
}

fn compare(result: &Path, truth: &Path) -> Res {
    let file: cleanroom::audit::ResultFile =
        serde_json::from_slice(&read(result)?).map_err(|e| format!("{}: not a result file: {e}", result.display()))?;
    let r: JobResult = file.result.decode()?;
    let t: serde_json::Value = serde_json::from_slice(&read(truth)?)?;
    let truth_outputs: Vec<protocol::result::OutputRelease> = serde_json::from_value(t["outputs"].clone())?;
    if !t["training"].is_null() {
        return compare_training(&r, &t["training"], &truth_outputs);
    }
    println!("DP result (released to the provider) vs the owner's own exact check (never released)");
    for o in &r.outputs {
        let exact = truth_outputs.iter().find(|x| x.name == o.name);
        println!("\n{} ({}, ε = {}, noise scale {})", o.name, o.mechanism, o.epsilon, o.noise_scale);
        println!(
            "  {:<16} {:<13} {:>14} {:>27} {:>14} {:>10}",
            "key", "statistic", "DP value", "stated 95% interval", "true value", "abs error"
        );
        let show = o.values.len().min(12);
        for v in &o.values[..show] {
            let tv = exact.and_then(|e| e.values.iter().find(|x| x.key == v.key && x.stat == v.stat)).map(|x| x.value);
            let ci = v.ci95.map(|[lo, hi]| format!("[{lo:.4}, {hi:.4}]")).unwrap_or_else(|| "(see note)".into());
            match tv {
                Some(tv) => println!(
                    "  {:<16} {:<13} {:>14.4} {:>27} {:>14.4} {:>10.4}",
                    v.key,
                    v.stat,
                    v.value,
                    ci,
                    tv,
                    (v.value - tv).abs()
                ),
                None => println!("  {:<16} {:<13} {:>14.4} {:>27} {:>14} {:>10}", v.key, v.stat, v.value, ci, "-", "-"),
            }
        }
        if o.values.len() > show {
            println!("  … {} more", o.values.len() - show);
        }
        if let Some(e) = exact {
            if e.values.len() != o.values.len() {
                println!(
                    "  {} groups released under DP partition selection; {} pass the minimum size exactly (owner's figure)",
                    o.values.len(),
                    e.values.len()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod expect_snp_args {
    //! `--expect-snp` on every command that attests or checks signers, exclusive with the
    //! PCR flags; the file is parsed into the checked reference.
    use super::*;
    use cleanroom::client::ImageReference;

    const D: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cleanroom").chain(args.iter().copied()))
    }

    fn commands(image: &[&str]) -> Vec<Vec<String>> {
        let attest = ["--front-door", "tcp:127.0.0.1:1"];
        let mut out: Vec<Vec<&str>> = vec![
            [&["release"][..], &attest, image, &["--keys", "k", "--ledger", "l", "--policy", "p", "--query", "q"]]
                .concat(),
            [
                &["submit"][..],
                &attest,
                image,
                &["--policy-digest", D, "--blob-api", "tcp:127.0.0.1:2", "--module", "m"],
                &["--query", "q", "--sealed-index", D, "--provider-key", "k", "--out", "o"],
            ]
            .concat(),
            [&["verify-result", "r.json"][..], image, &["--policy-digest", D]].concat(),
        ];
        for sub in [
            &["audit", "verify", "a.log"][..],
            &["audit", "report", "a.log", "--out", "o"],
            &["audit", "export", "a.log", "--out", "o"],
        ] {
            out.push([sub, image, &["--policy-digest", D]].concat());
        }
        out.into_iter().map(|v| v.into_iter().map(str::to_owned).collect()).collect()
    }

    #[test]
    fn every_attesting_command_takes_expect_snp_and_refuses_it_beside_pcrs() {
        let pcr0 = "ab".repeat(48);
        for image in [&["--expect-snp", "ref.json"][..], &["--expect-pcr0", &pcr0], &["--expect-pcrs", "pcrs.json"]] {
            for c in commands(image) {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                assert!(parse(&args).is_ok(), "{args:?}: {}", parse(&args).err().unwrap());
            }
        }
        for both in [
            &["--expect-snp", "ref.json", "--expect-pcr0", &pcr0][..],
            &["--expect-snp", "ref.json", "--expect-pcrs", "pcrs.json"],
        ] {
            for c in commands(both) {
                let args: Vec<&str> = c.iter().map(String::as_str).collect();
                let e = parse(&args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
                assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{args:?}");
            }
        }
        for c in commands(&[]) {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            let e = parse(&args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{args:?}");
        }
    }

    #[test]
    fn the_file_becomes_the_checked_reference() {
        let dir = std::env::temp_dir().join(format!("expect-snp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ref.json");
        let m = "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3";
        let text = format!(
            r#"{{"measurement":"{m}","min_tcb":{{"bootloader":4,"tee":0,"snp":27,"microcode":222}},"max_vmpl":1}}"#
        );
        std::fs::write(&good, text).unwrap();
        match image_reference(&None, &None, &Some(good.clone())).unwrap() {
            ImageReference::Snp(r) => {
                assert_eq!(hex::encode(r.measurement), m);
                assert_eq!((r.min_tcb.snp, r.min_tcb.microcode, r.max_vmpl), (27, 222, 1));
                assert!(!r.allow_debug());
            }
            other => panic!("{other:?}"),
        }
        let bad = dir.join("bad.json");
        std::fs::write(&bad, format!(r#"{{"measurement":"{m}","max_vmpl":0}}"#)).unwrap();
        let e = image_reference(&None, &None, &Some(bad)).unwrap_err().to_string();
        assert!(e.contains("min_tcb"), "{e}");
        assert!(image_reference(&Some("00".into()), &None, &Some(good)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
