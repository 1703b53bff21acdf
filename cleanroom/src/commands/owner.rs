//! The data owner's commands: draft rules, seal a table, write a policy, rotate keys,
//! read the ledger, read owner-only diagnostics, release a key, and check a job exactly on
//! the owner's own machine.

use super::KeyHome;
use crate::client::{connect_attested, Expected};
use crate::files::{load_manifest, load_policy, load_query, parse_hex, read, read_text, write_atomic};
use crate::owner::{OwnerKeys, Released};
use crate::Error;
use ledger::Ledger;
use owner_prep::hsm_keys::{grant_key_label, Pkcs11GrantSigner, Pkcs11Location, Pkcs11TokenKey};
use owner_prep::keystore::{KeyStore, TokenKey as FileKey};
use owner_prep::prepare::{self, Date, PrepareOptions, PrepareReport, Progress};
use owner_prep::suggest::Suggestion;
use protocol::policy::Policy;
use protocol::Digest;
use std::path::{Path, PathBuf};

/// `prepare TABLE --suggest-rules DRAFT`: scan the table and write a draft for review.
pub fn draft_rules(input: &Path, draft: &Path, now: u64) -> Result<Suggestion, Error> {
    let today = Date::from_days_since_epoch((now / 86_400) as i64).ok_or(Error::Usage("clock out of range".into()))?;
    let s = owner_prep::suggest::suggest_rules(input, &prepare::InputOptions::default(), today)?;
    write_atomic(draft, s.toml.as_bytes())?;
    Ok(s)
}

/// `prepare TABLE --rules R --keys K --out DIR`.
pub struct SealRequest<'a> {
    pub input: &'a Path,
    pub rules: &'a Path,
    pub keys: &'a Path,
    pub out: &'a Path,
    pub rows_per_chunk: u64,
    pub overwrite: bool,
    pub sort_segment_rows: usize,
    /// The owner's ledger: the previous snapshot of the same dataset is compared, and the
    /// new manifest appended.
    pub ledger: Option<&'a Path>,
    pub token_key: KeyHome,
    pub now: u64,
}

pub struct Sealed {
    pub report: PrepareReport,
    pub public_manifest: PathBuf,
    /// The ledger entry of the new manifest.
    pub ledger_entry: Option<u64>,
}

/// Seal a table under the reviewed rules, then write the public manifest and log the
/// manifest in the ledger.
pub fn seal(r: &SealRequest<'_>, progress: &dyn Progress) -> Result<Sealed, Error> {
    let rules = prepare::Rules::from_toml(&read_text(r.rules)?)
        .map_err(|e| Error::Parse { path: r.rules.to_path_buf(), why: e.to_string() })?;
    let mut ks = KeyStore::create_or_open(r.keys)?;
    let mut opts = PrepareOptions {
        rows_per_chunk: r.rows_per_chunk,
        now_unix: r.now,
        rules,
        overwrite: r.overwrite,
        segment_rows: r.sort_segment_rows,
        ..Default::default()
    };
    if let Some(l) = r.ledger {
        opts.previous = Ledger::open(l)?.latest_manifest(&prepare::dataset_name(r.input, &opts))?;
    }
    let report = match &r.token_key {
        KeyHome::Pkcs11(loc) => {
            let token = loc.open()?;
            let key = Pkcs11TokenKey(token.find_hmac_key(&loc.key)?);
            prepare::prepare_with(r.input, &key, &loc.home(), &mut ks, r.out, &opts, progress)?
        }
        KeyHome::File => {
            let key = prepare::FileTokenKey::new(&ks);
            prepare::prepare_with(r.input, &key, "file", &mut ks, r.out, &opts, progress)?
        }
    };
    let public_manifest = r.out.join("public-manifest.json");
    write_atomic(&public_manifest, report.manifest.public().to_json().as_bytes())?;
    let ledger_entry = match r.ledger {
        Some(l) => Some(Ledger::open(l)?.record_manifest(&report.manifest, r.now)?),
        None => None,
    };
    Ok(Sealed { report, public_manifest, ledger_entry })
}

/// `policy init`: the policy for a sealed dataset, from its manifest and the owner's choices.
pub struct PolicyInit<'a> {
    pub keys: &'a Path,
    pub manifest: &'a Path,
    pub modules: &'a [PathBuf],
    pub collaborators: &'a [String],
    pub labels: &'a [String],
    pub params: crate::owner_policy::PolicyParams,
    /// `--diagnostics-key`, hex.
    pub diagnostics_key: Option<&'a str>,
    pub grant_key: KeyHome,
    pub out: &'a Path,
}

