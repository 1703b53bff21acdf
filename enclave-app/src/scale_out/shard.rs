//! A shard enclave's service: attest to whoever asks (the owner, before the job; the
//! coordinator, with the job), verify the coordinator in turn, read only the units of its
//! assigned range, and send one padded report at the job's reply instant.
//!
//! A shard releases nothing to the host: its only output about data is the report, and
//! that goes only to a peer that proved it is the owner's image under the owner's policy,
//! inside TLS. The report leaves at `reply_after_ms` after the work arrived, whatever the
//! work took; a shard not done by then reports a failure (same size, same instant).

use super::peer::{exporter, message_name, Identity, PeerError};
use crate::host::HostClient;
use protocol::sealed::{decode_chunk, Opener};
use protocol::table::{ColumnData, RecordBatch, TOKEN_LEN};
use release::{Accumulator, UnitAssembler};
use sandbox::{Sandbox, SandboxConfig};
use shard::report::{Partial, Report, MAX_REPORT_SIZE, MIN_REPORT_SIZE};
use shard::wire::{JobBinding, PeerMessage, Role, Work};
use shard::Plan;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use transport::{Listener, Stream, TransportError};

/// Longest a shard waits for the next message before the work arrives.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply delay a job may ask for.
pub const MAX_REPLY_AFTER: Duration = Duration::from_secs(3600);
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardServiceError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("the work does not match the job: {0}")]
    Work(&'static str),
    #[error("the job asks for {0}")]
    BadJob(String),
}

pub struct ShardService {
    id: Identity,
    host: HostClient,
    sandbox: Sandbox,
}

