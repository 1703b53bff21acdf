//! The coordinator's side of a sharded job (docs/scale-out.md). The coordinator is the
//! ordinary supervisor (`service::Enclave`): the owner releases the key and the grant to
//! it, names the shards it attested for that query, and the provider submits the job as
//! for any enclave. Admission, the spend, the noise, the signed result and the audit
//! record are the single enclave's; only where the exact aggregates come from differs.
//!
//! Timeline (all instants public: fixed by the query before any data is read):
//! - at admission, before the spend: every shard is reached and attested (and attests
//!   this enclave), bound to the job; one that cannot be refuses the job with a precise
//!   reason, no shard gets work and nothing is spent ([`attest_all`]);
//! - after the spend: every shard gets its work; their reports are due
//!   [`REPORT_GRACE`] + [`RELEASE_TIME`] before the job's deadline and are checked and
//!   merged ([`collect`]); the noise is added once, by the caller, and the reply leaves
//!   at the deadline, release or failure alike. A shard that lies, replays, dies or is
//!   late fails the whole job: no partial release.

use super::peer::{client_config, exporter, message_name, server_name, Identity, PeerError};
use protocol::wire::ShardPeer;
use protocol::Bytes;
use release::Accumulator;
use shard::wire::{JobBinding, PeerMessage, Role, Work};
use shard::{Collect, ShardError};
use std::time::{Duration, Instant};
use transport::{Endpoint, Stream, TransportError};

/// Shards one job may be spread across.
pub const MAX_SHARDS: u16 = 64;
/// After the shards' reply instant, how long their reports may take to arrive.
pub const REPORT_GRACE: Duration = Duration::from_secs(1);
/// After the last instant a report may arrive, the time reserved for the checks, the
/// merge, the noise and the signature, up to the job's deadline.
pub const RELEASE_TIME: Duration = Duration::from_secs(1);
/// Every report is exactly this long (padded), whatever it holds.
pub const REPORT_SIZE: u32 = 256 * 1024;
/// Reaching and attesting one shard, before any work is sent.
const ATTEST_TIMEOUT: Duration = Duration::from_secs(20);

type PeerTls = rustls::StreamOwned<rustls::ClientConnection, Stream>;

/// Every shard of a job, attested and waiting for its work.
pub struct Attested {
    job: JobBinding,
    channels: Vec<PeerTls>,
}

impl Attested {
    pub fn job(&self) -> &JobBinding {
        &self.job
    }
}

/// Attest every shard the owner named for `job`, in parallel, before any gets work. The
/// error names the first shard that failed and why: reachability and evidence, which
/// depend on the deployment, not on data.
pub fn attest_all(id: &Identity, job: JobBinding, peers: &[ShardPeer]) -> Result<Attested, String> {
    let job_ref = &job;
    let attested: Vec<Result<PeerTls, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = peers
            .iter()
            .map(|peer| scope.spawn(move || attest_shard(id, job_ref, peer).map_err(|e| e.to_string())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("attesting thread panicked".into()))).collect()
    });
    let mut channels = Vec::with_capacity(attested.len());
    for (i, a) in attested.into_iter().enumerate() {
        match a {
            Ok(tls) => channels.push(tls),
            Err(e) => {
                return Err(format!("shard {i} ({}) was not attested, so no shard got work: {e}", peers[i].endpoint))
            }
        }
    }
    Ok(Attested { job, channels })
}

/// After the spend: send shard `i` the work `work(i)`, wait for every report until
/// `reports_by`, check and merge them into `acc` (the coordinator's own empty
/// accumulator for the query). Any bad, missing or late report fails the whole job.
pub fn collect(
    attested: Attested,
    work: impl Fn(u16) -> Work + Sync,
    acc: Accumulator,
    reports_by: Instant,
) -> Result<Accumulator, ShardError> {
    let Attested { job, channels } = attested;
    let mut merge = Collect::new(job, acc)?;
    let work = &work;
    let reports: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = channels
            .into_iter()
            .enumerate()
            .map(|(i, tls)| scope.spawn(move || exchange(tls, work(i as u16), reports_by)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("report thread panicked".into()))).collect()
    });
    for (i, r) in reports.into_iter().enumerate() {
        let shard = i as u16;
        match r {
            // A bad report is recorded in `merge` and fails `finish`.
            Ok(bytes) => {
                let _ = merge.accept(shard, &bytes);
            }
            Err(why) => merge.fail(ShardError::Lost { shard, why }),
        }
    }
    merge.finish()
}

/// Connect to a shard, have it attest to us and attest to it, both bound to the job.
fn attest_shard(id: &Identity, job: &JobBinding, peer: &ShardPeer) -> Result<PeerTls, PeerError> {
    let ep: Endpoint = peer.endpoint.parse().map_err(|e: TransportError| PeerError::Handshake(e.to_string()))?;
    let stream = Stream::connect_retry(&ep, ATTEST_TIMEOUT).map_err(|e| PeerError::Handshake(e.to_string()))?;
    let io = |e: std::io::Error| PeerError::Handshake(e.to_string());
    stream.set_read_timeout(Some(ATTEST_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(ATTEST_TIMEOUT)).map_err(io)?;
    let (config, recorder) = client_config()?;
    let conn = rustls::ClientConnection::new(config, server_name()).map_err(|e| PeerError::Handshake(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(io)?;
    }
    let ex = exporter(&tls.conn)?;
    let job_digest = job.digest();
    let nonce = id.fresh_nonce()?;
    let t = |e: TransportError| PeerError::Handshake(e.to_string());
    transport::send(&mut tls, &PeerMessage::Hello { job: Some(job.clone()), nonce: Bytes(nonce.clone()) })
        .map_err(t)?;
    let reply: PeerMessage = transport::recv(&mut tls).map_err(t)?;
    let (key, theirs) = id.verify_peer(reply, Role::Shard, &nonce, &ex, &job_digest)?;
    if !recorder.certifies(&key) {
        return Err(PeerError::CertificateKey);
    }
    if key != peer.public_key.0 {
        return Err(PeerError::UnexpectedKey);
    }
    let mine = id.evidence(Role::Coordinator, &theirs, &ex, &job_digest, Vec::new())?;
    transport::send(&mut tls, &mine).map_err(t)?;
    Ok(tls)
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
