//! The command line: clap's types, and the conversions from them to the library's
//! requests. Nothing here decides anything.

use audit::files::AuditFiles;
use clap::{Args, Parser, Subcommand};
use cleanroom::client::ImageReference;
use cleanroom::commands::KeyHome;
use cleanroom::dp_plan::PlanArgs;
use cleanroom::Error;
use owner_prep::hsm_keys::Pkcs11Location;
use protocol::Digest;
use std::path::PathBuf;
use tlog::signer::ExpectedImage;
use transport::Endpoint;

#[derive(Parser)]
#[command(name = "cleanroom", about = "cleanroom: owner, provider and auditor tools")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
        #[arg(long, default_value_t = owner_prep::prepare::DEFAULT_SEGMENT_ROWS)]
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
    QueryInit(QueryInitArgs),
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
        /// Run the query across shard enclaves (docs/scale-out.md): each is attested
        /// against the same image and policy, then named to the enclave at --front-door,
        /// which coordinates. Once per shard, in order.
        #[arg(long = "shard")]
        shards: Vec<Endpoint>,
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
    Dp(DpCmd),
    /// Provider: check a module's admission, or test it on a local sample (no DP, no attestation).
    #[command(subcommand)]
    Provider(ProviderCmd),
}

#[derive(Args)]
pub struct AttestArgs {
    /// The host proxy's front door.
    #[arg(long)]
    pub front_door: Endpoint,
    #[command(flatten)]
    pub image: ImageFlags,
    /// Accept simulated evidence (development only; not hardware-backed).
    #[arg(long)]
    pub allow_simulated: bool,
    /// Accept UNSIGNED evidence from QEMU's emulated NSM (the `nitro-enclave` machine,
    /// `make nitro-smoke`): no AWS signature is checked, every claim still is. Test only.
    #[arg(long)]
    pub allow_emulated_nsm: bool,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum QueryCmd {
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
pub enum PolicyCmd {
    /// Write a policy for a prepared dataset.
    Init(PolicyInitArgs),
    /// Print a policy's digest (what PCR16 measures).
    Digest { policy: PathBuf },
}

/// A tokenization key in a PKCS#11 token instead of the key file (PIN from
/// `--pkcs11-pin-file` or the CLEANROOM_PKCS11_PIN variable).
#[derive(Args, Clone)]
pub struct Pkcs11Args {
    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, requires_all = ["pkcs11_token", "pkcs11_key"])]
    pub pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long)]
    pub pkcs11_token: Option<String>,
    /// The tokenization key's label in the token.
    #[arg(long)]
    pub pkcs11_key: Option<String>,
    /// A file (mode 0600) holding the user PIN.
    #[arg(long)]
    pub pkcs11_pin_file: Option<PathBuf>,
}

impl Pkcs11Args {
    pub fn location(&self) -> Option<Pkcs11Location> {
        Some(Pkcs11Location {
            module: self.pkcs11_module.clone()?,
            token: self.pkcs11_token.clone()?,
            key: self.pkcs11_key.clone()?,
            pin_file: self.pkcs11_pin_file.clone(),
        })
    }

    /// The token when one is named, else the key file.
    pub fn key_home(&self) -> KeyHome {
        self.location().map_or(KeyHome::File, KeyHome::Pkcs11)
    }
}