impl ShardService {
    pub fn new(id: Identity, host: HostClient) -> Result<Arc<ShardService>, String> {
        let sandbox = Sandbox::new(SandboxConfig::from_policy(id.policy())).map_err(|e| e.to_string())?;
        Ok(Arc::new(ShardService { id, host, sandbox }))
    }

    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Serve connections forever, each on its own thread, at most [`MAX_CONNECTIONS`].
    pub fn serve(self: &Arc<Self>, listener: Listener) {
        let live = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok(stream) = listener.accept() else { continue };
            if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                live.fetch_sub(1, Ordering::SeqCst);
                continue; // dropped: closed unanswered
            }
            let (me, live) = (self.clone(), live.clone());
            let spawned = std::thread::Builder::new().name("shard-conn".into()).spawn(move || {
                if let Err(e) = me.connection(stream) {
                    // Public facts only: which step failed before the work, never data.
                    eprintln!("enclave-app shard: connection ended: {e}");
                }
                live.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                eprintln!("enclave-app shard: no thread for a connection");
            }
        }
    }

    fn connection(self: &Arc<Self>, stream: Stream) -> Result<(), ShardServiceError> {
        stream.set_read_timeout(Some(STEP_TIMEOUT)).map_err(TransportError::Io)?;
        stream.set_write_timeout(Some(STEP_TIMEOUT)).map_err(TransportError::Io)?;
        let conn =
            rustls::ServerConnection::new(self.id.tls_server()).map_err(|e| PeerError::Handshake(e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(TransportError::Io)?;
        }
        let ex = exporter(&tls.conn)?;
        let (job, nonce) = match transport::recv(&mut tls)? {
            PeerMessage::Hello { job, nonce } => (job, nonce.0),
            other => return Err(PeerError::Unexpected(message_name(&other)).into()),
        };
        let job_digest = job.as_ref().map(JobBinding::digest).unwrap_or_default();
        if let Some(j) = &job {
            if let Err(e) = check_job(j) {
                let _ = transport::send(&mut tls, &PeerMessage::Refused { reason: e.to_string() });
                return Err(e);
            }
        }
        let ours = self.id.fresh_nonce()?;
        let evidence = self.id.evidence(Role::Shard, &nonce, &ex, &job_digest, ours.clone())?;
        transport::send(&mut tls, &evidence)?;
        // The owner only attests us and hangs up; a coordinator proves itself and sends work.
        let Some(job) = job else { return Ok(()) };
        let msg = match transport::recv(&mut tls) {
            Err(TransportError::Closed) => return Ok(()),
            r => r?,
        };
        if let Err(e) = self.id.verify_peer(msg, Role::Coordinator, &ours, &ex, &job_digest) {
            let _ = transport::send(&mut tls, &PeerMessage::Refused { reason: e.to_string() });
            return Err(e.into());
        }
        let work = match transport::recv(&mut tls)? {
            PeerMessage::Work(w) => *w,
            other => return Err(PeerError::Unexpected(message_name(&other)).into()),
        };
        // The reply instant counts from here: a function of when the work arrived only.
        let arrived = Instant::now();
        let reply_at = arrived + Duration::from_millis(job.reply_after_ms);
        if let Err(e) = check_work(&job, &work) {
            let _ = transport::send(&mut tls, &PeerMessage::Refused { reason: e.to_string() });
            return Err(e);
        }
        let report = self.run(&job, work, arrived, reply_at);
        let padded = report
            .to_padded(job.report_size)
            .or_else(|_| Report::Failed { job: job_digest, shard: shard_of_report(&report) }.to_padded(job.report_size))
            .map_err(|e| ShardServiceError::BadJob(e.to_string()))?;
        crate::boundary::sleep_until(reply_at);
        tls.sock.set_write_timeout(Some(STEP_TIMEOUT)).map_err(TransportError::Io)?;
        transport::send(&mut tls, &PeerMessage::Report(protocol::Bytes(padded)))?;
        tls.conn.send_close_notify();
        let _ = std::io::Write::flush(&mut tls);
        Ok(())
    }

    /// The work on a thread of its own; whatever it has by `reply_at` is the report. The
    /// reply never waits for the work: a late work thread is left to stop (the sandbox
    /// starts no unit after the deadline) and its result is dropped.
    fn run(self: &Arc<Self>, job: &JobBinding, work: Work, arrived: Instant, reply_at: Instant) -> Report {
        let failed = Report::Failed { job: job.digest(), shard: work.shard };
        let (tx, rx) = mpsc::channel();
        let (me, job) = (self.clone(), job.clone());
        let spawned = std::thread::Builder::new().name("shard-work".into()).spawn(move || {
            let _ = tx.send(me.partial(&job, &work, arrived, reply_at));
        });
        if spawned.is_err() {
            return failed;
        }
        match rx.recv_timeout(reply_at.saturating_duration_since(Instant::now())) {
            Ok(Ok(p)) => Report::Partial(Box::new(p)),
            // The reason goes nowhere the host can read: the report just says failed.
            Ok(Err(_)) | Err(_) => failed,
        }
    }

    /// Read every chunk (authenticated, in order), keep the units of this shard's range,
    /// score each in a fresh sandbox instance, absorb it.
    fn partial(&self, job: &JobBinding, work: &Work, started: Instant, deadline: Instant) -> Result<Partial, String> {
        let policy = self.id.policy();
        let spec = &work.spec;
        let plan = Plan::new(job.shards).map_err(|e| e.to_string())?;
        let range = plan.range(work.shard).map_err(|e| e.to_string())?;
        let wasm = self.host.get_blob(&work.module_blob).map_err(|e| e.to_string())?;
        let module = self.sandbox.admit(&wasm).map_err(|e| e.to_string())?;
        crate::admission::check_module(policy, spec, &work.module_blob, &module.digest(), module.inputs())
            .map_err(|r| r.message)?;
        let mut acc = Accumulator::new(spec, policy, module.output_names()).map_err(|e| e.to_string())?;
        let index_bytes = self.host.get_blob(&work.index_blob).map_err(|e| e.to_string())?;
        let index = crate::admission::check_index(policy, spec, &index_bytes).map_err(|r| r.message)?;
        let mut seed = [0u8; 32];
        self.id.platform().random(&mut seed).map_err(|e| e.to_string())?;
        // The unit's token rides along so the shard can tell which units are its own.
        let mut needed = UnitAssembler::needed_columns(spec);
        needed.push(policy.privacy_unit.clone());
        let mut units = UnitAssembler::new(&policy.privacy_unit, needed, policy.max_rows_per_unit, seed);
        let fuel = policy.sandbox.fuel_per_unit;
        let mut runner = self.sandbox.unit_runner(&module, &spec.inputs, fuel, deadline).map_err(|e| e.to_string())?;
        let mut opener = Opener::new(work.data_key.clone(), spec.dataset_digest);
        let mut count = Counted::default();
        let mut mine = |u: RecordBatch, acc: &mut Accumulator| {
            let Some(token) = token_of(&u, &policy.privacy_unit) else { return };
            if !range.contains(&token) {
                return;
            }
            count.saw(token);
            // A fault makes the unit absent, as in one enclave.
            match runner.score(&u) {
                Ok(scores) => {
                    acc.add_unit(&u, &scores);
                }
                Err(_) => acc.add_absent(),
            }
        };
        // The host sees this shard's reads: they follow the policy's public schedule from
        // the work's arrival, as a single enclave's do, never the scoring.
        let schedule = release::training::schedule(spec, policy, None).ok_or("the schedule overflows")?;
        if started + schedule.minimum > deadline {
            return Err("the reply instant is before the schedule's worst case".into());
        }
        let mut pending = Vec::new();
        crate::fetch::on_schedule(&self.host, &index.chunks, started, &schedule, |_, blob| {
            let chunk = decode_chunk(&blob).map_err(|e| e.to_string())?;
            let batch = opener.open_next(chunk).map_err(|e| e.to_string())?;
            units.push(&batch, |u| pending.push(u)).map_err(|e| e.to_string())?;
            for u in pending.drain(..) {
                mine(u, &mut acc);
            }
            Ok::<(), String>(())
        })
        .map_err(|e| match e {
            crate::fetch::FetchError::Schedule(m)
            | crate::fetch::FetchError::Host(m)
            | crate::fetch::FetchError::Each(m) => m,
        })?;
        if let Some(u) = units.finish() {
            mine(u, &mut acc);
        }
        if opener.finish().map_err(|e| e.to_string())? != spec.dataset_digest {
            return Err("decrypted content does not match the dataset digest".into());
        }
        Ok(Partial {
            job: job.digest(),
            shard: work.shard,
            range,
            units: count.units,
            first_unit: count.first,
            last_unit: count.last,
            aggregates: acc.exact_aggregates(),
        })
    }
}

