//! Typed verification errors: one variant per failed check.

use thiserror::Error;

use crate::der::DerError;
use crate::Platform;
use cbor::CborError;

/// Which certificate of a chain a check failed on.
///
/// `"leaf"`, `"intermediate N"` and `"root"` for Nitro; `"VEK"`, `"ASK"`
/// (or ASVK) and `"ARK"` for SEV-SNP.
pub type CertRole = String;

/// Why evidence was refused. Each variant names exactly one failed check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    // ---- input / encoding -------------------------------------------------
    /// The evidence is larger than the hard limit for its platform.
    #[error("input too large: {len} bytes, limit {max}")]
    InputTooLarge {
        /// Bytes supplied.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The evidence is not acceptable CBOR.
    #[error("malformed CBOR: {0}")]
    Cbor(#[from] CborError),
    /// The outer structure is not a COSE_Sign1 as expected.
    #[error("malformed COSE_Sign1: {0}")]
    CoseStructure(&'static str),
    /// The protected header does not say ES384 (or, for simulated evidence, EdDSA).
    #[error("unsupported or unexpected COSE algorithm in protected header")]
    UnsupportedAlgorithm,
    /// The protected header contains something other than the algorithm.
    #[error("unexpected or critical COSE header parameter: {0}")]
    UnexpectedHeader(String),
    /// A required field of the attestation document is missing (or null).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong CBOR type.
    #[error("field `{field}` has the wrong type: expected {expected}")]
    WrongFieldType {
        /// Field name.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A field is larger or smaller than the format allows.
    #[error("field `{field}` has invalid size {len}")]
    FieldSize {
        /// Field name.
        field: &'static str,
        /// The offending length (or count).
        len: usize,
    },
    /// The payload map has a key the format does not define.
    #[error("unknown field `{0}` in attestation document")]
    UnknownField(String),
    /// The `digest` field is not `SHA384`.
    #[error("unsupported PCR digest `{0}` (only SHA384)")]
    UnsupportedDigest(String),
    /// Evidence of one platform was handed to another platform's verifier.
    #[error("evidence is not {expected} evidence")]
    WrongPlatform {
        /// The platform the verifier was asked to check.
        expected: Platform,
    },

    // ---- certificates -----------------------------------------------------
    /// A certificate is not well-formed DER X.509.
    #[error("malformed certificate ({role}): {source}")]
    CertificateMalformed {
        /// Which certificate.
        role: CertRole,
        /// DER problem.
        source: DerError,
    },
    /// The chain's root is not the pinned vendor root.
    #[error("root certificate is not the pinned {0} root")]
    UntrustedRoot(&'static str),
    /// An issuer name does not equal the subject name of the certificate above it.
    #[error("certificate chain broken at {role}: issuer does not match the parent's subject")]
    ChainNameMismatch {
        /// Which certificate.
        role: CertRole,
    },
    /// A certificate's signature does not verify with the parent's key.
    #[error("certificate signature invalid: {role}")]
    ChainSignatureInvalid {
        /// Which certificate.
        role: CertRole,
    },
    /// A certificate uses a signature or key algorithm this verifier does not accept there.
    #[error("unsupported algorithm in certificate {role}")]
    CertificateAlgorithm {
        /// Which certificate.
        role: CertRole,
    },
    /// An issuing certificate is not a CA (basic constraints) or may not sign certificates (key usage).
    #[error("{role} is not allowed to issue certificates (basic constraints / key usage)")]
    NotACa {
        /// Which certificate.
        role: CertRole,
    },
    /// A CA's path-length constraint is exceeded.
    #[error("path length constraint of {role} exceeded")]
    PathLenExceeded {
        /// Which certificate.
        role: CertRole,
    },
    /// The leaf's key usage does not permit signing.
    #[error("{role} key usage does not allow digital signatures")]
    KeyUsage {
        /// Which certificate.
        role: CertRole,
    },
    /// A certificate carries a critical extension this verifier does not understand.
    #[error("unknown critical extension {oid} in {role}")]
    UnknownCriticalExtension {
        /// Which certificate.
        role: CertRole,
        /// Dotted OID.
        oid: String,
    },
    /// `at` is before a certificate's notBefore.
    #[error("{role} not yet valid at {at} (notBefore {not_before})")]
    CertificateNotYetValid {
        /// Which certificate.
        role: CertRole,
        /// notBefore, unix seconds.
        not_before: i64,
        /// Verification time, unix seconds.
        at: u64,
    },
    /// `at` is after a certificate's notAfter.
    #[error("{role} expired: certificate expired at {not_after}, verification time {at}")]
    CertificateExpired {
        /// Which certificate.
        role: CertRole,
        /// notAfter, unix seconds.
        not_after: i64,
        /// Verification time, unix seconds.
        at: u64,
    },
    /// The cabundle is empty or too long.
    #[error("certificate bundle has invalid length {0}")]
    CabundleLength(usize),
    /// A required certificate was not supplied and none is built in.
    #[error("missing certificate: {0}")]
    MissingCertificate(&'static str),

    // ---- evidence signature -----------------------------------------------
    /// The evidence signature does not verify with the leaf / VEK / development key.
    #[error("evidence signature invalid")]
    SignatureInvalid,

    // ---- expectations -----------------------------------------------------
    /// A PCR the caller expects is absent from the document.
    #[error("PCR{0} expected but not present")]
    PcrMissing(u16),
    /// A PCR differs from the expected value.
    #[error("PCR{index} mismatch: expected {expected}, got {actual}")]
    PcrMismatch {
        /// PCR index.
        index: u16,
        /// Expected value, hex.
        expected: String,
        /// Actual value, hex.
        actual: String,
    },
    /// The nonce differs from (or is absent but) the expected one.
    #[error("nonce mismatch")]
    NonceMismatch,
    /// user_data differs from (or is absent but) the expected value.
    #[error("user_data mismatch")]
    UserDataMismatch,
    /// public_key differs from (or is absent but) the expected key.
    #[error("public_key mismatch")]
    PublicKeyMismatch,
    /// module_id does not start with the expected prefix.
    #[error("module_id `{0}` does not match the expected pattern")]
    ModuleIdMismatch(String),
    /// The document is older than `max_age_ms` at the verification time.
    #[error("document too old: age {age_ms} ms exceeds {max_age_ms} ms")]
    TooOld {
        /// Age at the verification time.
        age_ms: u64,
        /// Caller's limit.
        max_age_ms: u64,
    },
    /// The document's timestamp is later than the verification time (beyond a 1 s rounding allowance).
    #[error("document timestamp {timestamp_ms} ms is in the future of verification time {at_ms} ms")]
    FromFuture {
        /// Document timestamp.
        timestamp_ms: u64,
        /// Verification time.
        at_ms: u64,
    },
    /// A debug-mode enclave/VM, and the caller did not allow debug.
    #[error("debug-mode evidence refused (pass allow_debug to accept)")]
    DebugNotAllowed,
    /// Simulated evidence, and the caller did not allow simulated evidence.
    #[error("simulated (insecure development) evidence refused (pass allow_simulated to accept)")]
    SimulatedNotAllowed,
    /// An unsigned document of QEMU's emulated NSM, and the caller did not allow it.
    #[error(
        "emulated NSM document refused: it is unsigned (alg -1, zero signature and certificates; QEMU's \
         nitro-enclave machine), not AWS Nitro evidence (pass allow_emulated_nsm / --allow-emulated-nsm \
         to accept it as a test root)"
    )]
    EmulatedNsmNotAllowed,
    /// A document says alg -1 (unsigned) but lacks the emulator's exact zero signature,
    /// certificate or CA bundle: neither real nor emulated evidence.
    #[error("unsigned document without the emulated NSM's exact shape: {0}")]
    EmulatedShape(&'static str),

    // ---- SEV-SNP ----------------------------------------------------------
    /// The report is not 1184 bytes.
    #[error("SNP report has size {0}, expected 1184")]
    ReportSize(usize),
    /// Report version below 2 (or absurdly large).
    #[error("unsupported SNP report version {0}")]
    UnsupportedReportVersion(u32),
    /// The report's signature algorithm is not ECDSA P-384 with SHA-384.
    #[error("unsupported SNP signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(u32),
    /// The report says it was signed by a key kind this verifier does not accept (or none).
    #[error("unsupported SNP signing key kind {0}")]
    UnsupportedSigningKey(u32),
    /// Report is signed by a VCEK but a VLEK certificate was supplied, or vice versa.
    #[error("signing key kind in the report ({report}) does not match the certificate ({cert})")]
    SigningKeyKindMismatch {
        /// What the report says.
        report: &'static str,
        /// What the certificate is.
        cert: &'static str,
    },
    /// The report says a VLEK signed it (SIGNING_KEY = 1), but no ASVK was supplied and
    /// none is built in for the product: the VLEK cannot be chained to the ARK.
    #[error("report signed by a VLEK but no ASVK given (none built in for {product})")]
    VlekWithoutAsvk {
        /// Product from the VLEK.
        product: &'static str,
    },
    /// The VEK was not issued by the intermediate the report's SIGNING_KEY selects (the
    /// ASK for a VCEK, the ASVK for a VLEK): its issuer name differs from that
    /// intermediate's subject name.
    #[error("VEK issuer `{vek_issuer}` does not match the {intermediate} `{intermediate_subject}` that a {signing_key} report chains through")]
    VekIssuerMismatch {
        /// What the report's SIGNING_KEY says (`vcek` or `vlek`).
        signing_key: &'static str,
        /// The intermediate that selects: `ASK` or `ASVK`.
        intermediate: &'static str,
        /// Common name of the VEK's issuer.
        vek_issuer: String,
        /// Common name of the chosen intermediate's subject.
        intermediate_subject: String,
    },
    /// Bytes that must be zero in the report are not.
    #[error("SNP report reserved or padding bytes not zero at {0:#x}")]
    ReservedNonZero(usize),
    /// The VEK's product name is unknown or does not match the chain.
    #[error("unknown or mismatched AMD product `{0}`")]
    UnknownProduct(String),
    /// A TCB component of REPORTED_TCB differs from the VEK's extension.
    #[error("reported TCB {component} = {report} does not match VEK TCB {cert}")]
    TcbMismatch {
        /// bootloader / tee / snp / microcode / fmc.
        component: &'static str,
        /// In the report.
        report: u8,
        /// In the certificate.
        cert: u8,
    },
    /// A TCB extension the product requires is missing from the VEK.
    #[error("VEK lacks TCB extension {0}")]
    VekExtensionMissing(&'static str),
    /// CHIP_ID differs from the VCEK hwID.
    #[error("chip id does not match the VCEK hwID")]
    ChipIdMismatch,
    /// A component of REPORTED_TCB is below the caller's minimum.
    #[error("reported TCB {component} = {reported} is below the required minimum {minimum}")]
    TcbTooLow {
        /// bootloader / tee / snp / microcode / fmc.
        component: &'static str,
        /// In the report (REPORTED_TCB).
        reported: u8,
        /// Caller's minimum.
        minimum: u8,
    },
    /// MEASUREMENT differs from the expected launch measurement.
    #[error("launch measurement mismatch: expected {expected}, got {actual}")]
    MeasurementMismatch {
        /// Expected value, hex.
        expected: String,
        /// MEASUREMENT in the report, hex.
        actual: String,
    },
    /// The SEV-SNP guest policy allows debugging (DEBUG, bit 19) and debug was not allowed.
    #[error("guest policy {policy:#x} allows debugging (DEBUG bit 19: the host can read and write guest memory); refused unless debug is allowed")]
    GuestPolicyDebug {
        /// The report's guest POLICY.
        policy: u64,
    },
    /// REPORT_DATA differs from the expected value.
    #[error("report_data mismatch")]
    ReportDataMismatch,
    /// HOST_DATA differs from the expected value.
    #[error("host_data mismatch")]
    HostDataMismatch,
    /// CHIP_ID differs from the caller's expected chip.
    #[error("chip id is not the expected chip")]
    ExpectedChipIdMismatch,
    /// The guest policy allows a migration agent and the caller did not allow one.
    #[error("guest policy allows a migration agent")]
    MigrationAgentNotAllowed,
    /// The guest policy allows SMT and the caller requires SMT off.
    #[error("guest policy allows SMT")]
    SmtNotAllowed,
    /// The report's VMPL is above the caller's maximum.
    #[error("VMPL {vmpl} above the allowed maximum {max}")]
    VmplTooHigh {
        /// VMPL in the report.
        vmpl: u32,
        /// Caller's maximum.
        max: u32,
    },
    /// An expectation was set that this platform's evidence cannot satisfy
    /// (e.g. PCRs for SEV-SNP, a measurement for Nitro). Refused rather than ignored.
    #[error("expectation `{0}` does not apply to this platform's evidence")]
    ExpectationNotApplicable(&'static str),
    /// The SNP certificate bundle could not be decoded.
    #[error("malformed SNP certificate bundle: {0}")]
    BundleMalformed(&'static str),
}

impl Error {
    /// A stable, short class name for the failed check (useful for tests, metrics and JSON).
    pub fn check(&self) -> &'static str {
        match self {
            Error::InputTooLarge { .. } => "input_size",
            Error::Cbor(_) => "cbor",
            Error::CoseStructure(_) => "cose_structure",
            Error::UnsupportedAlgorithm => "algorithm",
            Error::UnexpectedHeader(_) => "header",
            Error::MissingField(_) => "missing_field",
            Error::WrongFieldType { .. } => "field_type",
            Error::FieldSize { .. } => "field_size",
            Error::UnknownField(_) => "unknown_field",
            Error::UnsupportedDigest(_) => "digest",
            Error::WrongPlatform { .. } => "platform",
            Error::CertificateMalformed { .. } => "certificate_malformed",
            Error::UntrustedRoot(_) => "root",
            Error::ChainNameMismatch { .. } => "chain_name",
            Error::ChainSignatureInvalid { .. } => "chain_signature",
            Error::CertificateAlgorithm { .. } => "certificate_algorithm",
            Error::NotACa { .. } => "basic_constraints",
            Error::PathLenExceeded { .. } => "path_len",
            Error::KeyUsage { .. } => "key_usage",
            Error::UnknownCriticalExtension { .. } => "critical_extension",
            Error::CertificateNotYetValid { .. } => "not_yet_valid",
            Error::CertificateExpired { .. } => "expired",
            Error::CabundleLength(_) => "cabundle",
            Error::MissingCertificate(_) => "missing_certificate",
            Error::SignatureInvalid => "signature",
            Error::PcrMissing(_) => "pcr_missing",
            Error::PcrMismatch { .. } => "pcr",
            Error::NonceMismatch => "nonce",
            Error::UserDataMismatch => "user_data",
            Error::PublicKeyMismatch => "public_key",
            Error::ModuleIdMismatch(_) => "module_id",
            Error::TooOld { .. } => "max_age",
            Error::FromFuture { .. } => "future",
            Error::DebugNotAllowed => "debug",
            Error::SimulatedNotAllowed => "simulated",
            Error::EmulatedNsmNotAllowed => "emulated_nsm",
            Error::EmulatedShape(_) => "emulated_shape",
            Error::ReportSize(_) => "report_size",
            Error::UnsupportedReportVersion(_) => "report_version",
            Error::UnsupportedSignatureAlgorithm(_) => "signature_algorithm",
            Error::UnsupportedSigningKey(_) => "signing_key",
            Error::SigningKeyKindMismatch { .. } => "signing_key_kind",
            Error::VlekWithoutAsvk { .. } => "vlek_without_asvk",
            Error::VekIssuerMismatch { .. } => "vek_issuer",
            Error::ReservedNonZero(_) => "reserved",
            Error::UnknownProduct(_) => "product",
            Error::TcbMismatch { .. } => "tcb_binding",
            Error::VekExtensionMissing(_) => "vek_extension",
            Error::ChipIdMismatch => "chip_id_binding",
            Error::TcbTooLow { .. } => "min_tcb",
            Error::MeasurementMismatch { .. } => "measurement",
            Error::GuestPolicyDebug { .. } => "debug",
            Error::ReportDataMismatch => "report_data",
            Error::HostDataMismatch => "host_data",
            Error::ExpectedChipIdMismatch => "chip_id",
            Error::MigrationAgentNotAllowed => "migration_agent",
            Error::SmtNotAllowed => "smt",
            Error::VmplTooHigh { .. } => "vmpl",
            Error::ExpectationNotApplicable(_) => "expectation_not_applicable",
            Error::BundleMalformed(_) => "bundle",
        }
    }
}
