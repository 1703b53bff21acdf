//! The coordinator enclave: takes one job from the owner over an attested channel,
//! attests every shard the owner named (and is attested by each), sends each its work,
//! collects one padded report per shard, merges them with every check in
//! `shard::collect`, adds the noise once and signs the release.
//!
//! Timeline (all instants public: fixed by the job before any data is read):
//! - before any work is sent, a shard that cannot be reached or attested refuses the job
//!   with a precise reason: no data was read, nothing is spent;
//! - the work is sent to every shard (the spend: from here the shards read data);
//! - reports are due `reply_after_ms` later; the coordinator waits `REPORT_GRACE` more;
//! - `RELEASE_TIME` after that it answers the owner: the signed release, or a failure
//!   with no partial release. A shard that lies, replays, dies or is late fails the job.

use super::peer::{client_config, exporter, message_name, server_name, Identity, PeerError};
use crate::host::HostClient;
use protocol::Bytes;
use release::Accumulator;
use sandbox::{Sandbox, SandboxConfig};
use shard::wire::{JobBinding, Outcome, PeerMessage, Role, RunRequest, ShardedResult, Work, RESULT_CONTEXT};
use shard::{Collect, ShardError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{Endpoint, Listener, Stream, TransportError};
use zeroize::Zeroize;

/// After the shards' reply instant, how long their reports may take to arrive.
pub const REPORT_GRACE: Duration = Duration::from_secs(2);
/// After the last instant a report may arrive, the time reserved for the checks, the
/// merge and the noise: the reply leaves at the end of it, whatever they took.
pub const RELEASE_TIME: Duration = Duration::from_secs(2);
/// Reaching and attesting one shard, before any work is sent.
const ATTEST_TIMEOUT: Duration = Duration::from_secs(20);
const OWNER_TIMEOUT: Duration = Duration::from_secs(60);

type PeerTls = rustls::StreamOwned<rustls::ClientConnection, Stream>;

pub struct CoordinatorService {
    id: Identity,
    host: HostClient,
    sandbox: Sandbox,
    /// Simulated platform only: noise from this seed, so tests can compare releases.
    fixed_noise: Option<[u8; 32]>,
}

impl CoordinatorService {
    /// `fixed_noise` is refused on anything but the simulated platform: noise an outsider
    /// knows protects no one.
    pub fn new(id: Identity, host: HostClient, fixed_noise: Option<[u8; 32]>) -> Result<Arc<Self>, String> {
        if fixed_noise.is_some() && !id.simulated() {
            return Err("--insecure-noise-seed is accepted on the simulated platform only".into());
        }
        let sandbox = Sandbox::new(SandboxConfig::from_policy(id.policy())).map_err(|e| e.to_string())?;
        Ok(Arc::new(CoordinatorService { id, host, sandbox, fixed_noise }))
    }

    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// One owner connection at a time: one job at a time.
    pub fn serve(self: &Arc<Self>, listener: Listener) {
        loop {
            let Ok(stream) = listener.accept() else { continue };
            if let Err(e) = self.owner_connection(stream) {
                eprintln!("enclave-app coordinator: connection ended: {e}");
            }
        }
    }

    fn owner_connection(&self, stream: Stream) -> Result<(), TransportError> {
        stream.set_read_timeout(Some(OWNER_TIMEOUT))?;
        stream.set_write_timeout(Some(OWNER_TIMEOUT))?;
        let conn = rustls::ServerConnection::new(self.id.tls_server())
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        let ex = exporter(&tls.conn).map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        let nonce = match transport::recv(&mut tls)? {
            PeerMessage::Hello { job: None, nonce } => nonce.0,
            _ => {
                let reason = "say hello (without a job) first".to_string();
                return transport::send(&mut tls, &PeerMessage::Refused { reason });
            }
        };
        match self.id.evidence(Role::Coordinator, &nonce, &ex, &Default::default(), Vec::new()) {
            Ok(e) => transport::send(&mut tls, &e)?,
            Err(e) => return transport::send(&mut tls, &PeerMessage::Refused { reason: e.to_string() }),
        }
        let run = match transport::recv(&mut tls) {
            Ok(PeerMessage::Run(r)) => *r,
            Err(TransportError::Closed) => return Ok(()),
            Ok(other) => {
                let reason = format!("expected a run request, got {}", message_name(&other));
                return transport::send(&mut tls, &PeerMessage::Refused { reason });
            }
            Err(e) => return Err(e),
        };
        let outcome = self.run(run);
        tls.sock.set_write_timeout(Some(OWNER_TIMEOUT))?;
        transport::send(&mut tls, &PeerMessage::Outcome(Box::new(outcome)))?;
        tls.conn.send_close_notify();
        let _ = std::io::Write::flush(&mut tls);
        Ok(())
    }

    fn run(&self, run: RunRequest) -> Outcome {
        let refused = |reason: String| Outcome::Refused { reason };
        // Everything before the work is sent depends on public inputs only.
        let shards = match u16::try_from(run.shards.len()) {
            Ok(n) => n,
            Err(_) => return refused("too many shards".into()),
        };
        let acc = match self.fresh_accumulator(&run) {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        let round = match self.id.fresh_nonce() {
            Ok(r) => r,
            Err(e) => return refused(e.to_string()),
        };
        let job = JobBinding {
            job_id: run.spec.job_id.clone(),
            query_digest: run.spec.digest(),
            dataset_digest: run.spec.dataset_digest,
            shards,
            round: Bytes(round),
            report_size: run.report_size,
            reply_after_ms: run.reply_after_ms,
        };
        let mut collect = match Collect::new(job.clone(), acc) {
            Ok(c) => c,
            Err(e) => return refused(e.to_string()),
        };
        if Duration::from_millis(job.reply_after_ms) > super::shard::MAX_REPLY_AFTER {
            return refused("reply_after_ms is too long".into());
        }
        // Attest every shard, in parallel, before any of them gets work.
        let job_ref = &job;
        let attested: Vec<Result<PeerTls, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = run
                .shards
                .iter()
                .map(|peer| {
                    scope.spawn(move || self.attest_shard(job_ref, peer).map_err(|e| format!("{}: {e}", peer.endpoint)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("attesting thread panicked".into()))).collect()
        });
        let mut channels = Vec::with_capacity(attested.len());
        for (i, a) in attested.into_iter().enumerate() {
            match a {
                Ok(tls) => channels.push(tls),
                Err(e) => return refused(format!("shard {i} was not attested, so no shard got work: {e}")),
            }
        }
        // The spend: the shards read data from here on. Nothing after this depends on
        // data except the release itself, and every reply leaves at `reply_at`.
        let start = Instant::now();
        let reports_by = start + Duration::from_millis(job.reply_after_ms) + REPORT_GRACE;
        let reply_at = reports_by + RELEASE_TIME;
        let reports: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = channels
                .into_iter()
                .enumerate()
                .map(|(i, tls)| {
                    let work = Work {
                        shard: i as u16,
                        spec: run.spec.clone(),
                        module_blob: run.module_blob,
                        index_blob: run.index_blob,
                        data_key: run.data_key.clone(),
                    };
                    scope.spawn(move || exchange(tls, work, reports_by))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("report thread panicked".into()))).collect()
        });
        for (i, r) in reports.into_iter().enumerate() {
            let shard = i as u16;
            match r {
                Ok(bytes) => {
                    let _ = collect.accept(shard, &bytes);
                }
                Err(why) => collect.fail(ShardError::Lost { shard, why }),
            }
        }
        let outcome = match collect.finish() {
            Ok(acc) => self.release(&run, &job, acc),
            Err(e) => Outcome::Failed { code: e.code().into(), message: e.to_string() },
        };
        if Instant::now() > reply_at {
            // The release took longer than its reserved time: leaving now would say so,
            // and so would the release; fail instead, as the single enclave does.
            return Outcome::Failed { code: "schedule".into(), message: "the release overran its time".into() };
        }
        crate::boundary::sleep_until(reply_at);
        outcome
    }

    /// The job's accumulator, built from the query and the admitted module's outputs
    /// exactly as every shard builds its own (the shapes must agree to merge).
    fn fresh_accumulator(&self, run: &RunRequest) -> Result<Accumulator, String> {
        let policy = self.id.policy();
        if run.spec.training.is_some() {
            return Err("training queries are not sharded".into());
        }
        crate::admission::check_query(policy, &run.spec).map_err(|r| r.message)?;
        let wasm = self.host.get_blob(&run.module_blob).map_err(|e| e.to_string())?;
        let module = self.sandbox.admit(&wasm).map_err(|e| e.to_string())?;
        crate::admission::check_module(policy, &run.spec, &run.module_blob, &module.digest(), module.inputs())
            .map_err(|r| r.message)?;
        Accumulator::new(&run.spec, policy, module.output_names()).map_err(|e| e.to_string())
    }

    /// Connect to a shard, have it attest to us and attest to it, both bound to the job.
    fn attest_shard(&self, job: &JobBinding, peer: &shard::ShardPeer) -> Result<PeerTls, PeerError> {
        let ep: Endpoint = peer.endpoint.parse().map_err(|e: TransportError| PeerError::Handshake(e.to_string()))?;
        let stream = Stream::connect_retry(&ep, ATTEST_TIMEOUT).map_err(|e| PeerError::Handshake(e.to_string()))?;
        let io = |e: std::io::Error| PeerError::Handshake(e.to_string());
        stream.set_read_timeout(Some(ATTEST_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(ATTEST_TIMEOUT)).map_err(io)?;
        let (config, recorder) = client_config()?;
        let conn =
            rustls::ClientConnection::new(config, server_name()).map_err(|e| PeerError::Handshake(e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(io)?;
        }
        let ex = exporter(&tls.conn)?;
        let job_digest = job.digest();
        let nonce = self.id.fresh_nonce()?;
        let t = |e: TransportError| PeerError::Handshake(e.to_string());
        transport::send(&mut tls, &PeerMessage::Hello { job: Some(job.clone()), nonce: Bytes(nonce.clone()) })
            .map_err(t)?;
        let reply: PeerMessage = transport::recv(&mut tls).map_err(t)?;
        let (key, theirs) = self.id.verify_peer(reply, Role::Shard, &nonce, &ex, &job_digest)?;
        if !recorder.certifies(&key) {
            return Err(PeerError::CertificateKey);
        }
        if key != peer.public_key.0 {
            return Err(PeerError::UnexpectedKey);
        }
        let mine = self.id.evidence(Role::Coordinator, &theirs, &ex, &job_digest, Vec::new())?;
        transport::send(&mut tls, &mine).map_err(t)?;
        Ok(tls)
    }

    /// Noise once, sign. The only place a sharded job's data leaves, and only as DP.
    fn release(&self, run: &RunRequest, job: &JobBinding, acc: Accumulator) -> Outcome {
        let mut seed = match self.fixed_noise {
            Some(s) => s,
            None => {
                let mut s = [0u8; 32];
                if self.id.platform().random(&mut s).is_err() {
                    return Outcome::Failed { code: "platform_randomness".into(), message: String::new() };
                }
                s
            }
        };
        let mut rng = dp::seeded_rng(seed);
        seed.zeroize();
        let released = match acc.finish_dp(&mut rng) {
            Ok(r) => r,
            Err(_) => return Outcome::Failed { code: "release".into(), message: String::new() },
        };
        let result = ShardedResult {
            job_id: job.job_id.clone(),
            query_digest: job.query_digest,
            dataset_digest: job.dataset_digest,
            policy_digest: self.id.policy_digest(),
            shard_keys: run.shards.iter().map(|s| s.public_key.clone()).collect(),
            platform: self.id.platform().kind(),
            simulated: self.id.simulated(),
            insecure_fixed_noise: self.fixed_noise.is_some(),
            outputs: released.into_outputs(),
        };
        Outcome::Released { result: self.id.key().sign(RESULT_CONTEXT, &result) }
    }
}

/// Send the work, then wait for the one report until `reports_by`.
fn exchange(mut tls: PeerTls, work: Work, reports_by: Instant) -> Result<Vec<u8>, String> {
    transport::send(&mut tls, &PeerMessage::Work(Box::new(work))).map_err(|e| e.to_string())?;
    let left = reports_by.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    tls.sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    match transport::recv(&mut tls) {
        Ok(PeerMessage::Report(b)) => Ok(b.0),
        Ok(other) => Err(format!("sent {} instead of a report", message_name(&other))),
        Err(TransportError::Closed) => Err("the channel closed before the report".into()),
        Err(e) => Err(e.to_string()),
    }
}
