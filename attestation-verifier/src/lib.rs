//! # attestation-verifier
//!
//! Strict, offline verification of enclave attestation evidence for the
//! cleanroom: AWS Nitro Enclaves attestation documents, AMD SEV-SNP
//! attestation reports, and *insecure* simulated evidence for development.
//!
//! Verification is a pipeline, in the shape of Project Oak's
//! `oak_attestation_verification`:
//!
//! 1. **extract claims** from the evidence: parse strictly, verify the vendor
//!    signature chain to a pinned root at the caller's time, verify the
//!    evidence signature. The result is a set of claims the platform vouches
//!    for ([`Claims`] for Nitro/simulated, [`snp::SnpReport`] for SEV-SNP);
//! 2. **build expectations** from reference values the caller recomputed
//!    ([`Expectations`]: [`NitroExpectations`] or [`SnpExpectations`]) and a few policy switches
//!    ([`Options`]);
//! 3. **compare**: every expectation that is set must hold; the first one that
//!    does not gives a typed [`Error`] naming it.
//!
//! On success a [`Verdict`] lists the checks that passed and the claims, and is
//! serialisable to JSON. There is no I/O and no clock: the verification time
//! is always passed in as a [`UnixTime`].
//!
//! | module | evidence |
//! |---|---|
//! | [`nitro`] | COSE_Sign1 / ES384 document from the Nitro Secure Module |
//! | [`snp`] | 1184-byte SEV-SNP ATTESTATION_REPORT + VCEK/VLEK certificate |
//! | [`simulated`] | development evidence signed by a **published** key: anyone can forge it |
//! | [`emulated`] | **unsigned** Nitro-shaped documents from QEMU's emulated NSM (`nitro-enclave` machine); a test root, refused unless [`Options::allow_emulated_nsm`] |
//!
//! The CBOR, COSE and DER parsers are private: callers hand over bytes and get a
//! [`Verdict`] or an [`Error`]. The one certificate helper a client needs is
//! [`certificate_ed25519_key`] (the enclave's TLS certificate must carry the attested
//! key).
//!
//! ## Cargo features
//!
//! | feature | adds |
//! |---|---|
//! | `simulated-issuer` | `issue_simulated` and `simulated::DEV_KEY_SEED`: *forging* simulated evidence (the enclave's `simulated` platform, tests). Verifying it needs no feature. |
//! | `cli` | the `attest` binary (clap) and the `cli` module, the input/PEM/summary helpers it uses |
//!
//! Forging and verifying simulated evidence, and refusing it unless asked to accept
//! it (needs `simulated-issuer`):
//!
//! ```
//! use attestation_verifier::*;
//!
//! # #[cfg(feature = "simulated-issuer")] {
//! let mut claims = Claims::new("dev-enclave", 1_700_000_000_000);
//! claims.pcrs.insert(0, vec![7; 48]);
//! claims.nonce = Some(b"fresh nonce".to_vec());
//! let doc = issue_simulated(&claims);
//!
//! let expect = Expectations::Nitro(NitroExpectations {
//!     pcrs: claims.pcrs.clone(),
//!     nonce: claims.nonce.clone(),
//!     max_age_ms: Some(60_000),
//!     ..Default::default()
//! });
//! let at = UnixTime::from_secs(1_700_000_001);
//! // Simulated evidence is refused unless the caller opts in…
//! assert_eq!(
//!     verify_evidence(Platform::Simulated, &doc, &expect, &Options::default(), at),
//!     Err(Error::SimulatedNotAllowed)
//! );
//! // …and every verdict under it says so.
//! let opts = Options { allow_simulated: true, ..Default::default() };
//! let verdict = verify_evidence(Platform::Simulated, &doc, &expect, &opts, at).unwrap();
//! assert!(verdict.simulated);
//! // It is never accepted as Nitro evidence.
//! assert!(verify_evidence(Platform::Nitro, &doc, &Expectations::Nitro(NitroExpectations::default()), &opts, at).is_err());
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(test, feature = "cli"))]
mod base64;
mod chain;
#[cfg(feature = "cli")]
pub mod cli;
mod cose;
mod crypto;
mod der;
pub mod emulated;
mod error;
mod fields;
pub mod hexser;
pub mod nitro;
pub mod policy;
pub mod simulated;
pub mod snp;
#[cfg(test)]
mod testcert;
#[cfg(test)]
mod testdata;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use cbor::CborError;
pub use chain::SignatureCache;
pub use der::DerError;
pub use error::{CertRole, Error};
pub use nitro::{verify_nitro, verify_nitro_cached};
#[cfg(feature = "simulated-issuer")]
pub use simulated::issue_simulated;
pub use simulated::verify_simulated;
pub use snp::reference::{GuestPolicyRules, ReferenceError, SnpReference};
pub use snp::{verify_snp, verify_snp_bundle, SnpCerts, SnpExpectations, TcbVersion};

