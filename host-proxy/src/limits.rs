//! What bounds the host proxy's listeners, and counters of what the bounds turned away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bounds of the front door (the relay of TLS bytes to the enclave).
#[derive(Debug, Clone)]
pub struct FrontDoorLimits {
    /// Front-door connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// From accept, the time a client has to send its first TLS record (the ClientHello).
    /// Until it has, it holds no upstream slot and costs the enclave nothing.
    pub handshake_timeout: Duration,
    /// While it is the client's turn (the enclave's bytes were the last to flow), the
    /// connection is closed after this long without a byte from the client. While the
    /// enclave has the turn (a job runs until its deadline) the host waits: the enclave
    /// bounds its own reads, and a job's reply comes at its deadline.
    pub idle_timeout: Duration,
    /// Connections to the enclave open at once (keep it at or under the enclave's own
    /// `--max-channels`).
    pub max_upstream: usize,
    /// How long a client that sent its hello waits for an upstream slot before it is closed.
    pub upstream_wait: Duration,
}

impl Default for FrontDoorLimits {
    fn default() -> Self {
        FrontDoorLimits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_upstream: 32,
            upstream_wait: Duration::from_secs(10),
        }
    }
}

/// Bounds of the blob API.
#[derive(Debug, Clone)]
pub struct BlobApiLimits {
    /// Blob API connections open at once; one more gets a `too_many_connections` error
    /// frame and is closed. Each may hold one frame of up to the frame limit in memory.
    pub max_connections: usize,
    /// From accept, the time a client has to send its first byte.
    pub first_byte_timeout: Duration,
    /// Between bytes (within a request and between requests): no byte for this long
    /// closes the connection. Also bounds writing a reply to a client that does not read.
    pub idle_timeout: Duration,
}

impl Default for BlobApiLimits {
    fn default() -> Self {
        BlobApiLimits {
            max_connections: 64,
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Counters of one listener, summarized in the log (never per connection: a flood would
/// turn the log itself into the resource it exhausts).
#[derive(Default, Debug)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub over_cap: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Closed because no first byte (or, at the front door, no full TLS hello) came in time.
    pub first_byte_timeout: AtomicU64,
    /// Front door: the first record was not a TLS handshake record.
    pub not_tls: AtomicU64,
    /// Front door: no upstream slot within the wait.
    pub upstream_busy: AtomicU64,
    pub upstream_failed: AtomicU64,
    pub idle_closed: AtomicU64,
    pub served: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// One line of the counters that are not zero.
    pub fn summary(&self) -> String {
        let fields = [
            ("accepted", &self.accepted),
            ("over the cap", &self.over_cap),
            ("rate-limited", &self.rate_limited),
            ("first-byte timeout", &self.first_byte_timeout),
            ("not TLS", &self.not_tls),
            ("no upstream slot", &self.upstream_busy),
            ("upstream failed", &self.upstream_failed),
            ("idle", &self.idle_closed),
            ("served", &self.served),
        ];
        fields
            .iter()
            .map(|(name, c)| (name, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
