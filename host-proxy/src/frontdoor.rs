//! The front door: relay each client's TLS bytes to the enclave, within fixed bounds.
//!
//! The host cannot read the channel (it is TLS to a key inside the enclave), so all it
//! can bound is counts and time:
//! - at most `max_connections` client connections; the next one is closed on accept;
//! - per-peer connection rate (token buckets in bounded memory);
//! - a client must send one whole TLS handshake record (its ClientHello, plaintext in
//!   TLS 1.3 anyway) within `handshake_timeout`, before it is given an upstream slot: a
//!   client that sends nothing, something that is not TLS, or half a hello never costs
//!   the enclave a connection;
//! - at most `max_upstream` connections to the enclave; a client waits `upstream_wait`
//!   for one, then is closed;
//! - on the client's turn, `idle_timeout` without a byte closes the connection.
//!
//! Everything runs as tasks on a small tokio runtime: the thread count does not depend on
//! the number of connections.

use crate::aio::{AsyncListener, AsyncStream};
use crate::limits::{Counters, FrontDoorLimits};
use crate::ratelimit::RateLimiter;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use transport::Endpoint;

/// TLS record content type of handshake messages (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 22;
/// A TLS plaintext record carries at most 2^14 bytes.
const TLS_MAX_RECORD: usize = 1 << 14;
/// What the relay reads at a time, per direction.
const RELAY_BUF: usize = 16 * 1024;

/// Why a front-door connection ended before or during the relay.
#[derive(Debug, PartialEq, Eq)]
enum Closed {
    /// No whole TLS hello within the handshake timeout (or the client left first).
    NoHello,
    /// The first record is not a TLS handshake record.
    NotTls,
    UpstreamBusy,
    UpstreamFailed,
    Idle,
    /// Ended normally (either side closed); bytes client→enclave and enclave→client.
    Done(u64, u64),
}

pub struct FrontDoor {
    limits: FrontDoorLimits,
    enclave: Endpoint,
    limiter: Mutex<RateLimiter>,
    connections: Arc<Semaphore>,
    upstream: Arc<Semaphore>,
    pub counters: Counters,
}

impl FrontDoor {
    pub fn new(limits: FrontDoorLimits, enclave: Endpoint, limiter: RateLimiter) -> Arc<FrontDoor> {
        Arc::new(FrontDoor {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            upstream: Arc::new(Semaphore::new(limits.max_upstream)),
            limits,
            enclave,
            limiter: Mutex::new(limiter),
            counters: Counters::default(),
        })
    }

    /// Accept forever. Must run inside the runtime.
    pub async fn serve(self: Arc<Self>, listener: AsyncListener) {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    eprintln!("host-proxy: front door accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            Counters::bump(&self.counters.accepted);
            // Over the cap: close now. The client speaks TLS we cannot write into, so a
            // plain close is the only answer the host can give.
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                Counters::bump(&self.counters.over_cap);
                continue;
            };
            if let Some(ip) = peer {
                let allowed = self.limiter.lock().map(|mut l| l.allow(ip, Instant::now())).unwrap_or(false);
                if !allowed {
                    Counters::bump(&self.counters.rate_limited);
                    continue;
                }
            }
            let me = self.clone();
            tokio::spawn(async move {
                let ended = me.handle(client).await;
                drop(permit);
                let c = &me.counters;
                match ended {
                    Closed::NoHello => Counters::bump(&c.first_byte_timeout),
                    Closed::NotTls => Counters::bump(&c.not_tls),
                    Closed::UpstreamBusy => Counters::bump(&c.upstream_busy),
                    Closed::UpstreamFailed => Counters::bump(&c.upstream_failed),
                    Closed::Idle => Counters::bump(&c.idle_closed),
                    Closed::Done(..) => Counters::bump(&c.served),
                }
                if let Closed::Done(up, down) = ended {
                    eprintln!("host-proxy: relayed {up} bytes in, {down} bytes out for {}", peer_name(peer));
                }
            });
        }
    }

    async fn handle(&self, mut client: AsyncStream) -> Closed {
        let hello = match timeout(self.limits.handshake_timeout, read_tls_record(&mut client)).await {
            Ok(Ok(Some(record))) => record,
            Ok(Ok(None)) => return Closed::NotTls,
            Ok(Err(_)) | Err(_) => return Closed::NoHello,
        };
        let _slot = match timeout(self.limits.upstream_wait, self.upstream.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            _ => return Closed::UpstreamBusy,
        };
        let mut upstream = match timeout(self.limits.upstream_wait, AsyncStream::connect(&self.enclave)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => {
                eprintln!("host-proxy: enclave unreachable: {e}");
                return Closed::UpstreamFailed;
            }
            Err(_) => return Closed::UpstreamFailed,
        };
        if upstream.write_all(&hello).await.is_err() {
            return Closed::UpstreamFailed;
        }
        relay(client, upstream, hello.len() as u64, self.limits.idle_timeout).await
    }
}

fn peer_name(peer: Option<std::net::IpAddr>) -> String {
    peer.map(|ip| ip.to_string()).unwrap_or_else(|| "local".into())
}

/// Read one whole TLS record: Some(header + body) if it is a handshake record, None if
/// the first bytes are not TLS at all.
async fn read_tls_record(s: &mut AsyncStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    // Legacy record version 3.x; a hello is never empty and never over the record limit.
    if header[0] != TLS_HANDSHAKE || header[1] != 3 || len == 0 || len > TLS_MAX_RECORD {
        return Ok(None);
    }
    let mut record = vec![0u8; 5 + len];
    record[..5].copy_from_slice(&header);
    s.read_exact(&mut record[5..]).await?;
    Ok(Some(record))
}

/// Copy bytes both ways until both sides are done. `idle` applies only on the client's
/// turn (the enclave sent last): while the enclave has the turn the host waits for it.
/// Once the enclave has closed, the client gets end of stream and is drained (not reset,
/// which could discard the enclave's last reply) until it closes or idles out.
async fn relay(mut client: AsyncStream, mut upstream: AsyncStream, sent: u64, idle: Duration) -> Closed {
    let (mut cbuf, mut ubuf) = (vec![0u8; RELAY_BUF], vec![0u8; RELAY_BUF]);
    let (mut up, mut down) = (sent, 0u64);
    let (mut client_open, mut upstream_open) = (true, true);
    // The hello went up: the enclave answers next.
    let mut client_turn = false;
    while client_open || upstream_open {
        let waiting_on_client = client_open && (client_turn || !upstream_open);
        tokio::select! {
            r = client.read(&mut cbuf), if client_open => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let _ = upstream.shutdown().await;
                }
                Ok(n) => {
                    if !matches!(timeout(idle, upstream.write_all(&cbuf[..n])).await, Ok(Ok(()))) {
                        break;
                    }
                    up += n as u64;
                    client_turn = false;
                }
            },
            r = upstream.read(&mut ubuf), if upstream_open => match r {
                Ok(0) | Err(_) => {
                    upstream_open = false;
                    let _ = client.shutdown().await;
                }
                Ok(n) => {
                    // A client that does not read is as idle as one that does not write.
                    if !matches!(timeout(idle, client.write_all(&ubuf[..n])).await, Ok(Ok(()))) {
                        return Closed::Idle;
                    }
                    down += n as u64;
                    client_turn = true;
                }
            },
            _ = tokio::time::sleep(idle), if waiting_on_client => return Closed::Idle,
        }
    }
    Closed::Done(up, down)
}