/// A point in time, as the caller sees it (Unix epoch, millisecond resolution).
///
/// Verification never reads a clock; the caller passes this in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime {
    millis: u64,
}

impl UnixTime {
    /// From seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self { millis: secs.saturating_mul(1000) }
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.millis / 1000
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }
}

/// The kind of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// AWS Nitro Enclaves (NSM attestation document).
    Nitro,
    /// AMD SEV-SNP (attestation report + VCEK/VLEK).
    Snp,
    /// Insecure development evidence.
    Simulated,
}

impl Platform {
    /// Lower-case name: `nitro`, `snp`, `simulated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Nitro => "nitro",
            Platform::Snp => "snp",
            Platform::Simulated => "simulated",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nitro" => Ok(Platform::Nitro),
            "snp" => Ok(Platform::Snp),
            "simulated" => Ok(Platform::Simulated),
            other => Err(format!("unknown platform `{other}` (nitro, snp, simulated)")),
        }
    }
}

/// The claims carried by a Nitro attestation document (and by simulated evidence,
/// which uses the same claim set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Enclave/module identifier, e.g. `i-0123…-enc0123…`.
    pub module_id: String,
    /// When the document was produced, Unix milliseconds.
    pub timestamp: u64,
    /// PCR digest algorithm; always `SHA384`.
    pub digest: String,
    /// PCR index → 48-byte value.
    #[serde(with = "hexser::pcr_map")]
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Caller-supplied nonce bound into the document.
    #[serde(with = "hexser::opt")]
    pub nonce: Option<Vec<u8>>,
    /// Application data bound into the document.
    #[serde(with = "hexser::opt")]
    pub user_data: Option<Vec<u8>>,
    /// The enclave's public key bound into the document.
    #[serde(with = "hexser::opt")]
    pub public_key: Option<Vec<u8>>,
}

impl Claims {
    /// Claims with the given module id and timestamp (ms), digest `SHA384`, nothing else set.
    pub fn new(module_id: impl Into<String>, timestamp_ms: u64) -> Self {
        Self {
            module_id: module_id.into(),
            timestamp: timestamp_ms,
            digest: "SHA384".to_owned(),
            pcrs: BTreeMap::new(),
            nonce: None,
            user_data: None,
            public_key: None,
        }
    }

    /// Debug mode: PCR0, PCR1 and PCR2 present and all zero (how Nitro reports a
    /// debug-mode enclave).
    pub fn is_debug(&self) -> bool {
        [0u16, 1, 2].iter().all(|i| self.pcrs.get(i).is_some_and(|v| v.iter().all(|b| *b == 0)))
    }
}

/// What the caller (data owner) expects of evidence, from reference values it computed
/// itself: one kind per platform, so a field of one platform can never be given to the
/// other's verifier. Nitro and simulated evidence carry the same claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectations {
    /// Nitro and simulated evidence.
    Nitro(NitroExpectations),
    /// SEV-SNP reports.
    Snp(SnpExpectations),
}

impl Expectations {
    /// The platform family these expectations describe (`nitro` covers simulated evidence).
    pub fn describes(&self) -> &'static str {
        match self {
            Expectations::Nitro(_) => "nitro",
            Expectations::Snp(_) => "snp",
        }
    }
}

