//! The enclave's service: attested channel, key release, job execution, release.

use crate::host::{HostClient, HostError};
use crate::platform::{Platform, PlatformError, POLICY_PCR};
use protocol::audit::{link_digest, AuditRecord, AUDIT_CONTEXT};
use protocol::grant::{BudgetGrant, GRANT_CONTEXT};
use protocol::job::QuerySpec;
use protocol::policy::{Decimal, Policy};
use protocol::result::{JobResult, RESULT_CONTEXT};
use protocol::sealed::{decode_chunk, DataKey, Opener, SealError, SealedIndex};
use protocol::signing::{Signed, SigningKey};
use protocol::wire::{channel_binding, ClientMessage, EnclaveMessage, EXPORTER_LABEL};
use protocol::{Bytes, Digest};
use release::{Accumulator, Mode, ReleaseError};
use sandbox::{Sandbox, SandboxConfig};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::{Stream, TransportError};
use zeroize::Zeroize;

/// Nonces shorter than this cannot be fresh enough; longer ones are a DoS vector.
pub const NONCE_MIN: usize = 16;
pub const NONCE_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("sandbox: {0}")]
    Sandbox(String),
}

/// Why a request was refused. `code` is stable and machine-readable.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{code}: {message}")]
    Policy { code: &'static str, message: String },
    #[error("module_rejected: {0}")]
    Admission(String),
    #[error("sandbox_failed: {0}")]
    Sandbox(String),
    #[error("ingest_failed: {0}")]
    Ingest(#[from] SealError),
    #[error("host_failed: {0}")]
    Host(#[from] HostError),
    #[error("release_failed: {0}")]
    Release(#[from] ReleaseError),
    #[error("platform_failed: {0}")]
    Platform(#[from] PlatformError),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Policy { code, .. } => code,
            Refusal::Admission(_) => "module_rejected",
            Refusal::Sandbox(_) => "sandbox_failed",
            Refusal::Ingest(_) => "ingest_failed",
            Refusal::Host(_) => "host_failed",
            Refusal::Release(_) => "release_failed",
            Refusal::Platform(_) => "platform_failed",
        }
    }
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Policy { code, message: message.into() }
}

#[derive(Default)]
struct State {
    data_keys: HashMap<Digest, DataKey>,
    /// Grants accepted and not yet spent, by job id.
    pending: HashMap<String, BudgetGrant>,
    /// Every grant id this instance has ever accepted.
    seen: HashSet<String>,
    /// Averaging defence: signed results already released, by (query digest, dataset
    /// digest, module hash). An identical query gets the same signed answer again without
    /// a grant, without spending and without drawing new noise. Bounded by the number of
    /// grants the owner signed (each entry cost one).
    released: HashMap<(Digest, Digest, Digest), Signed>,
}

struct AuditChain {
    seq: u64,
    prev: Digest,
}

pub struct Enclave {
    platform: Box<dyn Platform>,
    key: SigningKey,
    policy: Policy,
    policy_digest: Digest,
    boot_evidence: Vec<u8>,
    host: HostClient,
    sandbox: Sandbox,
    tls: Arc<rustls::ServerConfig>,
    state: Mutex<State>,
    audit: Mutex<AuditChain>,
    job_lock: Mutex<()>,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Enclave {
    /// Boot: ephemeral key from platform randomness, policy measured and locked.
    pub fn boot(platform: Box<dyn Platform>, policy: Policy, host: HostClient) -> Result<Arc<Enclave>, BootError> {
        let mut seed = [0u8; 32];
        platform.random(&mut seed)?;
        let key = SigningKey::from_seed(seed);
        seed.zeroize();
        let policy_digest = policy.digest();
        platform.extend_and_lock(POLICY_PCR, policy_digest.as_bytes())?;
        let boot_evidence = platform.attest(None, policy_digest.as_bytes(), &key.public_key())?;
        let sandbox =
            Sandbox::new(SandboxConfig::from_policy(&policy.sandbox)).map_err(|e| BootError::Sandbox(e.to_string()))?;
        let tls = crate::tls::server_config(&key)?;
        Ok(Arc::new(Enclave {
            platform,
            key,
            policy,
            policy_digest,
            boot_evidence,
            host,
            sandbox,
            tls,
            state: Mutex::new(State::default()),
            audit: Mutex::new(AuditChain { seq: 0, prev: Digest::default() }),
            job_lock: Mutex::new(()),
        }))
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }

    pub fn policy_digest(&self) -> Digest {
        self.policy_digest
    }

    /// Serve one client connection until it closes. Errors end the connection only.
    pub fn serve(self: &Arc<Self>, stream: Stream) -> Result<(), TransportError> {
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        let conn = rustls::ServerConnection::new(self.tls.clone())
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        // Per-connection protocol state: evidence first, then at most one key release.
        let mut attested = false;
        let mut key_released = false;
        loop {
            let msg: ClientMessage = match transport::recv(&mut tls) {
                Ok(m) => m,
                Err(TransportError::Closed) => return Ok(()),
                Err(TransportError::Decode(e)) => {
                    let reply = EnclaveMessage::Error { code: "malformed_message".into(), message: e.to_string() };
                    let _ = transport::send(&mut tls, &reply);
                    return Ok(());
                }
                Err(e @ TransportError::Frame(_)) => {
                    let reply = EnclaveMessage::Error { code: "oversized_message".into(), message: e.to_string() };
                    let _ = transport::send(&mut tls, &reply);
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let reply = match msg {
                ClientMessage::Attest { nonce } => {
                    let r = self.attest(&tls.conn, nonce.as_slice());
                    attested |= r.is_ok();
                    r
                }
                _ if !attested => Err(refuse("not_attested", "ask for evidence on this connection first")),
                ClientMessage::ReleaseKey { .. } if key_released => {
                    Err(refuse("second_key_release", "one key release per channel"))
                }
                ClientMessage::ReleaseKey { dataset_digest, data_key, grant } => {
                    key_released = true;
                    self.release_key(dataset_digest, data_key, &grant)
                }
                ClientMessage::SubmitJob { spec, module_blob, sealed_index_blob } => {
                    self.submit(&spec, module_blob, sealed_index_blob)
                }
            };
            match reply {
                Ok(reply) => transport::send(&mut tls, &reply)?,
                Err(r) => {
                    // A refusal ends the channel: the peer reconnects and attests afresh.
                    let reply = EnclaveMessage::Error { code: r.code().into(), message: r.to_string() };
                    let _ = transport::send(&mut tls, &reply);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    return Ok(());
                }
            }
        }
    }

    fn attest(&self, conn: &rustls::ServerConnection, nonce: &[u8]) -> Result<EnclaveMessage, Refusal> {
        if !(NONCE_MIN..=NONCE_MAX).contains(&nonce.len()) {
            return Err(refuse("bad_nonce", format!("nonce must be {NONCE_MIN}..={NONCE_MAX} bytes")));
        }
        let mut exporter = [0u8; 32];
        conn.export_keying_material(&mut exporter, EXPORTER_LABEL, None)
            .map_err(|e| refuse("tls_exporter", e.to_string()))?;
        let public_key = self.key.public_key();
        let binding = channel_binding(nonce, &exporter, &public_key, &self.policy_digest);
        let document = self.platform.attest(Some(nonce), binding.as_bytes(), &public_key)?;
        Ok(EnclaveMessage::Evidence {
            platform: self.platform.name().into(),
            simulated: self.platform.simulated(),
            document: Bytes(document),
            public_key: Bytes(public_key),
            policy_digest: self.policy_digest,
        })
    }

    /// Check a grant against this enclave, its policy and the grants seen so far.
    fn check_grant(&self, grant: &Signed, state: &State, now: u64) -> Result<BudgetGrant, Refusal> {
        grant
            .verify(GRANT_CONTEXT, self.policy.owner_public_key.as_slice())
            .map_err(|e| refuse("grant_signature", format!("grant is not signed by the policy's owner key: {e}")))?;
        let g: BudgetGrant = grant.decode().map_err(|e| refuse("grant_malformed", e.to_string()))?;
        if g.enclave_public_key.as_slice() != self.key.public_key().as_slice() {
            return Err(refuse(
                "grant_wrong_enclave",
                "grant names another enclave's key (issued to a different or restarted enclave)",
            ));
        }
        if g.policy_digest != self.policy_digest {
            return Err(refuse("grant_wrong_policy", "grant names another policy"));
        }
        if g.dataset_digest != self.policy.dataset_digest {
            return Err(refuse("grant_wrong_dataset", "grant names a dataset this policy does not govern"));
        }
        if !self.policy.collaborators.contains(&g.collaborator) {
            return Err(refuse(
                "collaborator_not_allowed",
                format!("{:?} is not a collaborator in the policy", g.collaborator),
            ));
        }
        if g.expires_at <= now {
            return Err(refuse("grant_expired", format!("grant expired at {}", g.expires_at)));
        }
        if state.seen.contains(&g.grant_id) {
            return Err(refuse("grant_replayed", format!("grant {} was already used", g.grant_id)));
        }
        if state.pending.contains_key(&g.job_id) {
            return Err(refuse("job_already_granted", format!("job {} already holds a grant", g.job_id)));
        }
        let eps = release::parse_epsilon(&g.epsilon)?;
        let max = release::parse_epsilon(&self.policy.max_epsilon_per_job)?;
        if eps > max {
            return Err(refuse(
                "grant_exceeds_policy",
                format!("grant ε {} exceeds the policy's per-job maximum {}", g.epsilon, max),
            ));
        }
        Ok(g)
    }

    fn release_key(&self, dataset: Digest, mut data_key: Bytes, grant: &Signed) -> Result<EnclaveMessage, Refusal> {
        let key = match <[u8; 32]>::try_from(data_key.as_slice()) {
            Ok(k) => DataKey(k),
            Err(_) => {
                data_key.0.zeroize();
                return Err(refuse("bad_key", "a data key is 32 bytes"));
            }
        };
        data_key.0.zeroize();
        let mut state = self.state.lock().expect("state lock");
        let g = self.check_grant(grant, &state, now_secs())?;
        if dataset != g.dataset_digest {
            return Err(refuse("grant_wrong_dataset", "key and grant name different datasets"));
        }
        state.data_keys.insert(dataset, key);
        state.seen.insert(g.grant_id.clone());
        state.pending.insert(g.job_id.clone(), g.clone());
        drop(state);
        let mut rec = self.record("key_release", &g.collaborator, "accepted");
        rec.job_id = Some(g.job_id.clone());
        rec.grant_id = Some(g.grant_id.clone());
        rec.dataset_digest = Some(g.dataset_digest);
        rec.epsilon = Some(g.epsilon.clone());
        rec.budget_before = Some(g.ledger_remaining_before.clone());
        rec.budget_after = Some(g.ledger_remaining_after.clone());
        self.append_audit(rec)?;
        Ok(EnclaveMessage::KeyAccepted { grant_id: g.grant_id })
    }

    fn record(&self, event: &str, principal: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            prev: Digest::default(),
            time: now_secs(),
            event: event.into(),
            principal: principal.into(),
            job_id: None,
            grant_id: None,
            dataset_digest: None,
            policy_digest: self.policy_digest,
            module_hash: None,
            query_digest: None,
            result_digest: None,
            evidence: Bytes(self.boot_evidence.clone()),
            platform: self.platform.name().into(),
            simulated: self.platform.simulated(),
            mechanism: None,
            epsilon: None,
            delta: None,
            sensitivity: None,
            budget_before: None,
            budget_after: None,
            outcome: outcome.into(),
        }
    }

    /// Sign and hand a record to the host. Sequence and link are assigned here, under
    /// the chain lock, so concurrent events cannot interleave badly.
    fn append_audit(&self, mut rec: AuditRecord) -> Result<(), Refusal> {
        let mut chain = self.audit.lock().expect("audit lock");
        rec.seq = chain.seq;
        rec.prev = chain.prev;
        let signed = self.key.sign(AUDIT_CONTEXT, &rec);
        self.host.append_audit(&signed)?;
        chain.seq += 1;
        chain.prev = link_digest(&signed);
        Ok(())
    }

    fn submit(&self, spec: &QuerySpec, module_blob: Digest, index_blob: Digest) -> Result<EnclaveMessage, Refusal> {
        let _one_job_at_a_time = self.job_lock.lock().expect("job lock");
        let started = Instant::now();
        let reply = match self.run_job(spec, module_blob, index_blob) {
            Ok((signed, rec)) => {
                let fresh = rec.event == "job_released";
                let key = (spec.digest(), spec.dataset_digest, spec.module_hash);
                self.append_audit(rec).map(|()| {
                    if fresh {
                        // Cached only once its release is in the audit log.
                        self.state.lock().expect("state lock").released.insert(key, signed.clone());
                    }
                    EnclaveMessage::JobResult { result: signed }
                })
            }
            Err(refusal) => {
                let mut rec = self.record("job_refused", &spec.collaborator, &refusal.to_string());
                rec.job_id = Some(spec.job_id.clone());
                rec.module_hash = Some(spec.module_hash);
                rec.query_digest = Some(spec.digest());
                // A refusal that cannot be audited is still a refusal.
                let _ = self.append_audit(rec);
                Err(refusal)
            }
        };
        // Replies (results and refusals alike) leave only at a multiple of the release
        // quantum after the job started, so neither the data nor the noise drawn (whose
        // sampling time grows with |noise|) shows in the response time.
        let quantum = Duration::from_millis(self.policy.release_quantum_ms);
        let target = crate::release_timing::release_delay(started.elapsed(), quantum);
        std::thread::sleep(target.saturating_sub(started.elapsed()));
        reply
    }

    fn admission_checks(&self, spec: &QuerySpec, module_blob: Digest) -> Result<(BudgetGrant, DataKey), Refusal> {
        spec.validate().map_err(|e| refuse("bad_query", e.to_string()))?;
        let p = &self.policy;
        if spec.dataset_digest != p.dataset_digest {
            return Err(refuse("dataset_not_governed", "the policy does not govern this dataset"));
        }
        if !p.allowed_modules.contains(&spec.module_hash) {
            return Err(refuse(
                "module_not_allowed",
                format!("module {} is not allowed by the policy", spec.module_hash),
            ));
        }
        if module_blob != spec.module_hash {
            return Err(refuse("module_hash_mismatch", "the module blob is not the module named in the query"));
        }
        if let Some(o) = spec.outputs.iter().find(|o| !p.allowed_query_classes.iter().any(|c| c == o.class())) {
            return Err(refuse(
                "query_class_not_allowed",
                format!("query class {} is not allowed by the policy", o.class()),
            ));
        }
        if !p.collaborators.contains(&spec.collaborator) {
            return Err(refuse("collaborator_not_allowed", format!("{:?} is not a collaborator", spec.collaborator)));
        }
        let eps = release::query_epsilon(spec)?;
        if eps > release::parse_epsilon(&p.max_epsilon_per_job)? {
            return Err(refuse(
                "epsilon_exceeds_policy",
                format!("query asks for ε = {eps}, above the policy's per-job maximum"),
            ));
        }
        let state = self.state.lock().expect("state lock");
        let grant = state
            .pending
            .get(&spec.job_id)
            .cloned()
            .ok_or_else(|| refuse("no_grant", format!("no budget grant for job {:?}", spec.job_id)))?;
        if grant.collaborator != spec.collaborator {
            return Err(refuse("grant_wrong_collaborator", "the grant is for another collaborator"));
        }
        if grant.expires_at <= now_secs() {
            return Err(refuse("grant_expired", "the grant for this job has expired"));
        }
        if eps > release::parse_epsilon(&grant.epsilon)? {
            return Err(refuse(
                "epsilon_exceeds_grant",
                format!("query asks for ε = {eps}, the grant covers {}", grant.epsilon),
            ));
        }
        let key = state
            .data_keys
            .get(&spec.dataset_digest)
            .cloned()
            .ok_or_else(|| refuse("no_data_key", "the owner has not released the data key"))?;
        Ok((grant, key))
    }

    fn spend_grant(&self, job_id: &str) {
        self.state.lock().expect("state lock").pending.remove(job_id);
    }

    fn run_job(
        &self,
        spec: &QuerySpec,
        module_blob: Digest,
        index_blob: Digest,
    ) -> Result<(Signed, AuditRecord), Refusal> {
        // Averaging defence: the identical query (same query digest, which names the job,
        // collaborator, inputs and outputs with their ε; same dataset; same module) was
        // answered already. Return that signed answer: no grant needed, nothing spent,
        // no data read, no new noise.
        let cache_key = (spec.digest(), spec.dataset_digest, spec.module_hash);
        let cached = self.state.lock().expect("state lock").released.get(&cache_key).cloned();
        if let Some(signed) = cached {
            let first: JobResult = signed.decode().map_err(|e| refuse("cache_corrupt", e.to_string()))?;
            let mut rec = self.record("job_cached", &spec.collaborator, "released again from cache; nothing spent");
            rec.job_id = Some(spec.job_id.clone());
            rec.grant_id = Some(first.grant_id.clone());
            rec.dataset_digest = Some(spec.dataset_digest);
            rec.module_hash = Some(spec.module_hash);
            rec.query_digest = Some(cache_key.0);
            rec.result_digest = Some(Digest::of(signed.payload.as_slice()));
            rec.mechanism = Some("discrete_laplace".into());
            rec.epsilon = Some(Decimal("0".into()));
            return Ok((signed, rec));
        }
        let (grant, key) = self.admission_checks(spec, module_blob)?;
        let wasm = self.host.get_blob(&module_blob)?;
        let admitted = self.sandbox.admit(&wasm).map_err(|e| Refusal::Admission(e.to_string()))?;
        if admitted.digest() != spec.module_hash {
            return Err(refuse("module_hash_mismatch", "admitted module hash differs from the query"));
        }
        let index: SealedIndex = protocol::from_cbor(&self.host.get_blob(&index_blob)?)
            .map_err(|e| refuse("bad_sealed_index", e.to_string()))?;
        if index.dataset_digest != spec.dataset_digest {
            return Err(refuse("bad_sealed_index", "sealed index names another dataset"));
        }
        let mut job = self.sandbox.start_job(&admitted, &spec.inputs).map_err(|e| Refusal::Sandbox(e.to_string()))?;
        let mut seed = [0u8; 32];
        self.platform.random(&mut seed)?;
        let mut acc = Accumulator::new(spec, &self.policy, seed)?;
        let mut opener = Opener::new(key, spec.dataset_digest);
        let mut open = |digest: &Digest| -> Result<protocol::table::RecordBatch, Refusal> {
            let blob = self.host.get_blob(digest)?;
            let chunk = decode_chunk(&blob).map_err(|e| refuse("bad_chunk", e.to_string()))?;
            Ok(opener.open_next(chunk)?)
        };
        // The first batch's schema (public: it is the manifest's) is checked against every
        // column the query names before the module sees any row, so a query on an
        // undeclared column is refused with nothing spent.
        let mut chunks = index.chunks.iter();
        let first = chunks.next().map(&mut open).transpose()?;
        if let Some(b) = &first {
            acc.check_schema(b)?;
        }
        // From here on the module sees data: whatever happens, the grant is spent, so a
        // module cannot probe the data one failure at a time for free.
        self.spend_grant(&spec.job_id);
        let mut next = first;
        while let Some(batch) = next.take() {
            let scores = job.process_batch(&batch).map_err(|e| Refusal::Sandbox(e.to_string()))?;
            acc.add_batch(&batch, &scores)?;
            next = chunks.next().map(&mut open).transpose()?;
        }
        let digest = opener.finish()?;
        if digest != spec.dataset_digest {
            return Err(refuse("dataset_digest_mismatch", "decrypted content does not match the dataset digest"));
        }
        self.platform.random(&mut seed)?;
        let mut rng = dp::seeded_rng(seed);
        seed.zeroize();
        let mode = Mode::Dp {
            rng: &mut rng,
            min_group_size: self.policy.min_group_size,
            partition_delta: release::parse_delta(&self.policy.partition_delta)?,
        };
        let (outputs, stats) = acc.finish(mode)?;
        let eps = release::query_epsilon(spec)?;
        let result = JobResult {
            job_id: spec.job_id.clone(),
            collaborator: spec.collaborator.clone(),
            dataset_digest: spec.dataset_digest,
            policy_digest: self.policy_digest,
            module_hash: spec.module_hash,
            query_digest: spec.digest(),
            grant_id: grant.grant_id.clone(),
            platform: self.platform.name().into(),
            simulated: self.platform.simulated(),
            evidence: Bytes(self.boot_evidence.clone()),
            epsilon_spent: Decimal(eps.to_string()),
            rows_read: stats.rows_read,
            units: stats.units,
            rows_dropped_by_bounding: stats.rows_dropped_by_bounding,
            released_at: now_secs(),
            outputs,
        };
        let signed = self.key.sign(RESULT_CONTEXT, &result);
        let mut rec = self.record("job_released", &spec.collaborator, "released");
        rec.job_id = Some(spec.job_id.clone());
        rec.grant_id = Some(grant.grant_id.clone());
        rec.dataset_digest = Some(spec.dataset_digest);
        rec.module_hash = Some(spec.module_hash);
        rec.query_digest = Some(spec.digest());
        rec.result_digest = Some(Digest::of(signed.payload.as_slice()));
        rec.mechanism = Some("discrete_laplace".into());
        rec.epsilon = Some(Decimal(eps.to_string()));
        rec.delta = Some(self.policy.partition_delta.clone());
        rec.sensitivity = Some(
            result.outputs.iter().map(|o| format!("{}: {}", o.name, o.sensitivity)).collect::<Vec<_>>().join("; "),
        );
        rec.budget_before = Some(grant.ledger_remaining_before.clone());
        rec.budget_after = Some(grant.ledger_remaining_after.clone());
        Ok((signed, rec))
    }
}
