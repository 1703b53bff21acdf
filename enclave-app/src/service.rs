//! The enclave's service: attested channel, key release, job execution, release.

use crate::boundary::{conclude, JobFailed, OwnerSealed, SpentJob};
use crate::channels::{ChannelLimits, Deadlined, REFUSAL_DRAIN, REFUSAL_TIMEOUT};
use crate::host::{HostClient, HostError};
use crate::platform::{Platform, PlatformError, POLICY_PCR};
use crate::workers::{JobWorkers, UnitOutcome, WorkerError, Workers};
use protocol::audit::{AuditEvent, AuditRecord, LogReceipt};
use protocol::deadline::Schedule;
use protocol::diagnostics::Diagnostics;
use protocol::grant::BudgetGrant;
use protocol::job::QuerySpec;
use protocol::policy::{Decimal, Policy};
use protocol::sealed::{decode_chunk, DataKey, Opener, SealedIndex};
use protocol::signing::{Signed, SigningKey};
use protocol::wire::{channel_binding, ClientMessage, EnclaveMessage, EXPORTER_LABEL};
use protocol::{Bytes, Digest};
use release::{Accumulator, DpRelease, UnitAssembler};
use sandbox::{AdmittedModule, Sandbox, SandboxConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::{Stream, TransportError};
use zeroize::Zeroize;

/// Nonces shorter than this cannot be fresh enough; longer ones are a DoS vector.
pub const NONCE_MIN: usize = 16;
pub const NONCE_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("own evidence: {0}")]
    OwnEvidence(String),
    #[error("storing the boot evidence: {0}")]
    Host(#[from] HostError),
    #[error(transparent)]
    AuditLog(#[from] crate::audit_log::ResumeError),
}

pub use crate::admission::{refuse, Refusal};
use crate::admission::{GrantBook, Me};
use protocol::refusal::RefusalCode as Code;

impl From<HostError> for Refusal {
    fn from(e: HostError) -> Self {
        refuse(Code::HostFailed, e.to_string())
    }
}

impl From<PlatformError> for Refusal {
    fn from(e: PlatformError) -> Self {
        refuse(Code::PlatformFailed, e.to_string())
    }
}

impl From<crate::audit_log::AppendError> for Refusal {
    fn from(e: crate::audit_log::AppendError) -> Self {
        refuse(Code::AuditFailed, format!("the record could not be logged, so nothing was done: {e}"))
    }
}

#[derive(Default)]
struct State {
    data_keys: HashMap<Digest, DataKey>,
    grants: GrantBook,
    /// Averaging defence: signed results already released, by query digest (which covers
    /// the dataset digest and the module hash). An identical query gets the same signed
    /// answer again without a grant, without spending and without drawing new noise.
    /// Bounded by the number of grants the owner signed (each entry cost one).
    released: HashMap<Digest, Signed>,
}

pub struct Enclave {
    platform: Box<dyn Platform>,
    key: SigningKey,
    policy: Policy,
    policy_digest: Digest,
    boot_evidence: Vec<u8>,
    evidence_digest: Digest,
    host: HostClient,
    sandbox: Sandbox,
    tls: Arc<rustls::ServerConfig>,
    state: Mutex<State>,
    /// The log's tree. Lock order: `state` before `audit`.
    audit: Mutex<tlog::LogState>,
    job_lock: Mutex<()>,
    /// How jobs run their units (threads of this process never: see [`crate::workers`]).
    workers: Workers,
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Fetched chunks waiting to be scored; a job further behind its schedule than this fails.
const FETCH_QUEUE: usize = 4;

/// A job that passed every check before the spend: what it needs to run.
struct Admitted {
    grant: BudgetGrant,
    key: DataKey,
    module: AdmittedModule,
    index: SealedIndex,
    schedule: Schedule,
    acc: Accumulator,
    cost: crate::admission::Cost,
    training: Option<Training>,
    /// The processes (or the thread) that will run the module on the units.
    workers: JobWorkers,
}

/// A training query's public plan, fixed at admission.
struct Training {
    plan: release::training::TrainingPlan,
    /// The module's pretrained parameters (a function of the module alone).
    initial: Vec<f64>,
    /// One name per parameter, from the module's layout.
    names: Vec<String>,
    /// The public bound on gradients over all steps.
    max_sampled: u64,
}

impl Enclave {
    /// Boot: ephemeral key from platform randomness, policy measured and locked.
    pub fn boot(
        platform: Box<dyn Platform>,
        policy: Policy,
        host: HostClient,
        workers: Workers,
    ) -> Result<Arc<Enclave>, BootError> {
        let mut seed = [0u8; 32];
        platform.random(&mut seed)?;
        let key = SigningKey::from_seed(seed);
        seed.zeroize();
        let policy_digest = policy.digest();
        platform.extend_and_lock(POLICY_PCR, policy_digest.as_bytes())?;
        let boot_evidence = platform.attest(None, policy_digest.as_bytes(), &key.public_key())?;
        // The image this enclave runs, read from its own evidence: every earlier signer of
        // the log must have run the same one.
        let own_image = tlog::signer::own_image(
            platform.kind(),
            &key.public_key(),
            &policy_digest,
            &boot_evidence,
            now_secs(),
            platform.simulated(),
            platform.emulated_nsm(),
        )
        .map_err(|e| BootError::OwnEvidence(e.to_string()))?;
        let evidence_digest = host.put_evidence(&boot_evidence)?;
        let origin = tlog::checkpoint::origin_for_owner(policy.owner_public_key.as_slice());
        let log = crate::audit_log::resume(&host, origin, &own_image, platform.simulated(), platform.emulated_nsm())?;
        let sandbox =
            Sandbox::new(SandboxConfig::from_policy(&policy)).map_err(|e| BootError::Sandbox(e.to_string()))?;
        let tls = crate::tls::server_config(&key)?;
        Ok(Arc::new(Enclave {
            platform,
            key,
            policy,
            policy_digest,
            boot_evidence,
            evidence_digest,
            host,
            sandbox,
            tls,
            state: Mutex::new(State::default()),
            audit: Mutex::new(log),
            job_lock: Mutex::new(()),
            workers,
        }))
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }

    pub fn policy_digest(&self) -> Digest {
        self.policy_digest
    }

    pub(crate) fn platform(&self) -> protocol::platform::Platform {
        self.platform.kind()
    }

    pub(crate) fn simulated(&self) -> bool {
        self.platform.simulated()
    }

    pub(crate) fn boot_evidence(&self) -> &[u8] {
        &self.boot_evidence
    }

    pub(crate) fn sign<T: serde::Serialize>(&self, context: &str, value: &T) -> Signed {
        self.key.sign(context, value)
    }

    /// Serve one client connection with the default [`ChannelLimits`].
    pub fn serve(self: &Arc<Self>, stream: Stream) -> Result<(), TransportError> {
        self.serve_with(stream, &ChannelLimits::default())
    }

    /// Serve one client connection until it closes. Errors end the connection only.
    /// The handshake must finish within `handshake_timeout`, and each request arrive
    /// within `idle_timeout` of the previous reply. A job is not idle time: the enclave
    /// does not read while it runs, and its reply is written at its deadline.
    pub fn serve_with(self: &Arc<Self>, stream: Stream, limits: &ChannelLimits) -> Result<(), TransportError> {
        stream.set_write_timeout(Some(limits.idle_timeout))?;
        let conn = rustls::ServerConnection::new(self.tls.clone())
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        let mut tls = rustls::StreamOwned::new(conn, Deadlined::new(stream, Instant::now() + limits.handshake_timeout));
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        // Per-connection protocol state: evidence first, then at most one key release.
        let mut attested = false;
        let mut key_released = false;
        loop {
            tls.sock.set_deadline(Instant::now() + limits.idle_timeout);
            let msg: ClientMessage = match transport::recv(&mut tls) {
                Ok(m) => m,
                Err(TransportError::Closed) => return Ok(()),
                Err(TransportError::Decode(e)) => {
                    let reply = EnclaveMessage::Error { code: Code::MalformedMessage, message: e.to_string() };
                    let _ = transport::send(&mut tls, &reply);
                    return Ok(());
                }
                Err(e @ TransportError::Frame(_)) => {
                    let reply = EnclaveMessage::Error { code: Code::OversizedMessage, message: e.to_string() };
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
                _ if !attested => Err(refuse(Code::NotAttested, "ask for evidence on this connection first")),
                ClientMessage::ReleaseKey { .. } if key_released => {
                    Err(refuse(Code::SecondKeyRelease, "one key release per channel"))
                }
                ClientMessage::ReleaseKey { dataset_digest, data_key, grant } => {
                    key_released = true;
                    self.release_key(dataset_digest, data_key, &grant)
                }
                ClientMessage::ProveLog { old_size } => self.prove_log(old_size),
                ClientMessage::SubmitJob { spec, module_blob, sealed_index_blob, proof } => match exporter(&tls.conn) {
                    Ok(ex) => self.submit(&ex, &spec, module_blob, sealed_index_blob, &proof),
                    Err(r) => Err(r),
                },
            };
            match reply {
                Ok(reply) => transport::send(&mut tls, &reply)?,
                Err(r) => {
                    // A refusal ends the channel: the peer reconnects and attests afresh.
                    let reply = EnclaveMessage::Error { code: r.code, message: r.message.clone() };
                    let _ = transport::send(&mut tls, &reply);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                    return Ok(());
                }
            }
        }
    }

    /// Answer a connection over the channel cap: finish its TLS handshake so the client
    /// can read why, send `too_many_channels`, close. Nothing the client sends is read
    /// as a request. All of it within [`REFUSAL_TIMEOUT`].
    pub fn refuse_channel(&self, stream: Stream, max_channels: usize) {
        let _ = stream.set_write_timeout(Some(REFUSAL_TIMEOUT));
        let Ok(conn) = rustls::ServerConnection::new(self.tls.clone()) else { return };
        let mut tls = rustls::StreamOwned::new(conn, Deadlined::new(stream, Instant::now() + REFUSAL_TIMEOUT));
        let reply = EnclaveMessage::Error {
            code: Code::TooManyChannels,
            message: format!("this enclave serves at most {max_channels} channels at once; try again later"),
        };
        if transport::send(&mut tls, &reply).is_err() {
            return;
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        // Drain briefly (a client sends its first request right after the handshake):
        // closing with that request unread would reset the connection, and a reset can
        // discard the error frame before the client reads it. Briefly, because this one
        // thread answers every refused connection.
        let _ = tls.sock.get_ref().shutdown_write();
        tls.sock.set_deadline(Instant::now() + REFUSAL_DRAIN);
        let mut sink = [0u8; 4096];
        while matches!(tls.sock.read(&mut sink), Ok(n) if n > 0) {}
    }

    fn attest(&self, conn: &rustls::ServerConnection, nonce: &[u8]) -> Result<EnclaveMessage, Refusal> {
        if !(NONCE_MIN..=NONCE_MAX).contains(&nonce.len()) {
            return Err(refuse(Code::BadNonce, format!("nonce must be {NONCE_MIN}..={NONCE_MAX} bytes")));
        }
        let exporter = exporter(conn)?;
        let public_key = self.key.public_key();
        let binding = channel_binding(nonce, &exporter, &public_key, &self.policy_digest);
        let document = self.platform.attest(Some(nonce), binding.as_bytes(), &public_key)?;
        Ok(EnclaveMessage::Evidence {
            platform: self.platform.kind(),
            simulated: self.platform.simulated(),
            document: Bytes(document),
            public_key: Bytes(public_key),
            policy_digest: self.policy_digest,
        })
    }

    fn me<'a>(&'a self, public_key: &'a [u8]) -> Me<'a> {
        Me { policy: &self.policy, policy_digest: &self.policy_digest, public_key }
    }

    fn release_key(&self, dataset: Digest, key: DataKey, grant: &Signed) -> Result<EnclaveMessage, Refusal> {
        let now = now_secs();
        let mut state = self.state.lock().expect("state lock");
        let public_key = self.key.public_key();
        let g = crate::admission::check_grant(&self.me(&public_key), &state.grants, grant, &dataset, now)?;
        let mut rec = self.record(AuditEvent::KeyRelease, &g.collaborator, "accepted", now);
        rec.job_id = Some(g.job_id.clone());
        rec.grant_id = Some(g.grant_id.clone());
        rec.dataset_digest = Some(g.dataset_digest);
        rec.query_digest = Some(g.query_digest);
        rec.epsilon = Some(g.epsilon.clone());
        rec.delta = Some(g.delta.clone());
        rec.budget_before = Some(g.ledger.collaborator_epsilon_before.clone());
        rec.budget_after = Some(g.ledger.collaborator_epsilon_after.clone());
        let receipt = self.append_audit(rec)?;
        state.data_keys.insert(dataset, key);
        state.grants.seen.insert(g.grant_id.clone());
        state.grants.pending.insert(g.query_digest, g.clone());
        Ok(EnclaveMessage::KeyAccepted { grant_id: g.grant_id, receipt })
    }

    /// The current checkpoint and a consistency proof from the owner's last checkpoint.
    /// The owner checks it before sending any key; an owner that holds a bigger tree than
    /// this enclave has been handed an older log (a rollback) and is refused here too.
    fn prove_log(&self, old_size: u64) -> Result<EnclaveMessage, Refusal> {
        let log = self.audit.lock().expect("audit lock");
        let (checkpoint, consistency) = crate::audit_log::prove(&log, &self.key, old_size).map_err(|e| {
            refuse(
                Code::LogRolledBack,
                format!("this enclave's log has {} records; the checkpoint held has {old_size}: {e}", log.tree.size()),
            )
        })?;
        Ok(EnclaveMessage::LogProof { checkpoint, consistency })
    }

    pub(crate) fn record(&self, event: AuditEvent, principal: &str, outcome: &str, time: u64) -> AuditRecord {
        AuditRecord {
            index: 0,
            time,
            event,
            principal: principal.into(),
            job_id: None,
            grant_id: None,
            dataset_digest: None,
            policy_digest: self.policy_digest,
            module_hash: None,
            query_digest: None,
            result_digest: None,
            evidence_digest: self.evidence_digest,
            platform: self.platform.kind(),
            simulated: self.platform.simulated(),
            mechanism: None,
            epsilon: None,
            delta: None,
            sensitivity: None,
            budget_before: None,
            budget_after: None,
            outcome: outcome.into(),
            diagnostics: None,
        }
    }

    /// Log a record (index assigned under the log lock) and return its receipt. An
    /// append the host refuses is an error: the caller then changes nothing.
    pub(crate) fn append_audit(&self, rec: AuditRecord) -> Result<LogReceipt, Refusal> {
        let mut log = self.audit.lock().expect("audit lock");
        Ok(crate::audit_log::append(&mut log, &self.host, &self.key, rec)?)
    }

    /// Run one submitted job. Before the spend, a refusal with a precise code (it depends
    /// on no data); after it, the reply comes from [`conclude`] at the job's deadline.
    fn submit(
        &self,
        exporter: &[u8],
        spec: &QuerySpec,
        module_blob: Digest,
        index_blob: Digest,
        proof: &Bytes,
    ) -> Result<EnclaveMessage, Refusal> {
        let _one_job_at_a_time = self.job_lock.lock().expect("job lock");
        // Names the query everywhere below: the proof, the cache, the grant, the records.
        let query_digest = spec.digest();
        crate::admission::check_proof(&self.policy, exporter, spec, &query_digest, proof)?;
        if let Some(cached) = self.cached(spec, &query_digest)? {
            return Ok(cached);
        }
        let admitted = self.admit(spec, &query_digest, module_blob, index_blob, now_secs())?;
        // The clock is read once more, at the spend: the deadline counts from here. What
        // came before (admission, compiling the module) depends only on public inputs.
        let start = Instant::now();
        let start_wall_ms = now_millis();
        let deadline = start + Duration::from_millis(spec.deadline_ms);
        let job = SpentJob {
            job_id: spec.job_id.clone(),
            collaborator: spec.collaborator.clone(),
            dataset_digest: spec.dataset_digest,
            module_hash: spec.module_hash,
            query_digest,
            grant: admitted.grant.clone(),
            epsilon: Decimal::from(admitted.cost.epsilon),
            delta: Decimal::from(admitted.cost.delta),
            deadline,
            // The second in which the deadline falls: never after the reply leaves.
            released_at: start_wall_ms.saturating_add(spec.deadline_ms) / 1000,
        };
        // The spend. From here on the module sees data, so whatever happens the grant is
        // gone, and nothing leaves but what `conclude` builds.
        self.state.lock().expect("state lock").grants.pending.remove(&job.query_digest);
        let diag = std::cell::RefCell::new(Diagnostics::default());
        let outcome = self.run_spent(spec, admitted, start, deadline, &diag);
        let sealed = self.seal_diagnostics(&job, &diag.into_inner());
        let (reply, signed) = conclude(self, job, outcome, sealed);
        if let Some(signed) = signed {
            self.state.lock().expect("state lock").released.insert(query_digest, signed);
        }
        Ok(reply)
    }

    /// Averaging defence: the identical query (same query digest, which names the job,
    /// collaborator, inputs and outputs with their ε; same dataset; same module) was
    /// answered already. Return that signed answer: no grant needed, nothing spent, no data
    /// read, no new noise.
    fn cached(&self, spec: &QuerySpec, query_digest: &Digest) -> Result<Option<EnclaveMessage>, Refusal> {
        let cached = self.state.lock().expect("state lock").released.get(query_digest).cloned();
        let Some(signed) = cached else { return Ok(None) };
        let mut rec = self.record(
            AuditEvent::JobCached,
            &spec.collaborator,
            "released again from cache; nothing spent",
            now_secs(),
        );
        rec.job_id = Some(spec.job_id.clone());
        rec.dataset_digest = Some(spec.dataset_digest);
        rec.module_hash = Some(spec.module_hash);
        rec.query_digest = Some(*query_digest);
        rec.result_digest = Some(Digest::of(signed.payload.as_slice()));
        rec.epsilon = Some(Decimal::literal("0"));
        let receipt = self.append_audit(rec)?;
        Ok(Some(EnclaveMessage::JobResult { result: signed, receipt }))
    }

    /// Every check that can refuse a job, all on public inputs (policy, query, grant,
    /// module, sealed index); no data is read here.
    fn admit(
        &self,
        spec: &QuerySpec,
        query_digest: &Digest,
        module_blob: Digest,
        index_blob: Digest,
        now: u64,
    ) -> Result<Admitted, Refusal> {
        let p = &self.policy;
        let cost = crate::admission::check_query(p, spec)?;
        crate::admission::check_module_blob(spec, &module_blob)?;
        let (grant, key) = {
            let state = self.state.lock().expect("state lock");
            let key = state.data_keys.get(&spec.dataset_digest).cloned();
            let grant =
                crate::admission::check_grant_covers(spec, query_digest, &state.grants, key.is_some(), &cost, now)?;
            (grant, key.expect("checked: the data key is released"))
        };
        let wasm = self.host.get_blob(&module_blob)?;
        let module = self.sandbox.admit(&wasm).map_err(|e| refuse(Code::ModuleRejected, e.to_string()))?;
        crate::admission::check_module(p, spec, &module_blob, &module.digest(), module.inputs())?;
        // Started before the spend, and before the sealed index is fetched (the host's last
        // sight of the job before the spend): they compile the module, a function of
        // public inputs, in a time that is nobody's business but the supervisor's.
        let label = spec.training.as_ref().map(|t| t.label.as_str());
        let workers = JobWorkers::start(
            &self.workers,
            &crate::workers::JobSpec {
                sandbox: &self.sandbox,
                module: &module,
                wasm: &wasm,
                inputs: &spec.inputs,
                label,
                fuel_per_unit: p.sandbox.fuel_per_unit,
            },
        );
        // Value sources against the module's declared outputs, and every noise scale.
        let acc = Accumulator::new(spec, p, module.output_names())?;
        let index = crate::admission::check_index(p, spec, &self.host.get_blob(&index_blob)?)?;
        let training = match crate::admission::check_training(p, spec, module.training())? {
            None => None,
            Some(plan) => {
                // Public: the module's own parameters, computed before any data is read.
                let initial = self
                    .sandbox
                    .initial_params(&module, p.sandbox.fuel_per_unit)
                    .map_err(|e| refuse(Code::ModuleNotTrainable, format!("cleanroom_initial_params: {e}")))?;
                let layout = module.training().expect("checked: trainable");
                let max_units = p.sealed_chunks.saturating_mul(p.rows_per_chunk);
                let max_sampled = plan.max_sampled_units(max_units);
                Some(Training { plan, initial, names: layout.parameter_names(), max_sampled })
            }
        };
        let schedule =
            crate::admission::check_deadline(p, spec, training.as_ref().map(|t| (&t.plan, t.initial.len())))?;
        Ok(Admitted { grant, key, module, index, schedule, acc, cost, training, workers })
    }

    /// Owner-only diagnostics, sealed to the policy's key (fixed length), or nothing when
    /// the policy names no key.
    fn seal_diagnostics(&self, job: &SpentJob, d: &Diagnostics) -> Option<OwnerSealed> {
        let key = self.policy.diagnostics_key.as_ref()?;
        let aad = protocol::diagnostics::job_aad(&job.query_digest, &job.grant.grant_id);
        // Sealing fails only if the system's randomness does; the record then carries none.
        protocol::diagnostics::seal(key.as_slice(), &aad, d).ok().map(OwnerSealed)
    }

    /// The job after the spend. Every error here is a [`JobFailed`] and nothing more (its
    /// reason goes only into the owner's sealed diagnostics); a fault while scoring one unit
    /// makes that unit absent and the job goes on.
    fn run_spent(
        &self,
        spec: &QuerySpec,
        a: Admitted,
        start: Instant,
        deadline: Instant,
        diag: &std::cell::RefCell<Diagnostics>,
    ) -> Result<DpRelease, JobFailed> {
        let failed = |why: &str, e: &dyn std::fmt::Display| {
            diag.borrow_mut().failure = Some(format!("{why}: {e}"));
            JobFailed
        };
        let Admitted { key, module, index, schedule, mut acc, training, mut workers, .. } = a;
        let mut seed = [0u8; 32];
        self.platform.random(&mut seed).map_err(|e| failed("platform randomness", &e))?;
        let mut units = UnitAssembler::new(
            &self.policy.privacy_unit,
            UnitAssembler::needed_columns(spec),
            self.policy.max_rows_per_unit,
            seed,
        );
        let fuel = self.policy.sandbox.fuel_per_unit;
        // The workers were started at admission; a job whose workers did not come up runs
        // on this thread instead (the same release), and only the owner learns why.
        if workers.ready().is_some() {
            *diag.borrow_mut().faults.entry("workers_unavailable".into()).or_default() += 1;
        }
        // Checked once here, so a runner every worker builds below cannot fail.
        self.sandbox.unit_runner(&module, &spec.inputs, fuel, deadline).map_err(|e| failed("sandbox", &e))?;
        let mut scoring = Pipeline { workers: &mut workers, in_flight: None };
        // A training job keeps its units: every step samples from all of them.
        let mut kept: Vec<protocol::table::RecordBatch> = Vec::new();
        let keep = training.is_some();
        let mut pending: Vec<protocol::table::RecordBatch> = Vec::new();
        let mut opener = Opener::new(key, spec.dataset_digest);
        // Chunks are fetched on the public schedule by a thread of their own, whatever the
        // scoring does: every chunk at its instant, never earlier, never later, even after a
        // failure. Scoring reads them from a short queue; if it falls so far behind that the
        // queue is full, the chunk is dropped (the fetch still happened on time) and the job
        // fails at its deadline. So the host's view of the fetches is the schedule itself.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, String>>(FETCH_QUEUE);
        let overrun = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let chunks = &index.chunks;
            let overrun = &overrun;
            scope.spawn(move || {
                for (i, digest) in chunks.iter().enumerate() {
                    crate::boundary::sleep_until(start + schedule.fetch_at(i as u64));
                    let blob = self.host.get_blob(digest).map_err(|e| e.to_string());
                    match tx.try_send(blob) {
                        Ok(()) | Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {}
                        Err(std::sync::mpsc::TrySendError::Full(_)) => {
                            overrun.store(true, std::sync::atomic::Ordering::SeqCst)
                        }
                    }
                }
            });
            for i in 0..index.chunks.len() {
                let blob = rx
                    .recv()
                    .map_err(|_| failed("schedule", &"the fetcher ended early"))?
                    .map_err(|e| failed("host", &e))?;
                if overrun.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(failed(
                        "schedule",
                        &format!("scoring fell {FETCH_QUEUE} chunks behind before chunk {i}"),
                    ));
                }
                let chunk = decode_chunk(&blob).map_err(|e| failed("chunk", &e))?;
                let batch = opener.open_next(chunk).map_err(|e| failed("ingest", &e))?;
                if batch.rows as u64 > self.policy.rows_per_chunk {
                    return Err(failed("ingest", &format!("chunk {i} holds more rows than the index declares")));
                }
                diag.borrow_mut().rows += batch.rows as u64;
                units.push(&batch, |u| pending.push(u)).map_err(|e| failed("units", &e))?;
                if keep {
                    kept.append(&mut pending);
                } else {
                    scoring
                        .push(std::mem::take(&mut pending), None, deadline, &mut acc, diag)
                        .map_err(|e| failed("workers", &e))?;
                }
            }
            Ok(())
        })?;
        pending.extend(units.finish());
        if keep {
            kept.append(&mut pending);
            // With evaluation outputs, scoring counts them again below.
            if spec.outputs.is_empty() {
                diag.borrow_mut().units += kept.len() as u64;
            }
        } else {
            scoring.push(pending, None, deadline, &mut acc, diag).map_err(|e| failed("workers", &e))?;
        }
        scoring.finish(&mut acc, diag).map_err(|e| failed("workers", &e))?;
        if opener.finish().map_err(|e| failed("ingest", &e))? != spec.dataset_digest {
            return Err(failed("ingest", &"decrypted content does not match the dataset digest"));
        }
        if Instant::now() > deadline {
            return Err(failed("schedule", &"scoring ended after the deadline"));
        }
        self.platform.random(&mut seed).map_err(|e| failed("platform randomness", &e))?;
        let mut rng = dp::seeded_rng(seed);
        seed.zeroize();
        let Some(t) = training else {
            return acc.finish_dp(&mut rng).map_err(|e| failed("release", &e));
        };
        let label = &spec.training.as_ref().expect("a training plan comes from a training query").label;
        self.sandbox.train_runner(&module, &spec.inputs, label, fuel, deadline).map_err(|e| failed("sandbox", &e))?;
        // One step's gradients on every worker, in the order of the sampled units. A lost
        // worker stops training (the job then fails: nothing is released).
        let mut lost: Option<WorkerError> = None;
        let mut gradients = |picked: &[usize], at: &std::sync::Arc<[f64]>| {
            let units: Vec<&protocol::table::RecordBatch> = picked.iter().map(|&u| &kept[u]).collect();
            let results = match scoring.workers.gradients(&units, at, deadline) {
                Ok(r) => r,
                Err(e) => {
                    lost.get_or_insert(e);
                    vec![Err("worker_lost".to_string()); units.len()]
                }
            };
            let mut d = diag.borrow_mut();
            results
                .into_iter()
                .map(|g| g.map_err(|kind| *d.faults.entry(format!("gradient_{kind}")).or_default() += 1).ok())
                .collect()
        };
        let trained =
            release::training::train_batched(&t.plan, t.initial, kept.len(), t.max_sampled, &mut gradients, &mut rng)
                .map_err(|e| failed("training", &e))?;
        if let Some(e) = lost {
            return Err(failed("workers", &e));
        }
        // Evaluation outputs: every unit scored with the trained parameters.
        let evaluation = if spec.outputs.is_empty() {
            None
        } else {
            scoring.push(kept, Some(trained.params()), deadline, &mut acc, diag).map_err(|e| failed("workers", &e))?;
            scoring.finish(&mut acc, diag).map_err(|e| failed("workers", &e))?;
            Some(acc.finish_dp(&mut rng).map_err(|e| failed("release", &e))?)
        };
        if Instant::now() > deadline {
            return Err(failed("schedule", &"training ended after the deadline"));
        }
        Ok(DpRelease::with_training(&t.plan, trained, &t.names, evaluation))
    }
}

/// Scoring one batch behind the supervisor: a batch's outcomes are absorbed once the next
/// batch is with the workers (or at [`Pipeline::finish`]), so the supervisor decrypts and
/// assembles while the workers score. Absorbed in unit order whatever the workers.
struct Pipeline<'w> {
    workers: &'w mut JobWorkers,
    in_flight: Option<Vec<protocol::table::RecordBatch>>,
}

