//! The blob API for owners and providers (upload ciphertext and modules, read the audit
//! log), as tasks on the runtime, within fixed bounds:
//! - at most `max_connections` at once; the next one gets one `too_many_connections`
//!   error frame and is closed;
//! - a first byte within `first_byte_timeout`, then no gap over `idle_timeout` (within a
//!   frame, between frames, and while a reply is written to a client that does not read);
//! - a frame's body is buffered as it arrives, so memory follows the bytes actually sent
//!   (at most one frame limit per connection), not the length a client declares.

use crate::aio::{AsyncListener, AsyncStream};
use crate::blobstore::BlobStore;
use crate::limits::{BlobApiLimits, Counters};
use crate::services::handle_blob_request;
use protocol::frame;
use protocol::wire::{BlobRequest, HostResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// The error code an over-the-cap connection receives.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

/// Bytes read at a time into a frame's body.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("peer closed the connection")]
    Closed,
    #[error("no byte within {0:?}")]
    Timeout(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
}

pub struct BlobApi {
    limits: BlobApiLimits,
    store: Arc<BlobStore>,
    connections: Arc<Semaphore>,
    pub counters: Counters,
}

impl BlobApi {
    pub fn new(limits: BlobApiLimits, store: Arc<BlobStore>) -> Arc<BlobApi> {
        Arc::new(BlobApi {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            store,
            counters: Counters::default(),
        })
    }

    /// Accept forever. Must run inside the runtime.
    pub async fn serve(self: Arc<Self>, listener: AsyncListener) {
        let refusal = frame::encode(
            &protocol::to_cbor(&HostResponse::Error {
                code: TOO_MANY_CONNECTIONS.into(),
                message: format!(
                    "the blob API serves at most {} connections at once; try again later",
                    self.limits.max_connections
                ),
            }),
            frame::MAX_FRAME,
        )
        .unwrap_or_default();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("host-proxy: blob API accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            Counters::bump(&self.counters.accepted);
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                Counters::bump(&self.counters.over_cap);
                // A fresh socket's send buffer is empty: the small frame goes out without
                // waiting, so refusing costs no task and no time.
                let _ = stream.try_write(&refusal);
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let end = me.handle(stream).await;
                drop(permit);
                match end {
                    Some(ReadError::Timeout(_)) => Counters::bump(&me.counters.idle_closed),
                    Some(_) | None => Counters::bump(&me.counters.served),
                }
            });
        }
    }

    /// Serve requests on one connection until it closes or breaks a bound.
    async fn handle(&self, mut s: AsyncStream) -> Option<ReadError> {
        let mut wait = self.limits.first_byte_timeout;
        loop {
            let req = match read_frame(&mut s, wait, self.limits.idle_timeout).await {
                Ok(body) => protocol::from_cbor::<BlobRequest>(&body),
                Err(ReadError::Closed) => return None,
                Err(e @ ReadError::Frame(_)) => {
                    self.reply(&mut s, &malformed(&e)).await;
                    return Some(e);
                }
                Err(e) => return Some(e),
            };
            let reply = match req {
                Ok(req) => {
                    let store = self.store.clone();
                    match tokio::task::spawn_blocking(move || handle_blob_request(&store, req)).await {
                        Ok(r) => r,
                        Err(_) => {
                            HostResponse::Error { code: "store_error".into(), message: "the store failed".into() }
                        }
                    }
                }
                Err(e) => {
                    self.reply(&mut s, &malformed(&e)).await;
                    return None;
                }
            };
            if !self.reply(&mut s, &reply).await {
                return Some(ReadError::Timeout(self.limits.idle_timeout));
            }
            wait = self.limits.idle_timeout;
        }
    }

    /// Write one reply frame; false if it could not be written within the idle timeout.
    async fn reply(&self, s: &mut AsyncStream, msg: &HostResponse) -> bool {
        let Ok(f) = frame::encode(&protocol::to_cbor(msg), frame::MAX_FRAME) else { return false };
        matches!(timeout(self.limits.idle_timeout, s.write_all(&f)).await, Ok(Ok(())))
    }
}

fn malformed(e: &dyn std::fmt::Display) -> HostResponse {
    HostResponse::Error { code: "malformed".into(), message: e.to_string() }
}

/// Read one frame: its first byte within `first`, every later byte within `idle` of the
/// one before. End of stream before a frame starts is `Closed`.
async fn read_frame(s: &mut AsyncStream, first: Duration, idle: Duration) -> Result<Vec<u8>, ReadError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        let wait = if got == 0 { first } else { idle };
        match timeout(wait, s.read(&mut header[got..])).await {
            Err(_) => return Err(ReadError::Timeout(wait)),
            Ok(Ok(0)) => return Err(ReadError::Closed),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    let len = frame::declared_len(header, frame::MAX_FRAME)?;
    let mut body = Vec::with_capacity(len.min(CHUNK));
    let mut chunk = vec![0u8; len.min(CHUNK)];
    while body.len() < len {
        let want = (len - body.len()).min(CHUNK);
        match timeout(idle, s.read(&mut chunk[..want])).await {
            Err(_) => return Err(ReadError::Timeout(idle)),
            Ok(Ok(0)) => return Err(ReadError::Closed),
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok(body)
}
