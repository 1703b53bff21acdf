//! The enclave's accept loop, with a bound on channels served at once.
//!
//! Each channel is served by a thread of its own (TLS and the job run blocking), so the
//! number of channels is what bounds the enclave's threads and memory: at most
//! `max_channels` at once. One more is not read from: a single refusal thread completes
//! its TLS handshake (so the client can read the answer), sends
//! `EnclaveMessage::Error { code: too_many_channels }` and closes. If even that thread is
//! behind by `REFUSAL_QUEUE` connections, further ones are closed unanswered.
//!
//! Time bounds (see [`ChannelLimits`]): the TLS handshake must finish within
//! `handshake_timeout`; after that each request must arrive whole within `idle_timeout`
//! of the previous reply (or of the handshake). The enclave reads only between requests:
//! while a job runs to its deadline the client waits for the reply and no timeout runs.

use crate::service::Enclave;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{Listener, Stream};

/// Bounds on the attested channels.
#[derive(Debug, Clone)]
pub struct ChannelLimits {
    /// Channels served at once.
    pub max_channels: usize,
    /// From accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// For each request to arrive whole, counted from the previous reply (or the end of
    /// the handshake); also bounds writing a reply to a client that does not read.
    pub idle_timeout: Duration,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        ChannelLimits {
            max_channels: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Over-the-cap connections waiting for the refusal thread; more are closed unanswered.
const REFUSAL_QUEUE: usize = 16;
/// A refused connection's handshake, error frame and close, all within this.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// After the refusal, how long the client's first request is read and discarded.
pub const REFUSAL_DRAIN: Duration = Duration::from_millis(250);

/// A stream whose reads fail once a deadline has passed: a socket read timeout bounds
/// each read, this bounds a whole message (a client trickling one byte at a time would
/// otherwise hold its channel forever).
pub struct Deadlined {
    inner: Stream,
    deadline: Instant,
}

impl Deadlined {
    pub fn new(inner: Stream, deadline: Instant) -> Self {
        Deadlined { inner, deadline }
    }

    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    pub fn get_ref(&self) -> &Stream {
        &self.inner
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the peer sent nothing in time"));
        }
        self.inner.set_read_timeout(Some(left))?;
        self.inner.read(buf).map_err(|e| match e.kind() {
            // SO_RCVTIMEO expiring reads as EAGAIN.
            io::ErrorKind::WouldBlock => io::Error::new(io::ErrorKind::TimedOut, "the peer sent nothing in time"),
            _ => e,
        })
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Releases a channel slot when the channel's thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Take a slot if fewer than `max` are taken.
fn take_slot(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
        .ok()
        .map(|_| Slot(open.clone()))
}

/// Accept and serve channels forever (the supervisor's main loop; tests start it too).
pub fn serve_listener(enclave: Arc<Enclave>, listener: Listener, limits: ChannelLimits) {
    let open = Arc::new(AtomicUsize::new(0));
    let (refuse_tx, refuse_rx) = sync_channel::<Stream>(REFUSAL_QUEUE);
    let e = enclave.clone();
    let max = limits.max_channels;
    std::thread::spawn(move || {
        for stream in refuse_rx {
            e.refuse_channel(stream, max);
        }
    });
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("enclave-app: accept: {e}");
                // Out of descriptors or similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(slot) = take_slot(&open, limits.max_channels) else {
            match refuse_tx.try_send(stream) {
                Ok(()) => {}
                Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => drop(s),
            }
            continue;
        };
        let e = enclave.clone();
        let limits = limits.clone();
        let spawned = std::thread::Builder::new().name("channel".into()).spawn(move || {
            let _slot = slot;
            if let Err(err) = e.serve_with(stream, &limits) {
                eprintln!("enclave-app: connection ended: {err}");
            }
        });
        if let Err(e) = spawned {
            eprintln!("enclave-app: cannot start a channel thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let a = take_slot(&open, 2).unwrap();
        let b = take_slot(&open, 2).unwrap();
        assert!(take_slot(&open, 2).is_none());
        drop(a);
        let c = take_slot(&open, 2).unwrap();
        drop((b, c));
        assert_eq!(open.load(Ordering::Acquire), 0);
    }
}
