//! The messages between a coordinator and its shards, inside one TLS 1.3 connection the
//! coordinator opens to each shard (through the untrusted host's network).
//!
//! ```text
//! coordinator                                      shard
//!   Hello { job, nonce_c }                 ──▶
//!                                          ◀──   Evidence { role: Shard, binds nonce_c, nonce_s }
//!   Evidence { role: Coordinator, binds nonce_s } ──▶
//!   Work { shard, query, data key, … }     ──▶     (reads its units only)
//!                                          ◀──   Report (padded, at the job's reply instant)
//! ```
//!
//! Each side's evidence binds [`evidence_binding`]: its role, the other side's fresh
//! nonce, this connection's TLS exporter, its own attested key, the policy, and the job.
//! So evidence cannot be replayed on another connection, for another job, or with the
//! roles swapped; and both sides require the same image and policy as their own (which
//! the owner verified), so a shard never gives its data to anything but a coordinator
//! the owner would accept, and the reverse.

use protocol::job::QuerySpec;
use protocol::sealed::DataKey;
use protocol::{Bytes, Digest};
use serde::{Deserialize, Serialize};

/// Who is speaking: evidence names its role so it cannot be reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Coordinator,
    Shard,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Shard => "shard",
        }
    }
}

/// Everything public that names one run of one job across its shards. Its digest is in
/// every piece of evidence exchanged for the job and in every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBinding {
    pub job_id: String,
    pub query_digest: Digest,
    pub dataset_digest: Digest,
    /// Shards of this job; shard i holds [`crate::Plan::range`]`(i)`.
    pub shards: u16,
    /// Fresh from the coordinator's randomness for this run: a report of another run
    /// (even of the same job) names another round.
    pub round: Bytes,
    /// Every report is exactly this many bytes (see [`crate::report`]).
    pub report_size: u32,
    /// Shards send their report this long after they receive their work, never earlier.
    pub reply_after_ms: u64,
}

impl JobBinding {
    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/shard-job/v1", &[&protocol::to_cbor(self)])
    }
}

/// One shard's work: the query and where its inputs are. The data key travels only here,
/// on a channel whose peer proved it runs the owner's image under the owner's policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    pub shard: u16,
    pub spec: QuerySpec,
    pub module_blob: Digest,
    pub index_blob: Digest,
    pub data_key: DataKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMessage {
    /// A challenge for evidence: from the coordinator for its job, or from the owner (no job).
    Hello {
        job: Option<JobBinding>,
        nonce: Bytes,
    },
    Evidence {
        role: Role,
        platform: protocol::platform::Platform,
        simulated: bool,
        document: Bytes,
        public_key: Bytes,
        policy_digest: Digest,
        /// The sender's challenge for the other side's evidence (empty when none follows).
        nonce: Bytes,
    },
    Work(Box<Work>),
    /// A padded [`crate::Report`].
    Report(Bytes),
    /// Refused before any data was read (bad evidence, wrong job): a precise reason.
    Refused {
        reason: String,
    },
}

/// A shard as the owner attested it (the owner names it to the coordinator with
/// `ClientMessage::NameShards`).
pub use protocol::wire::ShardPeer;

/// What a peer's evidence binds (its user data; folded into REPORT_DATA on SEV-SNP).
pub fn evidence_binding(
    role: Role,
    nonce: &[u8],
    tls_exporter: &[u8],
    public_key: &[u8],
    policy: &Digest,
    job: &Digest,
) -> Digest {
    Digest::of_parts(
        "cleanroom/shard-evidence/v1",
        &[role.as_str().as_bytes(), nonce, tls_exporter, public_key, policy.as_bytes(), job.as_bytes()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobBinding {
        JobBinding {
            job_id: "j".into(),
            query_digest: Digest::of(b"q"),
            dataset_digest: Digest::of(b"d"),
            shards: 3,
            round: Bytes(vec![7; 32]),
            report_size: 1 << 16,
            reply_after_ms: 2000,
        }
    }

    #[test]
    fn the_binding_changes_with_every_input() {
        let (j, p) = (job().digest(), Digest::of(b"policy"));
        let base = evidence_binding(Role::Shard, b"n", b"x", b"k", &p, &j);
        assert_ne!(base, evidence_binding(Role::Coordinator, b"n", b"x", b"k", &p, &j));
        assert_ne!(base, evidence_binding(Role::Shard, b"m", b"x", b"k", &p, &j));
        assert_ne!(base, evidence_binding(Role::Shard, b"n", b"y", b"k", &p, &j));
        assert_ne!(base, evidence_binding(Role::Shard, b"n", b"x", b"l", &p, &j));
        assert_ne!(base, evidence_binding(Role::Shard, b"n", b"x", b"k", &Digest::of(b"other"), &j));
        let other_round = JobBinding { round: Bytes(vec![8; 32]), ..job() }.digest();
        assert_ne!(base, evidence_binding(Role::Shard, b"n", b"x", b"k", &p, &other_round));
    }
}
