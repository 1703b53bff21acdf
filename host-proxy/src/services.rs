//! The three listeners: the front door (relay to the enclave), the blob API (for
//! owners and providers) and the enclave services (blobs and audit, for the enclave).

use crate::blobstore::{BlobStore, StoreError};
use crate::ratelimit::RateLimiter;
use protocol::wire::{BlobRequest, HostRequest, HostResponse};
use protocol::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use transport::{Endpoint, Listener, Stream, TransportError};

fn store_error(e: StoreError) -> HostResponse {
    let code = match &e {
        StoreError::NotFound(_) => "not_found",
        StoreError::TooLarge { .. } => "too_large",
        StoreError::WrongIndex { .. } => "wrong_index",
        _ => "store_error",
    };
    HostResponse::Error { code: code.into(), message: e.to_string() }
}

fn peer_name(s: &Stream) -> String {
    match s {
        Stream::Tcp(t) => t.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
        _ => "local".into(),
    }
}

/// Relay each front-door connection to the enclave. The bytes are TLS records the
/// host cannot read; it only counts and rate-limits them.
pub fn serve_front_door(listener: Listener, enclave: Endpoint, limiter: Arc<Mutex<RateLimiter>>) {
    loop {
        let client = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("host-proxy: front door accept: {e}");
                continue;
            }
        };
        let peer = peer_name(&client);
        if !limiter.lock().expect("limiter").allow(&peer, Instant::now()) {
            eprintln!("host-proxy: rate limit: dropping connection from {peer}");
            let _ = client.shutdown();
            continue;
        }
        let enclave = enclave.clone();
        std::thread::spawn(move || match Stream::connect(&enclave) {
            Ok(upstream) => {
                if let Ok((up, down)) = transport::relay(client, upstream) {
                    eprintln!("host-proxy: relayed {up} bytes in, {down} bytes out for {peer}");
                }
            }
            Err(e) => eprintln!("host-proxy: enclave unreachable: {e}"),
        });
    }
}

fn serve_loop<Req, F>(listener: Listener, store: Arc<BlobStore>, handle: F)
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&BlobStore, Req) -> HostResponse + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    loop {
        let mut s = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("host-proxy: accept: {e}");
                continue;
            }
        };
        let store = store.clone();
        let handle = handle.clone();
        std::thread::spawn(move || loop {
            let reply = match transport::recv::<_, Req>(&mut s) {
                Ok(req) => handle(&store, req),
                Err(TransportError::Closed) => return,
                Err(e @ (TransportError::Decode(_) | TransportError::Frame(_))) => {
                    let _ = transport::send(
                        &mut s,
                        &HostResponse::Error { code: "malformed".into(), message: e.to_string() },
                    );
                    return;
                }
                Err(_) => return,
            };
            if transport::send(&mut s, &reply).is_err() {
                return;
            }
        });
    }
}

/// Blob API for owners and providers: upload ciphertext and modules, read the log.
pub fn serve_blob_api(listener: Listener, store: Arc<BlobStore>) {
    serve_loop(listener, store, |store, req: BlobRequest| match req {
        BlobRequest::Put { data } => match store.put(data.as_slice()) {
            Ok(digest) => HostResponse::Stored { digest },
            Err(e) => store_error(e),
        },
        BlobRequest::Get { digest } => match store.get(&digest) {
            Ok(data) => HostResponse::Blob { data: Bytes(data) },
            Err(e) => store_error(e),
        },
        BlobRequest::AuditLog { from } => match store.read_audit(from) {
            Ok((lines, more)) => HostResponse::AuditLog { lines, more },
            Err(e) => store_error(e),
        },
    })
}

/// Services for the enclave: blob fetch, audit append and the policy (TOML bytes) for
/// an enclave started with `--policy-from-host`.
pub fn serve_enclave(listener: Listener, store: Arc<BlobStore>, policy: Arc<Vec<u8>>) {
    serve_loop(listener, store, move |store, req: HostRequest| match req {
        HostRequest::GetPolicy => HostResponse::Blob { data: Bytes(policy.as_ref().clone()) },
        HostRequest::GetBlob { digest } => match store.get(&digest) {
            Ok(data) => HostResponse::Blob { data: Bytes(data) },
            Err(e) => store_error(e),
        },
        HostRequest::AppendAudit { index, line } => match store.append_audit(index, &line) {
            Ok(size) => HostResponse::Appended { size },
            Err(e) => store_error(e),
        },
        HostRequest::ReadAudit { from } => match store.read_audit(from) {
            Ok((lines, more)) => HostResponse::AuditLog { lines, more },
            Err(e) => store_error(e),
        },
        HostRequest::PutEvidence { document } => match store.put(document.as_slice()) {
            Ok(digest) => HostResponse::Stored { digest },
            Err(e) => store_error(e),
        },
    })
}
