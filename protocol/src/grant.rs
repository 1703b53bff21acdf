//! Budget grants: the owner's signed permission to spend ε on one job, in one enclave.

use crate::policy::Decimal;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const GRANT_CONTEXT: &str = "cleanroom/grant/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetGrant {
    /// Unique; the ledger and the enclave both refuse a grant id seen before.
    pub grant_id: String,
    pub job_id: String,
    pub dataset_digest: Digest,
    pub policy_digest: Digest,
    pub collaborator: String,
    pub epsilon: Decimal,
    /// Unix seconds after which the enclave refuses the grant.
    pub expires_at: u64,
    pub nonce: Bytes,
    /// The attested ephemeral key of the one enclave that may spend this grant.
    pub enclave_public_key: Bytes,
    /// The owner's ledger for (dataset, collaborator) before and after this grant.
    pub ledger_remaining_before: Decimal,
    pub ledger_remaining_after: Decimal,
}
