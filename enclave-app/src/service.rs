//! The enclave's service: attested channel, key release, job execution, release.

use crate::boundary::{conclude, JobFailed, OwnerSealed, SpentJob};
use crate::channels::{ChannelLimits, Deadlined, REFUSAL_DRAIN, REFUSAL_TIMEOUT};
use crate::host::{HostClient, HostError};
use crate::platform::{Platform, PlatformError};
use crate::scale_out::{coordinator, peer::Identity};
use crate::workers::{JobWorkers, UnitOutcome, WorkerError, Workers};
use protocol::audit::{AuditEvent, AuditRecord, LogReceipt};
use protocol::deadline::Schedule;
use protocol::diagnostics::Diagnostics;
use protocol::grant::BudgetGrant;
use protocol::job::QuerySpec;
use protocol::policy::{Decimal, Policy};
use protocol::sealed::{decode_chunk, DataKey, Opener, SealedIndex};
use protocol::signing::Signed;
use protocol::wire::{channel_binding, ClientMessage, EnclaveMessage, ShardPeer, EXPORTER_LABEL};
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
    /// Key, policy measurement, boot evidence, own image, TLS.
    #[error(transparent)]
    Identity(#[from] crate::scale_out::peer::PeerError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("a fixed noise seed is accepted on the simulated platform only")]
    FixedNoise,
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
    /// Queries the owner asked to run across shard enclaves (docs/scale-out.md), by query
    /// digest; taken at the spend.
    shard_plans: HashMap<Digest, Vec<ShardPeer>>,
}

pub struct Enclave {
    /// Platform, ephemeral key, policy, image, boot evidence, TLS configuration.
    id: Identity,
    evidence_digest: Digest,
    host: HostClient,
    sandbox: Sandbox,
    state: Mutex<State>,
    /// The log's tree. Lock order: `state` before `audit`.
    audit: Mutex<tlog::LogState>,
    job_lock: Mutex<()>,
    /// How jobs run their units (threads of this process never: see [`crate::workers`]).
    workers: Workers,
    /// Simulated platform only: the seed every job's noise is drawn from.
    fixed_noise: Option<[u8; 32]>,
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

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
    /// The owner named shards for this query: they read the data, this enclave merges.
    sharded: Option<Sharded>,
}