#[derive(Subcommand)]
pub enum KeysCmd {
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
pub enum DiagnosticsCmd {
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
pub enum BudgetCmd {
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
pub enum AuditCmd {
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
pub enum ExportFormat {
    Bundle,
    Jsonl,
}

impl From<ExportFormat> for cleanroom::commands::audit::ExportFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Bundle => Self::Bundle,
            ExportFormat::Jsonl => Self::Jsonl,
        }
    }
}

/// The image an enclave must run, exactly one of three ways, recomputed from source and
/// never taken from the evidence.
#[derive(Args)]
pub struct ImageFlags {
    /// Expected PCR0 (hex), recomputed from source (process mode: `cleanroom measure`).
    /// Nitro and simulated evidence only.
    #[arg(long, required_unless_present_any = ["expect_pcrs", "expect_snp"], conflicts_with_all = ["expect_pcrs", "expect_snp"])]
    pub expect_pcr0: Option<String>,
    /// Expected boot PCRs from the pcrs.json that `make eif` / `eif-build build` wrote.
    /// Nitro and simulated evidence only.
    #[arg(long, conflicts_with = "expect_snp")]
    pub expect_pcrs: Option<PathBuf>,
    /// SEV-SNP: the launch reference (JSON: measurement, min_tcb, max_vmpl, optional
    /// policy; `snp-measure` recomputes the measurement) that replaces the PCRs; SNP
    /// evidence is refused without it.
    #[arg(long, value_name = "MEASUREMENT.json")]
    pub expect_snp: Option<PathBuf>,
}

impl ImageFlags {
    pub fn reference(&self) -> Result<ImageReference, Error> {
        cleanroom::client::image_reference(
            self.expect_pcr0.as_deref(),
            self.expect_pcrs.as_deref(),
            self.expect_snp.as_deref(),
        )
    }
}

/// What a verifier expects of every enclave that signed: never taken from the evidence.
#[derive(Args)]
pub struct ImageArgs {
    #[command(flatten)]
    pub image: ImageFlags,
    /// A policy digest the signers may run (`cleanroom policy digest`); repeatable.
    #[arg(long = "policy-digest", required = true)]
    pub policy_digests: Vec<Digest>,
    /// Accept simulated (development, not hardware-backed) evidence.
    #[arg(long)]
    pub allow_simulated: bool,
    /// Accept UNSIGNED evidence from QEMU's emulated NSM (test only; no AWS signature).
    #[arg(long)]
    pub allow_emulated_nsm: bool,
}

/// What an audit check reads and expects.
#[derive(Args)]
pub struct AuditCheck {
    /// The log file (`audit fetch` output); evidence documents are read from `evidence/`
    /// beside it.
    pub log: PathBuf,
    /// The owner's ledger: its checkpoint, and every grant ends in a terminal record.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// A checkpoint file (C2SP signed note) someone holds; repeatable.
    #[arg(long = "checkpoint")]
    pub checkpoints: Vec<PathBuf>,
    /// A result file (`cleanroom submit --out`): its checkpoint and its inclusion; repeatable.
    #[arg(long = "result")]
    pub results: Vec<PathBuf>,
    #[command(flatten)]
    pub image: ImageArgs,
}

/// `cleanroom provider ...`
#[derive(Debug, clap::Subcommand)]
pub enum ProviderCmd {
    /// Admit a module exactly as the enclave would (imports, exports, limits, ABI version)
    /// and print the hash the owner lists in the policy.
    Check {
        module: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a module and query over a local CSV sample, through the same column preparation,
    /// sandbox and limits as the enclave, and print the exact (not DP) aggregates.
    Test {
        module: PathBuf,
        /// A sample with the owner's source columns (e.g. from `cleanroom generate`).
        #[arg(long)]
        csv: PathBuf,
        /// The query spec (e.g. from `cleanroom query-init`).
        #[arg(long)]
        query: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
        /// Groups smaller than this are withheld (the owner's policy may set more).
        #[arg(long, default_value_t = 1)]
        min_group_size: u64,
        /// Rows kept per privacy unit before aggregation.
        #[arg(long, default_value_t = 1)]
        max_rows_per_unit: u32,
        /// Also write the exact outputs as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Sandbox limits; the defaults are those `cleanroom policy init` writes.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Fuel the module may spend on one privacy unit; a unit that runs out is absent.
    #[arg(long, default_value_t = protocol::policy::defaults::FUEL_PER_UNIT)]
    pub fuel_per_unit: u64,
    #[arg(long, default_value_t = protocol::policy::defaults::MEMORY_LIMIT_BYTES >> 20)]
    pub memory_limit_mib: u64,
    #[arg(long, default_value_t = protocol::policy::defaults::MAX_MODULE_BYTES >> 20)]
    pub max_module_mib: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> protocol::policy::SandboxLimits {
        protocol::policy::SandboxLimits {
            fuel_per_unit: self.fuel_per_unit,
            memory_limit_bytes: self.memory_limit_mib.saturating_mul(1 << 20),
            max_module_bytes: self.max_module_mib.saturating_mul(1 << 20),
        }
    }
}

/// `cleanroom dp ...`
#[derive(Subcommand, Debug)]
pub enum DpCmd {
    /// Noise scale, expected error and 95% interval of a mechanism; or raw noise samples; or
    /// the (ε, δ) of DP-SGD.
    Plan(PlanArgs),
}

impl AttestArgs {
    pub fn image(&self) -> Result<ImageReference, Error> {
        self.image.reference()
    }
}

impl ImageArgs {
    pub fn expected(&self) -> Result<ExpectedImage, Error> {
        Ok(ExpectedImage {
            image: self.image.reference()?,
            policies: self.policy_digests.clone(),
            allow_simulated: self.allow_simulated,
            allow_emulated_nsm: self.allow_emulated_nsm,
        })
    }
}

impl AuditCheck {
    pub fn files<'a>(&'a self, expected: &'a ExpectedImage) -> AuditFiles<'a> {
        AuditFiles {
            log: &self.log,
            expected,
            ledger: self.ledger.as_deref(),
            checkpoints: &self.checkpoints,
            results: &self.results,
        }
    }
}

/// `cleanroom query-init`.
#[derive(Args)]
pub struct QueryInitArgs {
    /// The owner's public manifest (schema only; `prepare` writes public-manifest.json).
    #[arg(long)]
    pub manifest: PathBuf,
    #[arg(long)]
    pub module: PathBuf,
    /// Sealed columns for the module's inputs, in ABI order (comma-separated); default:
    /// the first unused input column of each type, in manifest order.
    #[arg(long, value_delimiter = ',')]
    pub inputs: Option<Vec<String>>,
    #[arg(long)]
    pub job: String,
    #[arg(long)]
    pub collaborator: String,
    /// The owner's policy (public): sizes the deadline to the policy's worst case.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Milliseconds from the spend to the reply; default: the policy's worst case.
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// Write a DP fine-tuning query against this label column (the module must be
    /// trainable): starting hyperparameters within the policy's ε, and the trained
    /// model's AUC as its one output.
    #[arg(long)]
    pub train_label: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
}

impl QueryInitArgs {
    pub fn request(&self) -> cleanroom::commands::provider::QueryInit<'_> {
        cleanroom::commands::provider::QueryInit {
            manifest: &self.manifest,
            module: &self.module,
            policy: self.policy.as_deref(),
            job_id: self.job.clone(),
            collaborator: self.collaborator.clone(),
            inputs: self.inputs.clone(),
            deadline_ms: self.deadline_ms,
            train_label: self.train_label.as_deref(),
            out: &self.out,
        }
    }
}

/// `cleanroom policy init`.
#[derive(Args)]
pub struct PolicyInitArgs {
    #[arg(long)]
    pub keys: PathBuf,
    #[arg(long)]
    pub manifest: PathBuf,
    #[arg(long = "allow-module", required = true)]
    pub modules: Vec<PathBuf>,
    /// A provider allowed to submit: NAME=ED25519_PUBLIC_KEY_HEX (`cleanroom keygen`).
    #[arg(long = "collaborator", required = true)]
    pub collaborators: Vec<String>,
    /// An i64 0/1 column that may serve as a label (AUC); no column is a label otherwise.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    #[arg(long, default_value = protocol::policy::defaults::MAX_EPSILON_PER_JOB)]
    pub max_epsilon: protocol::policy::Decimal,
    #[arg(long, default_value = protocol::policy::defaults::MAX_DELTA_PER_JOB)]
    pub max_delta: protocol::policy::Decimal,
    #[arg(long, default_value_t = protocol::policy::defaults::MIN_GROUP_SIZE)]
    pub min_group_size: u64,
    #[arg(long, default_value_t = protocol::policy::defaults::MAX_ROWS_PER_UNIT)]
    pub max_rows_per_unit: u32,
    /// Fuel per privacy unit; a unit that runs out is absent from the job.
    #[arg(long, default_value_t = protocol::policy::defaults::FUEL_PER_UNIT)]
    pub fuel_per_unit: u64,
    /// Longest deadline a query may declare.
    #[arg(long, default_value_t = protocol::policy::defaults::MAX_DEADLINE_MS)]
    pub max_deadline_ms: u64,
    /// Let modules read the privacy-unit token column.
    #[arg(long)]
    pub token_as_input: bool,
    /// Admit DP fine-tuning queries, within the default training bounds (edit the
    /// policy's [training] table to change them).
    #[arg(long)]
    pub allow_training: bool,
    /// X25519 public key (hex, `cleanroom diagnostics keygen`) that spent jobs' owner-only
    /// diagnostics are sealed to.
    #[arg(long)]
    pub diagnostics_key: Option<String>,
    /// The owner key is the Ed25519 key in a PKCS#11 token (label KEY-grants).
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    #[arg(long)]
    pub out: PathBuf,
}

impl PolicyInitArgs {
    pub fn request(&self) -> cleanroom::commands::owner::PolicyInit<'_> {
        cleanroom::commands::owner::PolicyInit {
            keys: &self.keys,
            manifest: &self.manifest,
            modules: &self.modules,
            collaborators: &self.collaborators,
            labels: &self.labels,
            params: cleanroom::owner_policy::PolicyParams {
                min_group_size: self.min_group_size,
                max_rows_per_unit: self.max_rows_per_unit,
                max_epsilon_per_job: self.max_epsilon.clone(),
                max_delta_per_job: self.max_delta.clone(),
                fuel_per_unit: self.fuel_per_unit,
                max_deadline_ms: self.max_deadline_ms,
                token_as_input: self.token_as_input,
                training: self.allow_training.then(protocol::training::TrainingLimits::default),
                ..Default::default()
            },
            diagnostics_key: self.diagnostics_key.as_deref(),
            grant_key: self.pkcs11.key_home(),
            out: &self.out,
        }
    }
}

#[cfg(test)]
mod expect_snp_args {
    //! `--expect-snp` on every command that attests or checks signers, exclusive with the
    //! PCR flags; the file is parsed into the checked reference.
    use super::*;
    use cleanroom::client::{image_reference, ImageReference};

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
        match image_reference(None, None, Some(&good)).unwrap() {
            ImageReference::Snp(r) => {
                assert_eq!(hex::encode(r.measurement), m);
                assert_eq!((r.min_tcb.snp, r.min_tcb.microcode, r.max_vmpl), (27, 222, 1));
                assert!(!r.allow_debug());
            }
            other => panic!("{other:?}"),
        }
        let bad = dir.join("bad.json");
        std::fs::write(&bad, format!(r#"{{"measurement":"{m}","max_vmpl":0}}"#)).unwrap();
        let e = image_reference(None, None, Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("min_tcb"), "{e}");
        assert!(image_reference(Some("00"), None, Some(&good)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