pub fn init_policy(r: PolicyInit<'_>) -> Result<Policy, Error> {
    let ks = KeyStore::create_or_open(r.keys)?;
    let m = load_manifest(r.manifest)?;
    let allowed = r.modules.iter().map(|p| read(p).map(|w| Digest::of(&w))).collect::<Result<Vec<_>, _>>()?;
    let collaborators = r
        .collaborators
        .iter()
        .map(|c| crate::owner_policy::parse_collaborator(c).map_err(Error::Usage))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = r.params;
    params.diagnostics_key = r.diagnostics_key.map(|k| parse_hex(k, "--diagnostics-key")).transpose()?;
    let owner_key = match &r.grant_key {
        KeyHome::Pkcs11(loc) => loc.open()?.find_ed25519_key(&grant_key_label(&loc.key))?.public_key().to_vec(),
        KeyHome::File => ks.signing_key().public_key(),
    };
    let policy = crate::owner_policy::build(&m, owner_key, allowed, collaborators, r.labels, &params)?;
    write_atomic(r.out, policy.to_toml().as_bytes())?;
    Ok(policy)
}

/// A key rotation: the old and new key ids, and the population whose budget both spend.
pub struct Rotation {
    pub old: String,
    pub new: String,
    pub budget_of: String,
}

/// `keys rotate`: a fresh tokenization key, linked in the ledger to the old population.
pub fn rotate_token_key(keys: &Path, ledger: &Path, now: u64) -> Result<Rotation, Error> {
    // Link first: a key must never exist without its population's budget behind it.
    let mut ks = KeyStore::open(keys)?;
    let l = Ledger::open(ledger)?;
    let next = FileKey::generate()?;
    let budget_of = l.link_population(&next.key_id(), &ks.key_id(), now)?;
    let (old, new) = ks.replace_tokenization_key(next)?;
    Ok(Rotation { old, new, budget_of })
}

/// Keys generated in a PKCS#11 token (`keys pkcs11-init`).
pub struct TokenKeys {
    pub key_id: String,
    pub grant_key_label: String,
    pub grant_public_key: Vec<u8>,
}

pub fn init_token(loc: &Pkcs11Location) -> Result<TokenKeys, Error> {
    let token = loc.open()?;
    let key = token.generate_hmac_key(&loc.key)?;
    let label = grant_key_label(&loc.key);
    let grants = token.generate_ed25519_key(&label)?;
    Ok(TokenKeys {
        key_id: key.key_id().to_string(),
        grant_key_label: label,
        grant_public_key: grants.public_key().to_vec(),
    })
}

/// One sealed dataset in the ledger's manifest log.
pub struct DatasetRow {
    pub seq: u64,
    pub recorded_at: u64,
    pub name: String,
    pub digest: Digest,
    pub retention_until: Option<String>,
    pub expired: bool,
}

/// `datasets`: every manifest in the ledger, or the expired ones only.
pub fn datasets(ledger: &Path, now: u64, expired_only: bool) -> Result<Vec<DatasetRow>, Error> {
    let mut rows = vec![];
    for (seq, recorded_at, m) in Ledger::open(ledger)?.manifests()? {
        let ends = m.retention_until.as_deref().and_then(Date::parse_iso);
        let expired = ends.is_some_and(|d| d.end_unix() <= now);
        if expired || !expired_only {
            rows.push(DatasetRow {
                seq,
                recorded_at,
                name: m.dataset_name,
                digest: m.dataset_digest,
                retention_until: m.retention_until,
                expired,
            });
        }
    }
    Ok(rows)
}

/// One spent job's owner-only diagnostics, opened with the owner's key.
pub struct JobDiagnostics {
    pub job_id: Option<String>,
    pub event: protocol::audit::AuditEvent,
    pub diagnostics: protocol::diagnostics::Diagnostics,
}

/// `diagnostics show`: open every record's sealed diagnostics with the owner's key.
pub fn diagnostics(log: &Path, key: &Path) -> Result<Vec<JobDiagnostics>, Error> {
    let secret = crate::client::read_diagnostics_key(key).map_err(Error::Usage)?;
    let text = read_text(log)?;
    let mut out = vec![];
    for line in tlog::replay::lines(&text)? {
        let signed: protocol::signing::Signed =
            serde_json::from_str(line).map_err(|e| Error::Parse { path: log.to_path_buf(), why: e.to_string() })?;
        let rec: protocol::audit::AuditRecord = signed.decode()?;
        let (Some(d), Some(q), Some(g)) = (&rec.diagnostics, &rec.query_digest, &rec.grant_id) else {
            continue;
        };
        let sealed: protocol::diagnostics::SealedDiagnostics = protocol::from_cbor(d.as_slice())?;
        let aad = protocol::diagnostics::job_aad(q, g);
        let diagnostics = protocol::diagnostics::open(&secret, &aad, &sealed)?;
        out.push(JobDiagnostics { job_id: rec.job_id.clone(), event: rec.event, diagnostics });
    }
    Ok(out)
}

