//! Chunk fetches on the public schedule: the host's whole view of a job's reading.
//!
//! After the spend, the host sees every chunk request. If requests followed the scoring
//! (the next chunk fetched when the previous one is done), their timing would say how long
//! each chunk took to score, which depends on the data. So a thread of its own fetches
//! chunk `i` at `start + schedule.fetch_at(i)`, never earlier and never later, whatever the
//! scoring does, even after it failed; the scoring reads the chunks from a short queue. If
//! the scoring falls so far behind that the queue is full, the chunk is dropped (its fetch
//! still happened on time) and the job fails. The single enclave and every shard fetch
//! through here.

use crate::host::HostClient;
use protocol::deadline::Schedule;
use protocol::Digest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, TrySendError};
use std::time::Instant;

/// Fetched chunks waiting to be used; a job further behind its schedule than this fails.
pub const QUEUE: usize = 4;

/// Why reading on the schedule stopped.
#[derive(Debug)]
pub enum FetchError<E> {
    /// The consumer fell [`QUEUE`] chunks behind, or the fetcher ended early.
    Schedule(String),
    /// The host did not serve a chunk (or served the wrong bytes).
    Host(String),
    /// The consumer's own error for one chunk.
    Each(E),
}

/// Fetch `chunks` on the schedule that starts at `start`, handing each to `each` in order.
/// Returns when every chunk has been fetched (on time) and consumed, or at the first
/// error; the fetches go on to the end of the schedule either way.
pub fn on_schedule<E>(
    host: &HostClient,
    chunks: &[Digest],
    start: Instant,
    schedule: &Schedule,
    mut each: impl FnMut(usize, Vec<u8>) -> Result<(), E>,
) -> Result<(), FetchError<E>> {
    let (tx, rx) = sync_channel::<Result<Vec<u8>, String>>(QUEUE);
    let overrun = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let overrun = &overrun;
        scope.spawn(move || {
            for (i, digest) in chunks.iter().enumerate() {
                crate::boundary::sleep_until(start + schedule.fetch_at(i as u64));
                let blob = host.get_blob(digest).map_err(|e| e.to_string());
                match tx.try_send(blob) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => overrun.store(true, Ordering::SeqCst),
                }
            }
        });
        for i in 0..chunks.len() {
            let blob = rx
                .recv()
                .map_err(|_| FetchError::Schedule("the fetcher ended early".into()))?
                .map_err(FetchError::Host)?;
            if overrun.load(Ordering::SeqCst) {
                return Err(FetchError::Schedule(format!("fell {QUEUE} chunks behind before chunk {i}")));
            }
            each(i, blob).map_err(FetchError::Each)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::wire::{HostRequest, HostResponse};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A host that serves `blobs` and records the instant of every request.
    fn host(blobs: Vec<Vec<u8>>) -> (HostClient, Arc<Mutex<Vec<Instant>>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let ep: transport::Endpoint = format!("unix:{}", dir.path().join("host.sock").display()).parse().unwrap();
        let listener = transport::Listener::bind(&ep).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            while let Ok(HostRequest::GetBlob { digest }) = transport::recv::<_, HostRequest>(&mut s) {
                log.lock().unwrap().push(Instant::now());
                let data = blobs.iter().find(|b| Digest::of(b.as_slice()) == digest).cloned().unwrap_or_default();
                transport::send(&mut s, &HostResponse::Blob { data: protocol::Bytes(data) }).unwrap();
            }
        });
        (HostClient::new(ep), seen, dir)
    }

    fn schedule(chunks: u64) -> Schedule {
        let (setup, chunk_slot) = (Duration::from_millis(40), Duration::from_millis(60));
        Schedule { setup, chunk_slot, chunks, minimum: setup * 2 + chunk_slot * chunks as u32 }
    }

    /// Each fetch's offset from the start, against the schedule's (the sleeps wake late by
    /// a little, never early).
    fn assert_on_schedule(seen: &[Instant], start: Instant, s: &Schedule) {
        for (i, t) in seen.iter().enumerate() {
            let (at, due) = (t.duration_since(start), s.fetch_at(i as u64));
            assert!(at >= due && at < due + Duration::from_millis(30), "chunk {i} fetched at {at:?}, due at {due:?}");
        }
    }

    #[test]
    fn a_slow_consumer_does_not_move_the_fetches() {
        let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100]).collect();
        let chunks: Vec<Digest> = blobs.iter().map(|b| Digest::of(b.as_slice())).collect();
        let (host, seen, _dir) = host(blobs.clone());
        let s = schedule(5);
        let start = Instant::now();
        let mut got = Vec::new();
        // Chunk 1 takes longer than a slot to consume, the others nothing: the fetches must
        // not say which.
        on_schedule::<()>(&host, &chunks, start, &s, |i, blob| {
            if i == 1 {
                std::thread::sleep(Duration::from_millis(90));
            }
            got.push(blob);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, blobs, "every chunk, in order");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        assert_on_schedule(&seen, start, &s);
    }

    #[test]
    fn a_failure_stops_the_consumer_but_not_the_fetches() {
        let blobs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10]).collect();
        let chunks: Vec<Digest> = blobs.iter().map(|b| Digest::of(b.as_slice())).collect();
        let (host, seen, _dir) = host(blobs);
        let s = schedule(4);
        let start = Instant::now();
        let r = on_schedule(&host, &chunks, start, &s, |i, _| if i == 0 { Err("bad chunk") } else { Ok(()) });
        assert!(matches!(r, Err(FetchError::Each("bad chunk"))));
        // Returned only after the last fetch, which happened at its instant.
        assert!(start.elapsed() >= s.fetch_at(3));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "the schedule ran to its end");
        assert_on_schedule(&seen, start, &s);
    }

    #[test]
    fn a_consumer_too_far_behind_fails_the_job() {
        let blobs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let chunks: Vec<Digest> = blobs.iter().map(|b| Digest::of(b.as_slice())).collect();
        let (host, _seen, _dir) = host(blobs);
        let s = Schedule {
            setup: Duration::ZERO,
            chunk_slot: Duration::from_millis(5),
            chunks: 8,
            minimum: Duration::ZERO,
        };
        let r = on_schedule::<()>(&host, &chunks, Instant::now(), &s, |_, _| {
            std::thread::sleep(Duration::from_millis(40));
            Ok(())
        });
        assert!(matches!(r, Err(FetchError::Schedule(_))), "{r:?}");
    }

    #[test]
    fn a_host_that_serves_other_bytes_is_named() {
        let chunks = vec![Digest::of(b"asked for")];
        let (host, _seen, _dir) = host(vec![b"something else".to_vec()]);
        let r = on_schedule::<()>(&host, &chunks, Instant::now(), &schedule(1), |_, _| Ok(()));
        assert!(matches!(r, Err(FetchError::Host(_))), "{r:?}");
    }
}