/// Units seen, and the first and last tokens (units arrive in token order).
#[derive(Default)]
struct Counted {
    units: u64,
    first: Option<[u8; TOKEN_LEN]>,
    last: Option<[u8; TOKEN_LEN]>,
}

impl Counted {
    fn saw(&mut self, token: [u8; TOKEN_LEN]) {
        self.units += 1;
        self.first.get_or_insert(token);
        self.last = Some(token);
    }
}

fn token_of(unit: &RecordBatch, column: &str) -> Option<[u8; TOKEN_LEN]> {
    match unit.column(column)? {
        ColumnData::Token(t) => t.first().copied(),
        _ => None,
    }
}

fn shard_of_report(r: &Report) -> u16 {
    match r {
        Report::Partial(p) => p.shard,
        Report::Failed { shard, .. } => *shard,
    }
}

/// The job's public parameters are within what a shard serves.
fn check_job(j: &JobBinding) -> Result<(), ShardServiceError> {
    Plan::new(j.shards).map_err(|e| ShardServiceError::BadJob(e.to_string()))?;
    if !(MIN_REPORT_SIZE..=MAX_REPORT_SIZE).contains(&j.report_size) {
        return Err(ShardServiceError::BadJob(format!("a report size of {} bytes", j.report_size)));
    }
    if Duration::from_millis(j.reply_after_ms) > MAX_REPLY_AFTER {
        return Err(ShardServiceError::BadJob(format!("a reply after {} ms", j.reply_after_ms)));
    }
    if !(16..=64).contains(&j.round.0.len()) {
        return Err(ShardServiceError::BadJob("a round nonce of the wrong length".into()));
    }
    Ok(())
}

/// The work is for the job the evidence was bound to.
fn check_work(j: &JobBinding, w: &Work) -> Result<(), ShardServiceError> {
    if w.shard >= j.shards {
        return Err(ShardServiceError::Work("shard index beyond the job's shards"));
    }
    if w.spec.digest() != j.query_digest || w.spec.job_id != j.job_id {
        return Err(ShardServiceError::Work("the query is not the job's"));
    }
    if w.spec.dataset_digest != j.dataset_digest {
        return Err(ShardServiceError::Work("the dataset is not the job's"));
    }
    if w.spec.training.is_some() {
        return Err(ShardServiceError::Work("training queries are not sharded"));
    }
    Ok(())
}
