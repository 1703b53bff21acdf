//! Messages on the three links: client ↔ enclave (inside attested TLS), enclave ↔ host
//! (blob fetch and audit append), client ↔ host (blob upload, audit log download).

use crate::audit::LogReceipt;
use crate::job::QuerySpec;
use crate::sealed::DataKey;
use crate::signing::Signed;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

/// Client → enclave, inside the TLS channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Ask for evidence bound to this nonce and this TLS connection.
    Attest { nonce: Bytes },
    /// Owner: the data key for one dataset and the grant for one job.
    /// The key is a [`DataKey`]: zeroized on drop, redacted in `Debug`.
    ReleaseKey { dataset_digest: Digest, data_key: DataKey, grant: Signed },
    /// Provider: run a job. Module and sealed index are blobs in the host's store.
    /// `proof` is the provider's Ed25519 signature (context [`crate::grant::SUBMIT_CONTEXT`])
    /// over [`crate::grant::submit_binding`] of this connection's exporter and the query
    /// digest, by the key the policy lists for `spec.collaborator`.
    SubmitJob { spec: Box<QuerySpec>, module_blob: Digest, sealed_index_blob: Digest, proof: Bytes },
    /// Owner, before releasing a key: the enclave's current checkpoint and a consistency
    /// proof from the tree size of the checkpoint the owner holds (0: none held yet).
    ProveLog { old_size: u64 },
    /// Owner, on the channel that released the key and grant of this query: run it across
    /// these shard enclaves (docs/scale-out.md), each of which the owner attested itself;
    /// this enclave then coordinates (attests them, merges their exact partials, adds the
    /// noise once) instead of reading the data itself.
    NameShards { query_digest: Digest, shards: Vec<ShardPeer> },
}

/// A shard enclave as the owner attested it: where it listens, and the key its evidence
/// named. The coordinator accepts on that endpoint only an enclave with that key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPeer {
    pub endpoint: String,
    pub public_key: Bytes,
}

/// Enclave → client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EnclaveMessage {
    Evidence {
        platform: crate::platform::Platform,
        simulated: bool,
        document: Bytes,
        public_key: Bytes,
        policy_digest: Digest,
    },
    /// The key release is logged: its record, the checkpoint covering it, the proof.
    KeyAccepted {
        grant_id: String,
        receipt: LogReceipt,
    },
    JobResult {
        result: Signed,
        receipt: LogReceipt,
    },
    /// The one reply after a grant is spent that is not a result: no code, no message, no
    /// number, sent at the job's deadline like a result. It carries the receipt of the
    /// `job_failed` record (the same fields for every failure), or none if the host
    /// refused the append.
    JobFailed {
        receipt: Option<LogReceipt>,
    },
    /// The shards named for this query will run it.
    ShardsNamed {
        query_digest: Digest,
        shards: u16,
    },
    /// The current checkpoint and the consistency proof asked for by `ProveLog` (empty
    /// when the old size is 0 or equals the current size).
    LogProof {
        checkpoint: String,
        consistency: Vec<Digest>,
    },
    /// A refusal before any grant is spent and any data is read; depends on no data.
    Error {
        code: crate::refusal::RefusalCode,
        message: String,
    },
}

/// Enclave → host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostRequest {
    GetBlob {
        digest: Digest,
    },
    /// Append one log line as leaf `index`; the host refuses if its log is not `index`
    /// lines long, and replies only once the line is durable.
    AppendAudit {
        index: u64,
        line: String,
    },
    /// Log lines from `from` on (a page of them; `more` says whether to ask again).
    ReadAudit {
        from: u64,
    },
    /// Store the enclave's boot attestation document, by content hash, beside the log.
    PutEvidence {
        document: Bytes,
    },
    /// The owner's policy (TOML bytes) for an enclave started with `--policy-from-host`.
    /// Safe to take from the untrusted host: its digest is measured (PCR16) and attested,
    /// so a substituted policy is visible to every verifier. Answered with `Blob`.
    GetPolicy,
}

/// Client → host blob API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlobRequest {
    Put {
        data: Bytes,
    },
    Get {
        digest: Digest,
    },
    /// Log lines from `from` on (a page; evidence documents are fetched with `Get`).
    AuditLog {
        from: u64,
    },
}

/// Host → enclave or client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostResponse {
    Blob { data: Bytes },
    Stored { digest: Digest },
    Appended { size: u64 },
    AuditLog { lines: Vec<String>, more: bool },
    Error { code: String, message: String },
}

/// Domain-separated binding of evidence to a nonce, a TLS connection and a key.
/// Goes into the attestation `user_data` (Nitro) or `report_data` (SNP).
pub fn channel_binding(nonce: &[u8], tls_exporter: &[u8], public_key: &[u8], policy: &Digest) -> Digest {
    Digest::of_parts("cleanroom/channel-binding/v1", &[nonce, tls_exporter, public_key, policy.as_bytes()])
}

/// TLS exporter label used for the channel binding (RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-cleanroom-attestation";

/// Domain separation for [`snp_report_data`].
pub const SNP_REPORT_DATA_CONTEXT: &[u8] = b"cleanroom/snp-report-data/v1";

/// REPORT_DATA of an SEV-SNP report (which has no PCRs): SHA-512 over the context string
/// and four inputs, each length-prefixed (u32 big-endian), the nonce preceded by a
/// presence byte so that "no nonce" and "empty nonce" differ:
///
/// ```text
/// SHA-512( "cleanroom/snp-report-data/v1"
///          || u32(len(policy_digest)) || policy_digest
///          || (0x00 | 0x01 || u32(len(nonce)) || nonce)
///          || u32(len(user_data))     || user_data
///          || u32(len(public_key))    || public_key )
/// ```
///
/// The enclave puts it in the report; the owner recomputes it and compares.
pub fn snp_report_data(policy_digest: &[u8], nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> [u8; 64] {
    fn field(ctx: &mut ring::digest::Context, bytes: &[u8]) {
        // Inputs are digests, keys and bounded nonces: far below 4 GiB.
        ctx.update(&(bytes.len() as u32).to_be_bytes());
        ctx.update(bytes);
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(SNP_REPORT_DATA_CONTEXT);
    field(&mut ctx, policy_digest);
    match nonce {
        None => ctx.update(&[0]),
        Some(n) => {
            ctx.update(&[1]);
            field(&mut ctx, n);
        }
    }
    field(&mut ctx, user_data);
    field(&mut ctx, public_key);
    let mut out = [0u8; 64];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
