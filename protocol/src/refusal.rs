//! Why the enclave refused a request before any grant was spent and any data was read.
//! The code is the wire value (`EnclaveMessage::Error.code`), stable and machine-readable;
//! every one of them depends on public inputs only (policy, query, grant, module, sealed
//! index, the channel), never on data. After the spend there is no code at all
//! (`EnclaveMessage::JobFailed`).

use serde::{Deserialize, Serialize};

macro_rules! refusal_codes {
    ($($variant:ident = $wire:literal: $doc:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RefusalCode {
            $(#[doc = $doc] $variant,)*
            /// A code this client does not know (a newer enclave).
            #[serde(other)]
            Unknown,
        }

        impl RefusalCode {
            /// Every known code, for tests and documentation.
            pub const ALL: &'static [RefusalCode] = &[$(RefusalCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(RefusalCode::$variant => $wire,)*
                    RefusalCode::Unknown => "unknown",
                }
            }
        }
    };
}

refusal_codes! {
    MalformedMessage = "malformed_message": "The frame did not decode as a client message.",
    OversizedMessage = "oversized_message": "The frame declared more than the maximum frame size.",
    NotAttested = "not_attested": "A secret or a job before evidence was asked for on this channel.",
    SecondKeyRelease = "second_key_release": "More than one key release on one channel.",
    TlsExporter = "tls_exporter": "The TLS exporter for the channel binding was unavailable.",
    BadNonce = "bad_nonce": "The attestation nonce is too short or too long.",
    GrantSignature = "grant_signature": "The grant is not signed by the policy's owner key.",
    GrantMalformed = "grant_malformed": "The grant does not decode.",
    GrantWrongEnclave = "grant_wrong_enclave": "The grant names another enclave's key.",
    GrantWrongPolicy = "grant_wrong_policy": "The grant names another policy.",
    GrantWrongDataset = "grant_wrong_dataset": "The grant names a dataset this policy does not govern, or another than the key.",
    GrantWrongPopulation = "grant_wrong_population": "The grant names another population.",
    GrantWrongProviderKey = "grant_wrong_provider_key": "The grant names a key the policy does not list for its collaborator.",
    GrantWrongCollaborator = "grant_wrong_collaborator": "The grant is for another collaborator than the query.",
    CollaboratorNotAllowed = "collaborator_not_allowed": "The collaborator is not in the policy.",
    GrantExpired = "grant_expired": "The grant has expired.",
    DatasetExpired = "dataset_expired": "The dataset is past the retention date in the owner's rules.",
    GrantReplayed = "grant_replayed": "The grant was already used.",
    QueryAlreadyGranted = "query_already_granted": "The query already holds a pending grant.",
    GrantExceedsPolicy = "grant_exceeds_policy": "The grant's ε or δ exceeds the policy's per-job maximum.",
    BadProviderProof = "bad_provider_proof": "The submission is not signed on this channel by the collaborator's key.",
    BadQuery = "bad_query": "The query does not validate.",
    DatasetNotGoverned = "dataset_not_governed": "The policy does not govern the query's dataset.",
    ModuleNotAllowed = "module_not_allowed": "The policy does not allow the module.",
    ModuleHashMismatch = "module_hash_mismatch": "The module blob is not the module the query names.",
    ModuleRejected = "module_rejected": "The module failed admission (imports, exports, ABI section, size).",
    QueryClassNotAllowed = "query_class_not_allowed": "The policy does not allow an output class of the query.",
    UnknownColumn = "unknown_column": "The query names a column that is not in the sealed schema.",
    ColumnRoleNotAllowed = "column_role_not_allowed": "The policy does not allow a column in the role the query gives it.",
    EpsilonExceedsPolicy = "epsilon_exceeds_policy": "The query's ε exceeds the policy's per-job maximum.",
    DeltaExceedsPolicy = "delta_exceeds_policy": "The query's δ exceeds the policy's per-job maximum.",
    NoGrant = "no_grant": "No pending grant approves this query digest.",
    NoDataKey = "no_data_key": "The owner has not released the data key.",
    EpsilonExceedsGrant = "epsilon_exceeds_grant": "The query's ε exceeds its grant.",
    DeltaExceedsGrant = "delta_exceeds_grant": "The query's δ exceeds its grant.",
    UnknownModelOutput = "unknown_model_output": "An output aggregates a model output the module does not declare.",
    InputCount = "input_count": "The module reads another number of input columns than the query names.",
    InputType = "input_type": "The module reads a column as another type than the sealed one.",
    ModuleNotTrainable = "module_not_trainable": "A training query names a module without a training section, or its parameters exceed the policy's bound or cannot be read.",
    TrainingNotAllowed = "training_not_allowed": "The policy admits no training query, or a hyperparameter is outside its bounds.",
    BadSealedIndex = "bad_sealed_index": "The sealed index does not decode or does not match the policy's table.",
    DeadlineOverflow = "deadline_overflow": "The table's worst case does not fit any deadline.",
    DeadlineExceedsPolicy = "deadline_exceeds_policy": "The query's deadline exceeds the policy's maximum.",
    DeadlineTooShort = "deadline_too_short": "The query's deadline is below the table's worst case.",
    LogRolledBack = "log_rolled_back": "The owner holds a checkpoint of a bigger tree than this enclave's log.",
    AuditFailed = "audit_failed": "The host refused to log the record, so nothing was done.",
    HostFailed = "host_failed": "The host did not serve a blob the request needs.",
    ReleaseFailed = "release_failed": "The query's DP parameters do not check.",
    PlatformFailed = "platform_failed": "The platform could not attest.",
    ShardsNotGranted = "shards_not_granted": "Shards were named for a query whose grant was not released on this channel.",
    BadShards = "bad_shards": "The named shards are too few or too many, repeated, or the query cannot be sharded (training).",
    ShardUnavailable = "shard_unavailable": "A named shard could not be reached or attested, so no shard got work and nothing was spent.",
    TooManyChannels = "too_many_channels": "The enclave already serves its maximum number of channels; this one was closed before reading a request. Try again later.",
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_value_is_the_code_and_unknown_codes_decode() {
        for c in RefusalCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<RefusalCode>(&json).unwrap(), *c);
        }
        assert_eq!(serde_json::from_str::<RefusalCode>("\"from_the_future\"").unwrap(), RefusalCode::Unknown);
        let mut seen = std::collections::HashSet::new();
        assert!(RefusalCode::ALL.iter().all(|c| seen.insert(c.as_str())), "codes are distinct");
    }
}
