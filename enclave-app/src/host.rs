//! The enclave's client for the untrusted host: fetch blobs, append audit records.
//! Everything that comes back is checked (blob content hashes) or is only stored
//! (signed audit records), so a lying host can deny service but not change results.

use protocol::wire::{HostRequest, HostResponse};
use protocol::Digest;
use std::sync::Mutex;
use transport::{Endpoint, Stream, TransportError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// Append `line` as leaf `index`; returns once the host says it is durable. A retried
    /// append that had in fact landed is recognised by reading the line back.
    pub fn append_audit(&self, index: u64, line: &str) -> Result<(), HostError> {
        match self.call(&HostRequest::AppendAudit { index, line: line.to_string() }) {
            Ok(HostResponse::Appended { size }) if size == index + 1 => Ok(()),
            Ok(_) => Err(HostError::Unexpected),
            Err(HostError::Refused { code, message }) if code == "wrong_index" => {
                match self.read_audit(index)?.0.first() {
                    Some(stored) if stored == line => Ok(()),
                    _ => Err(HostError::Refused { code, message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A page of log lines from `from` on, and whether more follow.
    pub fn read_audit(&self, from: u64) -> Result<(Vec<String>, bool), HostError> {
        match self.call(&HostRequest::ReadAudit { from })? {
            HostResponse::AuditLog { lines, more } => Ok((lines, more)),
            _ => Err(HostError::Unexpected),
        }
    }

    /// Store the boot attestation document beside the log, checking the host's digest.
    pub fn put_evidence(&self, document: &[u8]) -> Result<Digest, HostError> {
        let expected = Digest::of(document);
        match self.call(&HostRequest::PutEvidence { document: protocol::Bytes(document.to_vec()) })? {
            HostResponse::Stored { digest } if digest == expected => Ok(digest),
            HostResponse::Stored { digest } => Err(HostError::WrongBlob { expected, got: digest }),
            _ => Err(HostError::Unexpected),
        }
    }
}