/// What the caller expects of Nitro (and simulated) evidence.
///
/// Every field that is set must hold; unset fields are not checked. PCRs are
/// compared exactly, by index; a PCR listed here but missing from the evidence
/// is a failure. Build with `NitroExpectations { pcrs, ..Default::default() }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NitroExpectations {
    /// PCR index → exact expected value (Nitro and simulated).
    #[serde(with = "hexser::pcr_map", default)]
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Exact nonce the caller sent (Nitro and simulated).
    #[serde(with = "hexser::opt", default)]
    pub nonce: Option<Vec<u8>>,
    /// Exact user_data (Nitro and simulated).
    #[serde(with = "hexser::opt", default)]
    pub user_data: Option<Vec<u8>>,
    /// Exact public_key (Nitro and simulated).
    #[serde(with = "hexser::opt", default)]
    pub public_key: Option<Vec<u8>>,
    /// module_id must start with this prefix (Nitro and simulated).
    #[serde(default)]
    pub module_id_prefix: Option<String>,
    /// Maximum age of the document at the verification time, in ms (Nitro and simulated).
    /// When set, a document more than 1 s in the future is refused too.
    #[serde(default)]
    pub max_age_ms: Option<u64>,
}

/// Policy switches. All default to `false` (the safe choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Accept simulated (insecure, forgeable) development evidence.
    pub allow_simulated: bool,
    /// Accept debug-mode evidence (Nitro: PCR0/1/2 all zero; SNP: policy DEBUG bit).
    pub allow_debug: bool,
    /// Accept the UNSIGNED documents of QEMU's emulated NSM (`nitro-enclave` machine) as
    /// Nitro evidence, without signature or chain checks (there are none to make) but with
    /// every claim check. A test root: see [`emulated`].
    #[serde(default)]
    pub allow_emulated_nsm: bool,
}

/// Summary of a verified SEV-SNP report, as carried in a [`Verdict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpSummary {
    /// Product from the VEK (`Milan-B0`, `Genoa`, …) and the pinned ARK used.
    pub product: String,
    /// Report format version.
    pub version: u32,
    /// Guest policy (u64).
    pub policy: u64,
    /// VMPL the report was requested at.
    pub vmpl: u32,
    /// Launch measurement (48 bytes).
    #[serde(with = "hexser::bytes")]
    pub measurement: Vec<u8>,
    /// REPORT_DATA (64 bytes).
    #[serde(with = "hexser::bytes")]
    pub report_data: Vec<u8>,
    /// HOST_DATA (32 bytes).
    #[serde(with = "hexser::bytes")]
    pub host_data: Vec<u8>,
    /// CHIP_ID (64 bytes).
    #[serde(with = "hexser::bytes")]
    pub chip_id: Vec<u8>,
    /// REPORTED_TCB.
    pub reported_tcb: TcbVersion,
    /// Signed by a VCEK (`vcek`) or a VLEK (`vlek`).
    pub signing_key: String,
}

/// The outcome of a successful verification.
///
/// A `Verdict` only exists for evidence that passed every check; failures are
/// [`Error`]s. `simulated` is `true` for every verdict produced from simulated
/// evidence, and `warning` then says why that matters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The platform whose evidence this was.
    pub platform: Platform,
    /// `true` iff the evidence was simulated (insecure, forgeable).
    pub simulated: bool,
    /// `true` iff the evidence was an unsigned document of QEMU's emulated NSM, accepted
    /// because `allow_emulated_nsm` was set ([`emulated`]): no AWS signature was checked.
    #[serde(default)]
    pub emulated_nsm: bool,
    /// Human-readable warning (always set for simulated and emulated-NSM evidence).
    pub warning: Option<String>,
    /// Debug-mode evidence (accepted only because `allow_debug` was set).
    pub debug: bool,
    /// Names of the checks that passed, in order.
    pub checks_passed: Vec<String>,
    /// Nitro/simulated module id.
    pub module_id: Option<String>,
    /// Nitro/simulated document timestamp, Unix ms.
    pub timestamp: Option<u64>,
    /// Nitro/simulated PCRs.
    #[serde(with = "hexser::pcr_map")]
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Nitro/simulated nonce.
    #[serde(with = "hexser::opt")]
    pub nonce: Option<Vec<u8>>,
    /// Nitro/simulated user_data.
    #[serde(with = "hexser::opt")]
    pub user_data: Option<Vec<u8>>,
    /// Nitro/simulated public_key.
    #[serde(with = "hexser::opt")]
    pub public_key: Option<Vec<u8>>,
    /// SEV-SNP report summary.
    pub snp: Option<SnpSummary>,
}

