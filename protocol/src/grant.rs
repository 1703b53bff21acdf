//! Budget grants: the owner's signed permission to spend (ε, δ) on one query, submitted by
//! one provider key, in one enclave. A grant is not a bearer token: the enclave spends it
//! only for a submission whose query digest it names, proven by the key it names, on a
//! channel to the enclave key it names.

use crate::policy::Decimal;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const GRANT_CONTEXT: &str = "cleanroom/grant/v2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetGrant {
    /// Unique; the ledger and the enclave both refuse a grant id seen before.
    pub grant_id: String,
    /// The provider's label for the job (part of the query, so of its digest).
    pub job_id: String,
    /// The exact query the owner reviewed and approved.
    pub query_digest: Digest,
    pub dataset_digest: Digest,
    pub policy_digest: Digest,
    pub population: String,
    pub collaborator: String,
    /// The Ed25519 key that must prove possession when submitting this query.
    pub provider_public_key: Bytes,
    pub epsilon: Decimal,
    pub delta: Decimal,
    /// Unix seconds after which the enclave refuses the grant.
    pub expires_at: u64,
    pub nonce: Bytes,
    /// The attested ephemeral key of the one enclave that may spend this grant.
    pub enclave_public_key: Bytes,
    /// The ledger's figures for this collaborator on this population, and for the
    /// population as a whole, before and after this grant (ε; δ in `delta_*`).
    pub ledger: LedgerFigures,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerFigures {
    pub collaborator_epsilon_before: Decimal,
    pub collaborator_epsilon_after: Decimal,
    pub population_epsilon_before: Decimal,
    pub population_epsilon_after: Decimal,
    pub collaborator_delta_after: Decimal,
    pub population_delta_after: Decimal,
}

/// Context of a provider's proof of possession on an attested channel.
pub const SUBMIT_CONTEXT: &str = "cleanroom/submit/v1";

/// What a provider signs to submit a query on one TLS connection: the connection's
/// exporter (so the proof cannot be replayed on another channel) and the query digest.
pub fn submit_binding(tls_exporter: &[u8], query_digest: &Digest) -> Digest {
    Digest::of_parts("cleanroom/submit-binding/v1", &[tls_exporter, query_digest.as_bytes()])
}