impl Pipeline<'_> {
    fn push(
        &mut self,
        batch: Vec<protocol::table::RecordBatch>,
        params: Option<&[f64]>,
        deadline: Instant,
        acc: &mut Accumulator,
        diag: &std::cell::RefCell<Diagnostics>,
    ) -> Result<(), WorkerError> {
        self.workers.submit_scores(&batch.iter().collect::<Vec<_>>(), params, deadline)?;
        let previous = self.in_flight.replace(batch);
        Self::absorb_all(self.workers, previous, acc, diag)
    }

    fn finish(&mut self, acc: &mut Accumulator, diag: &std::cell::RefCell<Diagnostics>) -> Result<(), WorkerError> {
        Self::absorb_all(self.workers, self.in_flight.take(), acc, diag)
    }

    fn absorb_all(
        workers: &mut JobWorkers,
        batch: Option<Vec<protocol::table::RecordBatch>>,
        acc: &mut Accumulator,
        diag: &std::cell::RefCell<Diagnostics>,
    ) -> Result<(), WorkerError> {
        let Some(batch) = batch else { return Ok(()) };
        for (unit, outcome) in batch.iter().zip(workers.collect()?) {
            absorb(acc, unit, outcome, diag);
        }
        Ok(())
    }
}

/// Absorb one unit's scores into the accumulator. A fault makes that unit absent, nothing
/// else changes; m outputs per row, row-major, in the order of the module's output names.
fn absorb(
    acc: &mut Accumulator,
    unit: &protocol::table::RecordBatch,
    result: UnitOutcome,
    diag: &std::cell::RefCell<Diagnostics>,
) {
    let fault = match result {
        Ok(scores) if acc.add_unit(unit, &scores) => None,
        Ok(_) => Some("rejected_scores".to_string()),
        Err(kind) => Some(kind),
    };
    let mut d = diag.borrow_mut();
    d.units += 1;
    if let Some(kind) = fault {
        *d.faults.entry(kind).or_default() += 1;
    }
}

fn exporter(conn: &rustls::ServerConnection) -> Result<[u8; 32], Refusal> {
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, None)
        .map_err(|e| refuse(Code::TlsExporter, e.to_string()))?;
    Ok(exporter)
}
