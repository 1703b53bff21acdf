//! The enclave's client for the untrusted host: fetch blobs, append audit records.
//! Everything that comes back is checked (blob content hashes) or is only stored
//! (signed audit records), so a lying host can deny service but not change results.

use protocol::signing::Signed;
use protocol::wire::{HostRequest, HostResponse};
use protocol::Digest;
use std::sync::Mutex;
use transport::{Endpoint, Stream, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host transport: {0}")]
    Transport(#[from] TransportError),
    #[error("host returned blob with digest {got}, asked for {expected}")]
    WrongBlob { expected: Digest, got: Digest },
    #[error("host refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("host sent an unexpected reply")]
    Unexpected,
}

pub struct HostClient {
    endpoint: Endpoint,
    conn: Mutex<Option<Stream>>,
}

impl HostClient {
    pub fn new(endpoint: Endpoint) -> Self {
        HostClient { endpoint, conn: Mutex::new(None) }
    }

    fn call(&self, req: &HostRequest) -> Result<HostResponse, HostError> {
        let mut guard = self.conn.lock().expect("host lock");
        // One reconnect attempt: the host proxy may have restarted.
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(Stream::connect_retry(&self.endpoint, std::time::Duration::from_secs(5))?);
            }
            let s = guard.as_mut().expect("connected");
            let r = transport::send(s, req).and_then(|_| transport::recv::<_, HostResponse>(s));
            match r {
                Ok(HostResponse::Error { code, message }) => return Err(HostError::Refused { code, message }),
                Ok(resp) => return Ok(resp),
                Err(e) if attempt == 0 && matches!(e, TransportError::Closed | TransportError::Io(_)) => {
                    *guard = None;
                }
                Err(e) => {
                    *guard = None;
                    return Err(e.into());
                }
            }
        }
        Err(HostError::Unexpected)
    }

    /// Fetch a blob and check it is the one asked for.
    pub fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, HostError> {
        match self.call(&HostRequest::GetBlob { digest: *digest })? {
            HostResponse::Blob { data } => {
                let got = Digest::of(data.as_slice());
                if &got != digest {
                    return Err(HostError::WrongBlob { expected: *digest, got });
                }
                Ok(data.0)
            }
            _ => Err(HostError::Unexpected),
        }
    }

    /// The owner's policy as the host has it (TOML bytes). Not checked here: its digest
    /// is measured and attested, so a substituted policy is visible to every verifier.
    pub fn get_policy(&self) -> Result<Vec<u8>, HostError> {
        match self.call(&HostRequest::GetPolicy)? {
            HostResponse::Blob { data } => Ok(data.0),
            _ => Err(HostError::Unexpected),
        }
    }

    pub fn append_audit(&self, record: &Signed) -> Result<u64, HostError> {
        match self.call(&HostRequest::AppendAudit { record: record.clone() })? {
            HostResponse::Appended { count } => Ok(count),
            _ => Err(HostError::Unexpected),
        }
    }
}
