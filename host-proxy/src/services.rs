//! The enclave services (blobs and audit, for the enclave) and the blob API's requests.
//! The front door is in `frontdoor`, the blob API's connections in `blobapi`.
//!
//! The enclave services keep a thread per connection: their one intended client is the
//! enclave, which holds one connection at a time (`enclave_app::host::HostClient`), over a
//! Unix socket in the store's run directory or the guest's vsock port; nothing outside the
//! host reaches them.

use crate::blobstore::{BlobStore, StoreError};
use protocol::wire::{BlobRequest, HostRequest, HostResponse};
use protocol::Bytes;
use std::sync::Arc;
use transport::{Listener, TransportError};

fn store_error(e: StoreError) -> HostResponse {
    let code = match &e {
        StoreError::NotFound(_) => "not_found",
        StoreError::TooLarge { .. } => "too_large",
        StoreError::WrongIndex { .. } => "wrong_index",
        _ => "store_error",
    };
    HostResponse::Error { code: code.into(), message: e.to_string() }
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

/// Answer one blob API request (on the blocking pool: the store does file I/O).
pub fn handle_blob_request(store: &BlobStore, req: BlobRequest) -> HostResponse {
    match req {
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
    }
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
