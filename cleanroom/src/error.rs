//! The error of the CLI's library calls: each crate's own typed error, or a file or a
//! command-line choice that does not fit, named.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {why}", path.display())]
    Parse { path: PathBuf, why: String },
    /// A combination of arguments the command cannot use.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(Box<crate::client::ClientError>),
    #[error(transparent)]
    Release(Box<crate::owner::ReleaseError>),
    #[error(transparent)]
    Review(Box<crate::review::ReviewError>),
    #[error(transparent)]
    QueryInit(Box<crate::query_init::QueryInitError>),
    #[error(transparent)]
    LocalRun(Box<crate::local_run::LocalRunError>),
    #[error(transparent)]
    Provider(Box<crate::provider::ProviderError>),
    #[error(transparent)]
    Plan(#[from] crate::dp_plan::PlanError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    KeyStore(#[from] owner_prep::keystore::KeyStoreError),
    #[error(transparent)]
    Prepare(Box<owner_prep::prepare::PrepareError>),
    #[error(transparent)]
    Open(#[from] owner_prep::prepare::OpenError),
    #[error(transparent)]
    Hsm(#[from] hsm::HsmError),
    #[error(transparent)]
    Audit(Box<audit::AuditError>),
    #[error(transparent)]
    AuditFiles(Box<audit::files::FilesError>),
    #[error(transparent)]
    AuditResult(Box<audit::ResultError>),
    #[error(transparent)]
    Decode(#[from] protocol::DecodeError),
    #[error(transparent)]
    Signature(#[from] protocol::signing::SignatureError),
    #[error(transparent)]
    Diagnostics(#[from] protocol::diagnostics::DiagnosticsError),
    #[error(transparent)]
    Receipt(#[from] tlog::ReceiptError),
    #[error(transparent)]
    Checkpoint(#[from] tlog::checkpoint::CheckpointError),
    #[error(transparent)]
    Replay(#[from] tlog::replay::ReplayError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::AdmissionError),
    #[error(transparent)]
    Dp(#[from] dp::DpError),
    #[error(transparent)]
    Job(Box<release::ReleaseError>),
    #[error(transparent)]
    Submit(Box<crate::commands::provider::SubmitError>),
    #[error(transparent)]
    Datagen(#[from] owner_prep::datagen::Error),
}

// Large errors are boxed so every `Result<_, Error>` stays small.
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from! {
    Client: crate::client::ClientError,
    Release: crate::owner::ReleaseError,
    Audit: audit::AuditError,
    AuditFiles: audit::files::FilesError,
    AuditResult: audit::ResultError,
    Provider: crate::provider::ProviderError,
    Review: crate::review::ReviewError,
    QueryInit: crate::query_init::QueryInitError,
    Job: release::ReleaseError,
    LocalRun: crate::local_run::LocalRunError,
    Prepare: owner_prep::prepare::PrepareError,
    Submit: crate::commands::provider::SubmitError,
}