impl Verdict {
    pub(crate) fn from_claims(platform: Platform, claims: Claims, checks: Vec<String>) -> Self {
        let simulated = platform == Platform::Simulated;
        let debug = claims.is_debug();
        Self {
            platform,
            simulated,
            emulated_nsm: false,
            warning: simulated.then(|| simulated::WARNING.to_owned()),
            debug,
            checks_passed: checks,
            module_id: Some(claims.module_id),
            timestamp: Some(claims.timestamp),
            pcrs: claims.pcrs,
            nonce: claims.nonce,
            user_data: claims.user_data,
            public_key: claims.public_key,
            snp: None,
        }
    }
}

/// One entry point for every platform.
///
/// `evidence` is the Nitro COSE_Sign1 document, the simulated document, or for
/// SEV-SNP an evidence bundle made by [`snp::encode_bundle`] (report plus
/// VCEK/VLEK and optionally ASK/ARK). Nothing falls back from one platform to
/// another: the evidence must be of the kind named.
pub fn verify_evidence(
    kind: Platform,
    evidence: &[u8],
    expect: &Expectations,
    opts: &Options,
    at: UnixTime,
) -> Result<Verdict, Error> {
    // The platform comes with the evidence; expectations of the other kind cannot describe it.
    match (kind, expect) {
        (Platform::Nitro, Expectations::Nitro(e)) => verify_nitro(evidence, e, opts, at),
        (Platform::Simulated, Expectations::Nitro(e)) => verify_simulated(evidence, e, opts, at),
        (Platform::Snp, Expectations::Snp(e)) => verify_snp_bundle(evidence, e, opts, at),
        (Platform::Snp, Expectations::Nitro(_)) => {
            Err(Error::ExpectationNotApplicable("nitro expectations for snp evidence"))
        }
        (_, Expectations::Snp(_)) => Err(Error::ExpectationNotApplicable("snp expectations for nitro evidence")),
    }
}

/// The Ed25519 public key a DER X.509 certificate carries, if it carries one.
///
/// The certificate is parsed by the same strict DER reader as the vendor chains
/// (definite minimal lengths, valid dates, no trailing bytes); `None` for anything that
/// does not parse or whose key is not Ed25519 (OID 1.3.101.112, no parameters, 32
/// bytes). Nothing else is checked: not the certificate's signature, issuer or
/// validity. A client uses it to check that a TLS server's certificate holds the key
/// that attestation evidence names: the evidence, not the certificate, is what is
/// trusted.
pub fn certificate_ed25519_key(cert_der: &[u8]) -> Option<[u8; 32]> {
    let cert = der::Certificate::parse(cert_der).ok()?;
    if cert.key_alg.oid != der::oid::ED25519 || cert.key_alg.params.is_some() {
        return None;
    }
    cert.public_key.try_into().ok()
}

/// The library doing this build's signature checks and digests: `"ring"` by default,
/// `"aws-lc-rs"` with the `aws-lc` feature. Verdicts and errors are the same with either.
pub fn crypto_backend() -> &'static str {
    crypto::BUILT_IN.name()
}

/// Runs `f` with ring doing the calling thread's verification (and that of the threads the
/// verifier starts for it), whatever this build's backend. For the test that the two
/// backends agree (`tests/backends_agree.rs`); ring is a valid backend, so nothing a caller
/// does with this weakens a verdict.
#[cfg(feature = "aws-lc")]
#[doc(hidden)]
pub fn with_ring_backend<R>(f: impl FnOnce() -> R) -> R {
    crypto::with_backend(&crypto::Ring, f)
}
