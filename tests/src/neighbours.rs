//! The neighbouring-dataset audit: the whole job, through the real enclave service, on a
//! table D and on D′ = D plus one privacy unit, with everything the provider and the host
//! observe recorded side by side.
//!
//! The enclave runs in this process (`enclave_app::service::Enclave` on the simulated
//! platform, over real TLS on loopback TCP, its jobs on worker processes of the real
//! enclave-app binary), and so does the host: a recording host that
//! serves blobs and stores audit records exactly as host-proxy does, and notes the instant
//! and content of every request. The owner and the provider use the same client library as
//! the CLI. What the provider sees is every reply frame and its instant; what the host sees
//! is every request the enclave makes, its instant, and every audit record.
//!
//! A [`Transcript`] splits each observation into its public skeleton (which must be
//! identical for D and D′: a DP release may change only noised values) and the noised
//! values themselves (which the caller audits statistically).

use cleanroom::client::{connect_attested, Expected};
use cleanroom::owner_policy::{self, PolicyParams};
use ledger::Ledger;
use owner_prep::keystore::KeyStore;
use protocol::audit::AuditRecord;
use protocol::job::{OutputSpec, QuerySpec};
use protocol::manifest::Manifest;
use protocol::policy::{Collaborator, Policy};
use protocol::result::JobResult;
use protocol::sealed::SealedIndex;
use protocol::signing::SigningKey;
use protocol::wire::{ClientMessage, EnclaveMessage, HostRequest, HostResponse};
use protocol::{Bytes, Digest};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::{Endpoint, Listener};

/// Rows per privacy unit the policy keeps; the extra unit brings exactly this many.
pub const K: u32 = 2;
/// Rows of D; D′ has `ROWS + K`. Both fit the same number of chunks.
pub const ROWS: u64 = 500;
pub const ROWS_PER_CHUNK: u64 = 128;
/// The owner's X25519 diagnostics secret (the policy names its public half).
pub const OWNER_DIAGNOSTICS_SECRET: [u8; 32] = [5; 32];
/// The simulated image the in-process enclave claims to run.
const IMAGE: &[u8] = b"cleanroom neighbouring-dataset audit: in-process enclave";

/// The simulated platform with its randomness from a fixed seed: tests only, to compare
/// two runs' noise. Simulated in every respect (its evidence says so), and predictable.
struct SeededSimulatedPlatform {
    inner: enclave_app::platform::SimulatedPlatform,
    rng: Mutex<dp::DpRng>,
}

impl enclave_app::platform::Platform for SeededSimulatedPlatform {
    fn kind(&self) -> protocol::platform::Platform {
        self.inner.kind()
    }
    fn simulated(&self) -> bool {
        true
    }
    fn attest(
        &self,
        nonce: Option<&[u8]>,
        user_data: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<u8>, enclave_app::platform::PlatformError> {
        self.inner.attest(nonce, user_data, public_key)
    }
    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), enclave_app::platform::PlatformError> {
        self.inner.extend_and_lock(index, data)
    }
    fn random(&self, buf: &mut [u8]) -> Result<(), enclave_app::platform::PlatformError> {
        dp::rng::RngCore::fill_bytes(&mut *self.rng.lock().expect("rng"), buf);
        Ok(())
    }
}

/// One thing the host saw the enclave do.
#[derive(Debug, Clone)]
pub struct HostEvent {
    pub at: Instant,
    pub what: String,
    pub audit: Option<AuditRecord>,
}

/// The untrusted host, recording.
struct RecordingHost {
    blobs: HashMap<Digest, Vec<u8>>,
    policy: Vec<u8>,
    names: HashMap<Digest, String>,
    events: Mutex<Vec<HostEvent>>,
}