/// `release`: review the query, attest the enclave, spend the grant, send key and grant.
pub struct ReleaseRequest<'a> {
    pub front_door: &'a transport::Endpoint,
    pub image: crate::client::ImageReference,
    pub allow_simulated: bool,
    pub allow_emulated_nsm: bool,
    pub keys: &'a Path,
    pub ledger: &'a Path,
    pub policy: &'a Path,
    pub query: &'a Path,
    pub ttl: u64,
    pub grant_key: KeyHome,
    pub now: u64,
    /// Shard enclaves to run the query across (empty: the enclave runs it alone).
    pub shards: &'a [transport::Endpoint],
}

pub struct ReleaseOutcome {
    /// What the owner granted: the same review `cleanroom review` prints.
    pub review: String,
    /// The shards named to the coordinator, each attested (empty for a single enclave).
    pub shards: Vec<protocol::wire::ShardPeer>,
    pub attested: super::Attested,
    pub released: Released,
}

pub fn release(r: &ReleaseRequest<'_>) -> Result<ReleaseOutcome, Error> {
    let ks = KeyStore::open(r.keys)?;
    let policy = load_policy(r.policy)?;
    let spec = load_query(r.query)?;
    crate::owner::check_retention(&policy, r.now)?;
    // The owner grants exactly what it reviewed.
    let review = crate::review::review(&spec, &policy, 100)?;
    let expect =
        Expected::new(r.image.clone(), policy.digest(), r.allow_simulated).with_emulated_nsm(r.allow_emulated_nsm);
    // Every shard is attested before anything is granted: a shard that fails costs nothing.
    let shards = r.shards.iter().map(|ep| crate::client::attest_shard(ep, &expect)).collect::<Result<Vec<_>, _>>()?;
    let mut session = connect_attested(r.front_door, &expect)?;
    let attested = super::Attested::of(&session);
    let mut ledger = Ledger::open(r.ledger)?;
    let data_key = OwnerKeys::data_key_for(&ks, &policy)?;
    // The grant is signed in the PKCS#11 token when one is named, else by the key file.
    let released = match &r.grant_key {
        KeyHome::Pkcs11(loc) => {
            let token = loc.open()?;
            let signer = Pkcs11GrantSigner(token.find_ed25519_key(&grant_key_label(&loc.key))?);
            let keys = OwnerKeys { data_key: &data_key, grant_signer: &signer };
            crate::owner::release(&mut session, keys, &mut ledger, &policy, &spec, r.now, r.ttl)?
        }
        KeyHome::File => {
            let signer = ks.signing_key();
            let keys = OwnerKeys { data_key: &data_key, grant_signer: &signer };
            crate::owner::release(&mut session, keys, &mut ledger, &policy, &spec, r.now, r.ttl)?
        }
    };
    if !shards.is_empty() {
        let msg = protocol::wire::ClientMessage::NameShards { query_digest: spec.digest(), shards: shards.clone() };
        match session.call(&msg)? {
            protocol::wire::EnclaveMessage::ShardsNamed { shards: n, .. } if n as usize == shards.len() => {}
            _ => return Err(crate::client::ClientError::Unexpected.into()),
        }
    }
    Ok(ReleaseOutcome { review, attested, released, shards })
}

/// `owner-check`: the job run exactly over the owner's plaintext, on the owner's machine.
pub struct OwnerCheckRequest<'a> {
    pub sealed: &'a Path,
    pub keys: &'a Path,
    pub policy: &'a Path,
    pub module: &'a Path,
    pub query: &'a Path,
    pub out: &'a Path,
}

pub fn owner_check(r: &OwnerCheckRequest<'_>) -> Result<crate::local_run::OwnerCheck, Error> {
    let ks = KeyStore::open(r.keys)?;
    let policy = load_policy(r.policy)?;
    let spec = load_query(r.query)?;
    let key = ks.data_key(&policy.dataset_digest).ok_or(Error::Usage("no data key for the policy's dataset".into()))?;
    let batches = prepare::open_sealed(r.sealed, &key)?;
    let run = crate::local_run::run_exact(&batches, &read(r.module)?, &spec, &policy)?;
    let check = crate::local_run::OwnerCheck::from(run);
    crate::files::write_json(r.out, &check)?;
    Ok(check)
}