/// A sharded job at admission: its shards attested, waiting for their work.
struct Sharded {
    attested: coordinator::Attested,
    /// Shard i's attested key, in order: named in the signed result.
    keys: Vec<Bytes>,
    module_blob: Digest,
    index_blob: Digest,
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
        Self::boot_with(platform, policy, host, workers, None)
    }

    /// [`Enclave::boot`], with every job's noise drawn from `insecure_noise_seed` when it
    /// is set: simulated platform only (refused otherwise), for tests that compare two
    /// enclaves' releases bit for bit; every result it signs says so.
    pub fn boot_with(
        platform: Box<dyn Platform>,
        policy: Policy,
        host: HostClient,
        workers: Workers,
        insecure_noise_seed: Option<[u8; 32]>,
    ) -> Result<Arc<Enclave>, BootError> {
        if insecure_noise_seed.is_some() && !platform.simulated() {
            return Err(BootError::FixedNoise);
        }
        let id = Identity::boot(platform, policy)?;
        let evidence_digest = host.put_evidence(id.boot_evidence())?;
        let origin = tlog::checkpoint::origin_for_owner(id.policy().owner_public_key.as_slice());
        // Every earlier signer of the log must have run this enclave's own image.
        let log = crate::audit_log::resume(&host, origin, id.image(), id.simulated(), id.emulated_nsm())?;
        let sandbox =
            Sandbox::new(SandboxConfig::from_policy(id.policy())).map_err(|e| BootError::Sandbox(e.to_string()))?;
        Ok(Arc::new(Enclave {
            id,
            evidence_digest,
            host,
            sandbox,
            state: Mutex::new(State::default()),
            audit: Mutex::new(log),
            job_lock: Mutex::new(()),
            workers,
            fixed_noise: insecure_noise_seed,
        }))
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.id.key().public_key()
    }

    pub fn policy_digest(&self) -> Digest {
        self.id.policy_digest()
    }

    pub(crate) fn platform(&self) -> protocol::platform::Platform {
        self.id.platform().kind()
    }

    pub(crate) fn simulated(&self) -> bool {
        self.id.platform().simulated()
    }

    pub(crate) fn boot_evidence(&self) -> &[u8] {
        self.id.boot_evidence()
    }

    pub(crate) fn insecure_fixed_noise(&self) -> bool {
        self.fixed_noise.is_some()
    }

    /// The generator a job's noise is drawn from: seeded from the platform's randomness
    /// (or, simulated only, from the fixed seed).
    fn noise_rng(&self) -> Result<dp::DpRng, PlatformError> {
        let mut seed = self.fixed_noise.unwrap_or_default();
        if self.fixed_noise.is_none() {
            self.id.platform().random(&mut seed)?;
        }
        let rng = dp::seeded_rng(seed);
        seed.zeroize();
        Ok(rng)
    }

    pub(crate) fn sign<T: serde::Serialize>(&self, context: &str, value: &T) -> Signed {
        self.id.key().sign(context, value)
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
        let conn = rustls::ServerConnection::new(self.id.tls_server())
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        let mut tls = rustls::StreamOwned::new(conn, Deadlined::new(stream, Instant::now() + limits.handshake_timeout));
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        // Per-connection protocol state: evidence first, then at most one key release.
        let mut attested = false;
        let mut key_released = false;
        // The query whose grant this channel released: the only one it may name shards for.
        let mut granted_here: Option<Digest> = None;
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
                    self.release_key(dataset_digest, data_key, &grant).map(|(reply, query)| {
                        granted_here = Some(query);
                        reply
                    })
                }
                ClientMessage::NameShards { query_digest, shards } => {
                    self.name_shards(granted_here.as_ref(), query_digest, shards)
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
        let Ok(conn) = rustls::ServerConnection::new(self.id.tls_server()) else { return };
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
        let public_key = self.id.key().public_key();
        let binding = channel_binding(nonce, &exporter, &public_key, self.id.policy_digest_ref());
        let document = self.id.platform().attest(Some(nonce), binding.as_bytes(), &public_key)?;
        Ok(EnclaveMessage::Evidence {
            platform: self.id.platform().kind(),
            simulated: self.id.platform().simulated(),
            document: Bytes(document),
            public_key: Bytes(public_key),
            policy_digest: self.id.policy_digest(),
        })
    }

    fn me<'a>(&'a self, public_key: &'a [u8]) -> Me<'a> {
        Me { policy: self.id.policy(), policy_digest: self.id.policy_digest_ref(), public_key }
    }

    /// Accept a data key and a grant; returns the reply and the query the grant covers.
    fn release_key(&self, dataset: Digest, key: DataKey, grant: &Signed) -> Result<(EnclaveMessage, Digest), Refusal> {
        let now = now_secs();
        let mut state = self.state.lock().expect("state lock");
        let public_key = self.id.key().public_key();
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
        Ok((EnclaveMessage::KeyAccepted { grant_id: g.grant_id, receipt }, g.query_digest))
    }

    /// The owner names the shards a granted query runs on. Only on the channel that
    /// released that query's grant (whoever holds the owner's grant and data key is the
    /// owner here), and only while the grant is pending. The shards' keys are the ones the
    /// owner attested; the coordinator accepts no other enclave on those endpoints.
    fn name_shards(
        &self,
        granted_here: Option<&Digest>,
        query_digest: Digest,
        shards: Vec<ShardPeer>,
    ) -> Result<EnclaveMessage, Refusal> {
        if granted_here != Some(&query_digest) {
            return Err(refuse(Code::ShardsNotGranted, "name shards on the channel that released the query's grant"));
        }
        let n = u16::try_from(shards.len())
            .ok()
            .filter(|&n| (1..=crate::scale_out::coordinator::MAX_SHARDS).contains(&n))
            .ok_or_else(|| {
                let max = crate::scale_out::coordinator::MAX_SHARDS;
                refuse(Code::BadShards, format!("{} shards named; 1 to {max} are served", shards.len()))
            })?;
        let distinct = |f: fn(&ShardPeer) -> &[u8]| {
            shards.iter().map(f).collect::<std::collections::HashSet<_>>().len() == shards.len()
        };
        if !distinct(|p| p.endpoint.as_bytes()) || !distinct(|p| p.public_key.as_slice()) {
            return Err(refuse(Code::BadShards, "a shard is named twice"));
        }
        let mut state = self.state.lock().expect("state lock");
        if !state.grants.pending.contains_key(&query_digest) {
            return Err(refuse(Code::ShardsNotGranted, "the query's grant is no longer pending"));
        }
        state.shard_plans.insert(query_digest, shards);
        Ok(EnclaveMessage::ShardsNamed { query_digest, shards: n })
    }

    /// The current checkpoint and a consistency proof from the owner's last checkpoint.
    /// The owner checks it before sending any key; an owner that holds a bigger tree than
    /// this enclave has been handed an older log (a rollback) and is refused here too.
    fn prove_log(&self, old_size: u64) -> Result<EnclaveMessage, Refusal> {
        let log = self.audit.lock().expect("audit lock");
        let (checkpoint, consistency) = crate::audit_log::prove(&log, self.id.key(), old_size).map_err(|e| {
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
            policy_digest: self.id.policy_digest(),
            module_hash: None,
            query_digest: None,
            result_digest: None,
            evidence_digest: self.evidence_digest,
            platform: self.id.platform().kind(),
            simulated: self.id.platform().simulated(),
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
        Ok(crate::audit_log::append(&mut log, &self.host, self.id.key(), rec)?)
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
        crate::admission::check_proof(self.id.policy(), exporter, spec, &query_digest, proof)?;
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
            shard_keys: admitted.sharded.as_ref().map(|s| s.keys.clone()).unwrap_or_default(),
        };
        // The spend. From here on the module sees data, so whatever happens the grant is
        // gone, and nothing leaves but what `conclude` builds.
        {
            let mut state = self.state.lock().expect("state lock");
            state.grants.pending.remove(&job.query_digest);
            state.shard_plans.remove(&job.query_digest);
        }
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
        let p = self.id.policy();
        let cost = crate::admission::check_query(p, spec)?;
        crate::admission::check_module_blob(spec, &module_blob)?;
        let (grant, key, shard_plan) = {
            let state = self.state.lock().expect("state lock");
            let key = state.data_keys.get(&spec.dataset_digest).cloned();
            let grant =
                crate::admission::check_grant_covers(spec, query_digest, &state.grants, key.is_some(), &cost, now)?;
            (grant, key.expect("checked: the data key is released"), state.shard_plans.get(query_digest).cloned())
        };
        if shard_plan.is_some() && spec.training.is_some() {
            // DP-SGD samples from every unit at every step: a different protocol.
            return Err(refuse(Code::BadShards, "training queries are not sharded"));
        }
        let wasm = self.host.get_blob(&module_blob)?;
        let module = self.sandbox.admit(&wasm).map_err(|e| refuse(Code::ModuleRejected, e.to_string()))?;
        crate::admission::check_module(p, spec, &module_blob, &module.digest(), module.inputs())?;
        // Started before the spend, and before the sealed index is fetched (the host's last
        // sight of the job before the spend): they compile the module, a function of
        // public inputs, in a time that is nobody's business but the supervisor's.
        let label = spec.training.as_ref().map(|t| t.label.as_str());
        // A coordinator scores nothing itself: its shards do.
        let workers = JobWorkers::start(
            if shard_plan.is_some() { &Workers::InProcess } else { &self.workers },
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
        let sharded = match shard_plan {
            None => None,
            Some(peers) => Some(self.attest_shards(spec, query_digest, &schedule, &peers, module_blob, index_blob)?),
        };
        Ok(Admitted { grant, key, module, index, schedule, acc, cost, training, workers, sharded })
    }

    /// Before the spend: the shards' public job (their reply instant leaves the merge and
    /// the noise [`coordinator::RELEASE_TIME`] before the deadline, and must cover the
    /// table's worst case), and every shard attested for it.
    fn attest_shards(
        &self,
        spec: &QuerySpec,
        query_digest: &Digest,
        schedule: &Schedule,
        peers: &[ShardPeer],
        module_blob: Digest,
        index_blob: Digest,
    ) -> Result<Sharded, Refusal> {
        let reserved = coordinator::REPORT_GRACE + coordinator::RELEASE_TIME;
        let reply_after = Duration::from_millis(spec.deadline_ms)
            .checked_sub(reserved)
            .filter(|d| *d >= schedule.minimum)
            .ok_or_else(|| {
                let need = (schedule.minimum + reserved).as_millis() + 1;
                refuse(Code::DeadlineTooShort, format!("a sharded job needs a deadline of at least {need} ms"))
            })?;
        let job = shard::JobBinding {
            job_id: spec.job_id.clone(),
            query_digest: *query_digest,
            dataset_digest: spec.dataset_digest,
            shards: peers.len() as u16,
            round: Bytes(self.id.fresh_nonce().map_err(|e| refuse(Code::PlatformFailed, e.to_string()))?),
            report_size: coordinator::REPORT_SIZE,
            reply_after_ms: reply_after.as_millis() as u64,
        };
        let attested = coordinator::attest_all(&self.id, job, peers).map_err(|e| refuse(Code::ShardUnavailable, e))?;
        let keys = peers.iter().map(|p| p.public_key.clone()).collect();
        Ok(Sharded { attested, keys, module_blob, index_blob })
    }

    /// Owner-only diagnostics, sealed to the policy's key (fixed length), or nothing when
    /// the policy names no key.
    fn seal_diagnostics(&self, job: &SpentJob, d: &Diagnostics) -> Option<OwnerSealed> {
        let key = self.id.policy().diagnostics_key.as_ref()?;
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
        let failed = failure(diag);
        let Admitted { key, module, index, schedule, mut acc, training, mut workers, sharded, .. } = a;
        if let Some(sharded) = sharded {
            return self.run_sharded(spec, key, acc, sharded, deadline, diag);
        }
        let mut seed = [0u8; 32];
        self.id.platform().random(&mut seed).map_err(|e| failed("platform randomness", &e))?;
        let mut units = UnitAssembler::new(
            &self.id.policy().privacy_unit,
            UnitAssembler::needed_columns(spec),
            self.id.policy().max_rows_per_unit,
            seed,
        );
        let fuel = self.id.policy().sandbox.fuel_per_unit;
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
        // Chunks arrive on the public schedule (`crate::fetch`): the host's view of the
        // reading is the schedule itself, whatever the scoring does.
        let read = crate::fetch::on_schedule(&self.host, &index.chunks, start, &schedule, |i, blob| {
            let chunk = decode_chunk(&blob).map_err(|e| failed("chunk", &e))?;
            let batch = opener.open_next(chunk).map_err(|e| failed("ingest", &e))?;
            if batch.rows as u64 > self.id.policy().rows_per_chunk {
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
            Ok(())
        });
        read.map_err(|e| match e {
            crate::fetch::FetchError::Schedule(m) => failed("schedule", &m),
            crate::fetch::FetchError::Host(m) => failed("host", &m),
            crate::fetch::FetchError::Each(failed) => failed,
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
        seed.zeroize();
        let mut rng = self.noise_rng().map_err(|e| failed("platform randomness", &e))?;
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

    /// A sharded job after the spend: the shards read the data and report exact partials,
    /// which are checked and merged here; the noise is added once, as for one enclave.
    /// Why a shard failed goes only into the owner's sealed diagnostics.
    fn run_sharded(
        &self,
        spec: &QuerySpec,
        key: DataKey,
        acc: Accumulator,
        sharded: Sharded,
        deadline: Instant,
        diag: &std::cell::RefCell<Diagnostics>,
    ) -> Result<DpRelease, JobFailed> {
        let failed = failure(diag);
        let Sharded { attested, module_blob, index_blob, .. } = sharded;
        let work =
            |shard: u16| shard::Work { shard, spec: spec.clone(), module_blob, index_blob, data_key: key.clone() };
        let reports_by = deadline.checked_sub(coordinator::RELEASE_TIME).unwrap_or(deadline);
        let acc = coordinator::collect(attested, work, acc, reports_by)
            .map_err(|e| failed("shards", &format!("{}: {e}", e.code())))?;
        if Instant::now() > deadline {
            return Err(failed("schedule", &"the shards' reports were merged after the deadline"));
        }
        let mut rng = self.noise_rng().map_err(|e| failed("platform randomness", &e))?;
        acc.finish_dp(&mut rng).map_err(|e| failed("release", &e))
    }
}

/// How a job fails after the spend: its reason goes into the owner's sealed diagnostics,
/// and nothing but [`JobFailed`] comes out.
fn failure(diag: &std::cell::RefCell<Diagnostics>) -> impl Fn(&str, &dyn std::fmt::Display) -> JobFailed + '_ {
    move |why, e| {
        diag.borrow_mut().failure = Some(format!("{why}: {e}"));
        JobFailed
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