fn serve_host(host: Arc<RecordingHost>) -> Endpoint {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().expect("endpoint")).expect("host listener");
    let ep = listener.local_endpoint().expect("host endpoint");
    std::thread::spawn(move || {
        while let Ok(mut s) = listener.accept() {
            let host = host.clone();
            std::thread::spawn(move || {
                while let Ok(req) = transport::recv::<_, HostRequest>(&mut s) {
                    let at = Instant::now();
                    let (what, audit, reply) = match req {
                        HostRequest::GetBlob { digest } => {
                            let name = host.names.get(&digest).cloned().unwrap_or_else(|| "unknown".into());
                            let reply = match host.blobs.get(&digest) {
                                Some(b) => HostResponse::Blob { data: Bytes(b.clone()) },
                                None => HostResponse::Error { code: "no_blob".into(), message: String::new() },
                            };
                            (format!("get_blob:{name}"), None, reply)
                        }
                        HostRequest::AppendAudit { index, line } => {
                            let signed: protocol::signing::Signed = serde_json::from_str(&line).expect("log line");
                            let rec: AuditRecord = signed.decode().expect("audit record decodes");
                            ("append_audit".to_string(), Some(rec), HostResponse::Appended { size: index + 1 })
                        }
                        // Each side's enclave starts a log of its own.
                        HostRequest::ReadAudit { .. } => {
                            ("read_audit".to_string(), None, HostResponse::AuditLog { lines: vec![], more: false })
                        }
                        HostRequest::PutEvidence { document } => (
                            "put_evidence".to_string(),
                            None,
                            HostResponse::Stored { digest: Digest::of(document.as_slice()) },
                        ),
                        HostRequest::GetPolicy => {
                            ("get_policy".to_string(), None, HostResponse::Blob { data: Bytes(host.policy.clone()) })
                        }
                    };
                    host.events.lock().expect("events").push(HostEvent { at, what, audit });
                    if transport::send(&mut s, &reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    ep
}

/// One side of the audit: a sealed table, its policy, a recording host and an enclave.
pub struct Side {
    _dir: tempfile::TempDir,
    pub policy: Policy,
    pub manifest: Manifest,
    owner: SigningKey,
    data_key: protocol::sealed::DataKey,
    ledger: Mutex<Ledger>,
    host: Arc<RecordingHost>,
    front: Endpoint,
    pub index: Digest,
    pub modules: HashMap<String, Digest>,
    /// Sizes of the sealed chunk blobs the host stores.
    pub chunk_sizes: Vec<usize>,
}

/// The extra person of D′: `K` rows, a zip3 no one else has (its second row has no zip at
/// all: a null group key), extreme values, defaulted.
fn extra_unit_rows() -> String {
    let mut s = String::new();
    for i in 0..K {
        let zip = if i == 0 { "99999" } else { "" };
        s.push_str(&format!(
            "C99999999,Zed Outlier,zed.outlier@example.org,999-99-999{i},555-555-555{i},{zip},1920,\
             5000000000,900000,0.99,99,999,1\n"
        ));
    }
    s
}

/// Rows of D (and so of D′) whose utilization is null.
pub const NULL_UTILIZATION_ROWS: u64 = ROWS / 10;

/// Nulls in D and D′ alike, sealed as nulls (`nulls = "keep"`): the utilization (a model
/// input) of every tenth row, the zip (the group key) of every 17th, the label of every 23rd.
fn with_nulls(csv: &str) -> String {
    let mut out = String::new();
    for (i, line) in csv.lines().enumerate() {
        let mut f: Vec<&str> = line.split(',').collect();
        if i > 0 {
            if i % 10 == 3 {
                f[9] = "";
            }
            if i % 17 == 5 {
                f[5] = "";
            }
            if i % 23 == 7 {
                f[12] = "NA";
            }
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

/// The bank rules, except that the extra unit (its own zip3, a class of one) is sealed,
/// not suppressed, and its ten-digit income is not taken for a phone number.
fn audit_rules() -> owner_prep::prepare::Rules {
    let mut rules = owner_prep::prepare::Rules::bank();
    rules.k_anonymity.remedy =
        owner_prep::prepare::KRemedy::Override { reason: "neighbouring audit: D' must hold the extra unit".into() };
    for c in rules.columns.iter_mut().filter(|c| c.source == "income") {
        c.allow_pii = Some("the extra unit's income has ten digits".into());
    }
    for c in rules.columns.iter_mut().filter(|c| ["utilization", "zip", "defaulted"].contains(&c.source.as_str())) {
        c.nulls = owner_prep::prepare::NullPolicy::Keep;
    }
    rules
}

/// The provider's key, the same on both sides.
pub fn provider_key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

impl Side {
    /// Build D (`plus_one = false`) or D′ from the same generated rows and the same token
    /// key, so every other person has the same token in both.
    /// Jobs run as the production default does: on worker processes (two, the real
    /// enclave-app binary).
    pub fn new(plus_one: bool, modules: &[(&str, Vec<u8>)], token_key_store: &Path) -> Side {
        let workers = enclave_app::workers::Workers::processes(crate::bin("enclave-app"), 2);
        Side::with(plus_one, modules, token_key_store, workers, None)
    }

    /// [`Side::new`] with the enclave's jobs on `workers`, and, with `seed`, the simulated
    /// platform's randomness (the enclave's key, unit sampling, every noise draw) from that
    /// fixed seed, so that two sides' releases can be compared bit for bit.
    pub fn with(
        plus_one: bool,
        modules: &[(&str, Vec<u8>)],
        token_key_store: &Path,
        workers: enclave_app::workers::Workers,
        seed: Option<u64>,
    ) -> Side {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let (csv, pq) = (d.join("bank.csv"), d.join("bank.parquet"));
        owner_prep::datagen::generate(ROWS, 11, &csv, &pq).expect("generate");
        let mut text = with_nulls(&std::fs::read_to_string(&csv).expect("csv"));
        if plus_one {
            text.push_str(&extra_unit_rows());
        }
        std::fs::write(&csv, text).expect("csv");
        // The token key is shared; the store also holds each dataset's fresh data key.
        let mut ks = KeyStore::create_or_open(token_key_store).expect("key store");
        let opts = owner_prep::prepare::PrepareOptions {
            rows_per_chunk: ROWS_PER_CHUNK,
            rules: audit_rules(),
            ..Default::default()
        };
        let sealed = d.join("sealed");
        let r = owner_prep::prepare::prepare(&csv, &mut ks, &sealed, &opts).expect("prepare");
        let data_key = ks.data_key(&r.dataset_digest).expect("data key");
        let owner = ks.signing_key();
        let mut digests = HashMap::new();
        let module_digests: Vec<Digest> = modules.iter().map(|(_, w)| Digest::of(w)).collect();
        let params = PolicyParams {
            min_group_size: 5,
            max_rows_per_unit: K,
            max_epsilon_per_job: protocol::policy::Decimal::literal("3"),
            max_delta_per_job: protocol::policy::Decimal::literal("0.001"),
            fuel_per_unit: 40_000,
            max_deadline_ms: 60_000,
            token_as_input: true,
            diagnostics_key: Some(protocol::diagnostics::public_key(&OWNER_DIAGNOSTICS_SECRET).to_vec()),
            ..Default::default()
        };
        let collaborator = Collaborator { name: "acme".into(), public_key: Bytes(provider_key().public_key()) };
        let mut policy = owner_policy::build(
            &r.manifest,
            owner.public_key(),
            module_digests,
            vec![collaborator],
            &["defaulted".to_string()],
            &params,
        )
        .expect("policy");
        // Short setup so the audit's many jobs run quickly; the per-unit worst case is the
        // policy default, which the `worst_case` module checks holds with D and D′ running
        // side by side on this machine.
        policy.timing.setup_ms = 80;
        // Every output class in one query (see `audit_query`): ε 1 each, the Gaussian
        // covariance's conversion δ and three partition selections; income may be a value.
        policy.max_epsilon_per_job = protocol::policy::Decimal::literal("20");
        policy.max_delta_per_job = protocol::policy::Decimal::literal("0.001");
        for c in policy.columns.iter_mut().filter(|c| c.name == "income") {
            c.roles.push(protocol::policy::ColumnRole::Value);
        }
        // The training jobs of the audit (`training_query`).
        policy.training = Some(protocol::training::TrainingLimits::default());
        let mut blobs = HashMap::new();
        let mut names = HashMap::new();
        for (name, wasm) in modules {
            let dg = Digest::of(wasm);
            blobs.insert(dg, wasm.clone());
            names.insert(dg, format!("module:{name}"));
            digests.insert(name.to_string(), dg);
        }
        let mut chunks = vec![];
        let mut chunk_sizes = vec![];
        for i in 0..r.chunks {
            let bytes = std::fs::read(r.chunks_dir.join(owner_prep::prepare::chunk_file_name(i))).expect("chunk");
            let dg = Digest::of(&bytes);
            chunk_sizes.push(bytes.len());
            blobs.insert(dg, bytes);
            names.insert(dg, format!("chunk:{i}"));
            chunks.push(dg);
        }
        let index = SealedIndex { dataset_digest: r.dataset_digest, chunks, rows_per_chunk: ROWS_PER_CHUNK };
        let index_bytes = protocol::to_cbor(&index);
        let index_digest = Digest::of(&index_bytes);
        blobs.insert(index_digest, index_bytes);
        names.insert(index_digest, "index".into());
        let host =
            Arc::new(RecordingHost { blobs, policy: policy.to_toml().into_bytes(), names, events: Mutex::new(vec![]) });
        let host_ep = serve_host(host.clone());
        let simulated = enclave_app::platform::SimulatedPlatform::with_measurement(IMAGE);
        let platform: Box<dyn enclave_app::platform::Platform> = match seed {
            None => Box::new(simulated),
            Some(seed) => {
                Box::new(SeededSimulatedPlatform { inner: simulated, rng: Mutex::new(dp::seeded_rng_from_u64(seed)) })
            }
        };
        let enclave = enclave_app::service::Enclave::boot(
            platform,
            policy.clone(),
            enclave_app::host::HostClient::new(host_ep),
            workers,
        )
        .expect("enclave boots");
        let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().expect("endpoint")).expect("front listener");
        let front = listener.local_endpoint().expect("front endpoint");
        std::thread::spawn(move || {
            enclave_app::channels::serve_listener(enclave, listener, enclave_app::channels::ChannelLimits::default())
        });
        let ledger = Ledger::open(&d.join("ledger.sqlite")).expect("ledger");
        ledger.record_manifest(&r.manifest, 1).expect("manifest");
        ledger.set_population_cap(&policy.population, "100000", "0.5", 1).expect("cap");
        ledger.set_budget(&policy.population, "acme", "100000", "0.5", 1).expect("budget");
        Side {
            _dir: dir,
            policy,
            manifest: r.manifest,
            owner,
            data_key,
            ledger: Mutex::new(ledger),
            host,
            front,
            index: index_digest,
            modules: digests,
            chunk_sizes,
        }
    }

    fn expected(&self) -> Expected {
        Expected {
            image: cleanroom::client::ImageReference::Pcrs(std::collections::BTreeMap::from([(
                0,
                ring::digest::digest(&ring::digest::SHA384, IMAGE).as_ref().to_vec(),
            )])),
            policy_digest: self.policy.digest(),
            allow_simulated: true,
            allow_emulated_nsm: false,
            max_age: Duration::from_secs(300),
        }
    }

    /// The shortest deadline the policy accepts for this table, plus a margin.
    pub fn deadline_ms(&self) -> u64 {
        let p = &self.policy;
        // The audit query has one group-by output.
        let s = protocol::deadline::Schedule::new(&p.timing, &p.sandbox, self.manifest.chunks, ROWS_PER_CHUNK, 1)
            .expect("schedule");
        s.minimum.as_millis() as u64 + 60
    }

    /// The owner releases the data key and a grant for `spec` with the library call
    /// `cleanroom release` makes (log check, ledger spend, receipt, checkpoint kept).
    pub fn grant(&self, spec: &QuerySpec) {
        let mut session = connect_attested(&self.front, &self.expected()).expect("owner attests");
        let mut ledger = self.ledger.lock().expect("ledger");
        let keys = cleanroom::owner::OwnerKeys { data_key: &self.data_key, grant_signer: &self.owner };
        cleanroom::owner::release(&mut session, keys, &mut ledger, &self.policy, spec, now(), 3600)
            .expect("key release");
    }

    /// The provider submits `spec`; everything observed from the submission to the reply.
    pub fn run(&self, spec: &QuerySpec, module: &str) -> Observation {
        let mut session = connect_attested(&self.front, &self.expected()).expect("provider attests");
        let proof = session.submission_proof(&provider_key(), &spec.digest());
        let msg = ClientMessage::SubmitJob {
            spec: Box::new(spec.clone()),
            module_blob: self.modules[module],
            sealed_index_blob: self.index,
            proof,
        };
        let before = self.host.events.lock().expect("events").len();
        let submitted = Instant::now();
        let submitted_wall = now();
        let reply = session.call(&msg);
        let replied = Instant::now();
        // The final audit append happens before the reply is sent; give a straggler a moment.
        std::thread::sleep(Duration::from_millis(20));
        let events = self.host.events.lock().expect("events")[before..].to_vec();
        Observation {
            reply: reply.map_err(|e| e.to_string()),
            submitted,
            submitted_wall,
            deadline_s: spec.deadline_ms.div_ceil(1000),
            replied,
            events,
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Everything one job showed the provider and the host.
pub struct Observation {
    pub reply: Result<EnclaveMessage, String>,
    pub submitted: Instant,
    pub submitted_wall: u64,
    /// The query's deadline in whole seconds, rounded up (as `released_at` counts it).
    pub deadline_s: u64,
    pub replied: Instant,
    pub events: Vec<HostEvent>,
}

/// An observation split into what must not depend on the extra unit and what is noised.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// Public skeleton: compared for equality between D and D′.
    pub skeleton: Vec<String>,
    /// (label, offset in ms from submission) of every reply and host event.
    pub timings: Vec<(String, f64)>,
    /// (output, key, value) of every released value.
    pub noised: Vec<(String, String, f64)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Observation {
    /// What the owner reads from the job's sealed diagnostics with its secret.
    pub fn owner_diagnostics(&self) -> Option<protocol::diagnostics::Diagnostics> {
        let rec = self.events.iter().rev().find_map(|e| e.audit.as_ref())?;
        let sealed: protocol::diagnostics::SealedDiagnostics =
            protocol::from_cbor(rec.diagnostics.as_ref()?.as_slice()).ok()?;
        let aad = protocol::diagnostics::job_aad(rec.query_digest.as_ref()?, rec.grant_id.as_ref()?);
        protocol::diagnostics::open(&OWNER_DIAGNOSTICS_SECRET, &aad, &sealed).ok()
    }

    /// A signed time equals the submission second plus the deadline (the enclave's clock
    /// may have read the next second at submission).
    fn at_deadline(&self, t: u64) -> bool {
        // The enclave signs the second in which spend + deadline falls; the spend comes a
        // moment after the submission.
        let earliest = self.submitted_wall + self.deadline_s.saturating_sub(1);
        (earliest..=self.submitted_wall + self.deadline_s + 1).contains(&t)
    }

    pub fn transcript(&self) -> Transcript {
        let mut skeleton = vec![];
        let mut noised = vec![];
        // Instants count from the enclave's last request before the spend (the sealed
        // index): admission before it (compiling the module) depends on public inputs only,
        // and takes as long on D as on D′ up to machine noise.
        let spend = self.events.iter().find(|e| e.what == "get_blob:index").map(|e| e.at).unwrap_or(self.submitted);
        let mut timings = vec![("reply".to_string(), ms(self.replied.saturating_duration_since(spend)))];
        // The receipt's shape: which leaf, the checkpoint's tree size, the proof's length.
        // (Its root hashes the records, whose sealed diagnostics are fresh ciphertext.)
        let receipt = match &self.reply {
            Ok(EnclaveMessage::JobResult { receipt, .. }) => Some(receipt),
            Ok(EnclaveMessage::JobFailed { receipt }) => receipt.as_ref(),
            _ => None,
        };
        if let Some(r) = receipt {
            let size = r.checkpoint.lines().nth(1).unwrap_or_default().to_string();
            skeleton.push(format!(
                "receipt leaf={} tree_size={size} proof_len={} record_len={} checkpoint_len={}",
                r.index,
                r.inclusion.len(),
                r.record.len(),
                r.checkpoint.len()
            ));
        }
        match &self.reply {
            Ok(EnclaveMessage::JobResult { result, .. }) => {
                let r: JobResult = result.decode().expect("result decodes");
                skeleton.push(format!(
                    "result job={} collaborator={} eps={} delta={} simulated={} platform={} released_at_is_deadline={}",
                    r.job_id,
                    r.collaborator,
                    r.epsilon_spent,
                    r.delta_spent,
                    r.simulated,
                    r.platform,
                    self.at_deadline(r.released_at)
                ));
                for o in &r.outputs {
                    skeleton.push(format!(
                        "output {} class={} mechanism={} eps={} delta={:?} sensitivity={} scale={} fp={:?} note={}",
                        o.name,
                        o.class,
                        o.mechanism,
                        o.epsilon,
                        o.delta,
                        o.sensitivity,
                        o.noise_scale,
                        o.fixed_point_resolution,
                        o.note
                    ));
                    // Which groups a group-by releases is itself a DP output (partition
                    // selection, the outputs with a δ); every other output releases a
                    // fixed set of keys.
                    if o.delta.is_none() {
                        let keys: Vec<&str> = o.values.iter().map(|v| v.key.as_str()).collect();
                        skeleton.push(format!("keys {} {:?}", o.name, keys));
                    }
                    for v in &o.values {
                        // The interval is post-processing of the noised values.
                        let key = if v.stat.is_empty() { v.key.clone() } else { format!("{}/{}", v.key, v.stat) };
                        noised.push((o.name.clone(), key, v.value));
                    }
                }
            }
            Ok(other) => skeleton.push(format!("reply {}", variant(other))),
            Err(e) => skeleton.push(format!("client error {e}")),
        }
        for e in &self.events {
            timings.push((e.what.clone(), ms(e.at.saturating_duration_since(spend))));
            skeleton.push(format!("host {}", e.what));
            if let Some(a) = &e.audit {
                skeleton.push(format!(
                    "audit event={} principal={} outcome={} job={:?} eps={:?} delta={:?} mechanism={:?} sensitivity={:?} \
                     budget={:?}->{:?} fields={}{}{}{} time_is_deadline={} sealed_diagnostics_len={:?}",
                    a.event,
                    a.principal,
                    a.outcome,
                    a.job_id,
                    a.epsilon,
                    a.delta,
                    a.mechanism,
                    a.sensitivity,
                    a.budget_before,
                    a.budget_after,
                    a.grant_id.is_some() as u8,
                    a.module_hash.is_some() as u8,
                    a.query_digest.is_some() as u8,
                    a.result_digest.is_some() as u8,
                    self.at_deadline(a.time),
                    a.diagnostics.as_ref().map(|d| d.0.len())
                ));
            }
        }
        Transcript { skeleton, timings, noised }
    }
}

fn variant(m: &EnclaveMessage) -> String {
    match m {
        EnclaveMessage::Evidence { .. } => "evidence".into(),
        EnclaveMessage::KeyAccepted { .. } => "key_accepted".into(),
        EnclaveMessage::JobResult { .. } => "job_result".into(),
        EnclaveMessage::JobFailed { receipt } => format!("job_failed receipt={}", receipt.is_some()),
        EnclaveMessage::LogProof { .. } => "log_proof".into(),
        EnclaveMessage::ShardsNamed { shards, .. } => format!("shards_named {shards}"),
        EnclaveMessage::Error { code, message } => format!("error {code}: {message}"),
    }
}

/// The query every audited module answers: one output of every class over the module's
/// score (and the income column), ε = 1 each: histogram, mean, count and variance per zip3
/// (partition selection), a total sum, quantiles, confusion matrix, calibration and AUC
/// against `defaulted`, and the discrete-Gaussian covariance of score and income.
pub fn audit_query(side: &Side, module: &str, inputs: &[&str], job: &str) -> QuerySpec {
    use protocol::job::{GroupBy, Noise, ValueSource};
    let one = || protocol::policy::Decimal::literal("1");
    let zip3 = || GroupBy(vec!["zip3".into()]);
    QuerySpec {
        job_id: job.to_string(),
        collaborator: "acme".into(),
        dataset_digest: side.policy.dataset_digest,
        module_hash: side.modules[module],
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![
            OutputSpec::histogram("score_histogram", (0..=10).map(|i| i as f64 / 10.0).collect(), "1"),
            OutputSpec::mean("mean_by_zip3", "zip3", 0.0, 1.0, "1"),
            OutputSpec::auc("auc", "defaulted", 10, "1"),
            OutputSpec::Count { name: "rows_by_zip3".into(), group_by: zip3(), noise: Noise::Laplace, epsilon: one() },
            OutputSpec::Sum {
                name: "score_sum".into(),
                of: None,
                group_by: GroupBy::default(),
                lower: 0.0,
                upper: 1.0,
                noise: Noise::Laplace,
                epsilon: one(),
            },
            OutputSpec::Variance {
                name: "score_spread_by_zip3".into(),
                of: None,
                group_by: zip3(),
                lower: 0.0,
                upper: 1.0,
                noise: Noise::Laplace,
                epsilon: one(),
            },
            OutputSpec::Quantiles {
                name: "score_quantiles".into(),
                of: None,
                lower: 0.0,
                upper: 1.0,
                quantiles: vec![0.5, 0.9],
                grid: 256,
                epsilon: one(),
            },
            OutputSpec::ConfusionMatrix {
                name: "confusion".into(),
                of: None,
                label: "defaulted".into(),
                thresholds: vec![0.3, 0.5],
                noise: Noise::Laplace,
                epsilon: one(),
            },
            OutputSpec::Calibration {
                name: "calibration".into(),
                of: None,
                label: "defaulted".into(),
                bins: 5,
                noise: Noise::Laplace,
                epsilon: one(),
            },
            OutputSpec::Covariance {
                name: "score_income_covariance".into(),
                of: vec![ValueSource::Output("score".into()), ValueSource::Column("income".into())],
                lower: 0.0,
                upper: 1.0,
                epsilon: one(),
            },
        ],
        delta: Some(protocol::policy::Decimal::literal("0.000001")),
        deadline_ms: side.deadline_ms(),
        training: None,
    }
}

/// A short DP fine-tuning job for the audit: SGD without momentum, so that for a module
/// whose gradients do not depend on the parameters the trained parameters are linear in the
/// noisy sums and one unit moves each by at most `steps · lr · C / B`
/// ([`training_shift_bound`]); and one evaluation histogram of the trained module's score.
pub fn training_query(side: &Side, module: &str, inputs: &[&str], job: &str, n_params: usize) -> QuerySpec {
    use protocol::training::{Optimizer, TrainingSpec};
    let d = |v: &str| protocol::policy::Decimal::literal(v);
    let mut spec = QuerySpec {
        job_id: job.to_string(),
        collaborator: "acme".into(),
        dataset_digest: side.policy.dataset_digest,
        module_hash: side.modules[module],
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![OutputSpec::histogram("score_histogram", (0..=10).map(|i| i as f64 / 10.0).collect(), "1")],
        delta: None,
        deadline_ms: 0,
        training: Some(TrainingSpec {
            label: "defaulted".into(),
            sample_rate: d("0.1"),
            noise_multiplier: d("2"),
            clip_norm: d("1"),
            steps: TRAINING_STEPS,
            expected_batch_size: 50,
            optimizer: Optimizer::Sgd { learning_rate: d(TRAINING_LR), momentum: d("0") },
            delta: d("0.000001"),
        }),
    };
    let plan = release::training::TrainingPlan::new(spec.training.as_ref().unwrap(), &side.policy).expect("plan");
    let s = release::training::schedule(&spec, &side.policy, Some((&plan, n_params))).expect("schedule");
    spec.deadline_ms = s.minimum.as_millis() as u64 + 60;
    spec
}

pub const TRAINING_STEPS: u32 = 5;
pub const TRAINING_LR: &str = "0.5";

/// The most one unit can move a parameter in [`training_query`] when the gradients do not
/// depend on the parameters: its clipped gradient (norm ≤ C = 1) enters each step's sum
/// once, divided by B = 50, times the learning rate.
pub fn training_shift_bound() -> f64 {
    f64::from(TRAINING_STEPS) * TRAINING_LR.parse::<f64>().unwrap() * 1.0 / 50.0
}

/// Hostile trainable modules for the audit. Each reads `income` (col 0) and the label (col
/// 1), has two parameters, and emits the gradient (0.1, 0.1) and loss 0 for every unit
/// whatever the parameters, except on "the target" (a first row with income above 10^8,
/// only the extra unit of D′): a huge gradient, a NaN, a trap, time spent, or state kept
/// so that later units push hard. Scoring emits `min(income / 200000, 1)`.
pub fn hostile_train_wat(behaviour: &str) -> String {
    let on_target = match behaviour {
        "train_honest" => "",
        "train_huge" => "(if (call $target) (then (f64.store (i32.const 2048) (f64.const 1e300))))",
        "train_nan" => "(if (call $target) (then (f64.store (i32.const 2048) (f64.const nan))))",
        "train_trap" => "(if (call $target) (then unreachable))",
        "train_busy" => "(if (call $target) (then (call $spin (i32.const 4000))))",
        // State across units: once the target was seen, every later unit pushes 10^6.
        "train_cross_unit" => {
            "(if (call $target) (then (global.set $seen (i32.const 1))))
             (if (global.get $seen) (then (f64.store (i32.const 2048) (f64.const 1e6))))"
        }
        other => panic!("unknown behaviour {other}"),
    };
    format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "read_params" (func $read_params (param i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $seen (mut i32) (i32.const 0))
  (func $target (result i32) (f64.gt (f64.load (i32.const 0)) (f64.const 100000000)))
  (func $spin (param $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32)
    (drop (call $read_params (i32.const 4096) (i32.const 2)))
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (f64.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 3)))
        (f64.min (f64.div (f64.load (i32.shl (local.get $i) (i32.const 3))) (f64.const 200000)) (f64.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $emit (i32.const 1024) (local.get $rows))
    (i32.const 0))
  (func (export "cleanroom_initial_params") (result i32)
    (f64.store (i32.const 2048) (f64.const 0))
    (f64.store (i32.const 2056) (f64.const 0))
    (call $emit (i32.const 2048) (i32.const 2))
    (i32.const 0))
  (func (export "cleanroom_train_unit") (param $rows i32) (result i32)
    (drop (call $read_params (i32.const 4096) (i32.const 2)))
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (f64.store (i32.const 2048) (f64.const 0.1))
    (f64.store (i32.const 2056) (f64.const 0.1))
    (f64.store (i32.const 2064) (f64.const 0))
    {on_target}
    (call $emit (i32.const 2048) (i32.const 3))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00")
  (@custom "cleanroom_train" "\01\00\00\00\02\00\00\00\01\01\01w\02\00\00\00"))"#
    )
}

/// Hostile modules written for the audit. Each reads `income` (col 0, f64), scores a row
/// `min(income / 200000, 1)`, and misbehaves only when the unit is "the target": a first
/// row with income above 10^8 (only the extra unit of D′ has that).
pub fn hostile_wat(behaviour: &str) -> String {
    let on_target = match behaviour {
        // State across units: once the target was seen, every later row scores 1.0.
        "cross_row" => {
            "(if (call $target) (then (global.set $seen (i32.const 1))))
             (if (global.get $seen) (then (call $fill (local.get $rows) (f64.const 1))))"
        }
        "trap" => "(if (call $target) (then unreachable))",
        // Spends time (well within its fuel) only on the target.
        "busy_loop" => "(if (call $target) (then (call $spin (i32.const 4000))))",
        "fail_status" => "(if (call $target) (then (return (i32.const 0x12345678))))",
        "emit_count" => "(if (call $target) (then (call $emit (i32.const 1024) (i32.const 1))))",
        "nan_row" => "(if (call $target) (then (f64.store (i32.const 1024) (f64.const nan))))",
        "honest" => "",
        // Every unit, target or not, at the policy's worst case: the whole memory limit
        // grown and touched page by page, then all its fuel spent on subnormal multiplies
        // (so it is absent).
        // The schedule must still hold.
        "worst_case" => {
            "(drop (memory.grow (i32.const 31)))
             (local.set $i (i32.const 0))
             (block $d (loop $t
               (br_if $d (i32.ge_u (local.get $i) (i32.const 2097152)))
               (i32.store8 (local.get $i) (i32.const 1))
               (local.set $i (i32.add (local.get $i) (i32.const 4096)))
               (br $t)))
             (call $subnormal_spin (i32.const 100000000))"
        }
        other => panic!("unknown behaviour {other}"),
    };
    format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $seen (mut i32) (i32.const 0))
  (func $target (result i32) (f64.gt (f64.load (i32.const 0)) (f64.const 100000000)))
  (func $fill (param $rows i32) (param $v f64) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (f64.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 3))) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  ;; The slowest work per unit of fuel measured: multiplying subnormal floats.
  (func $subnormal_spin (param $n i32) (local $x f64)
    (local.set $x (f64.const 1e-310))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $x (f64.mul (local.get $x) (f64.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (drop (local.get $x)))
  (func $spin (param $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (f64.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 3)))
        (f64.min (f64.div (f64.load (i32.shl (local.get $i) (i32.const 3))) (f64.const 200000)) (f64.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    {on_target}
    (call $emit (i32.const 1024) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#
    )
}

/// A module that reads the validity of its one input (`utilization`) and scores a null
/// row 1.0 and any other 0.0: how many nulls there are leaves only through the noised
/// histogram.
pub fn null_reader_wat() -> String {
    r#"(module
  (import "cleanroom" "read_validity" (func $read_validity (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32)
    (drop (call $read_validity (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (f64.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))
        (f64.convert_i32_u (i32.eqz (i32.load8_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $emit (i32.const 4096) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#
        .to_string()
}

/// A module that reads the privacy-unit token column and scores a row by its token's
/// first byte: the identifier itself, as raw as the ABI hands it over.
pub fn token_reader_wat() -> String {
    r#"(module
  (import "cleanroom" "read_tokens" (func $read_tokens (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32)
    (drop (call $read_tokens (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (f64.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))
        (f64.div (f64.convert_i32_u (i32.load8_u (i32.shl (local.get $i) (i32.const 5)))) (f64.const 255)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $emit (i32.const 4096) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\03"))"#
        .to_string()
}
