//! AMD SEV-SNP attestation reports.
//!
//! Pipeline:
//!
//! 1. **Parse** ([`parse_report`]): exactly 1184 bytes, report version ≥ 2
//!    (2, 3 and 5 occur in the wild; the signed region is always
//!    `0x000..0x2A0`), signature algorithm 1 (ECDSA P-384/SHA-384), signing
//!    key VCEK (0) or VLEK (1), zero padding around the 48-byte `r`/`s` values.
//! 2. **Extract claims** ([`extract_report`]): the product comes from the VEK's
//!    `productName` extension (and must agree with the report's CPUID on v3+);
//!    chain VEK → ASK (VCEK) or ASVK (VLEK), chosen by the report's SIGNING_KEY
//!    and required to be the VEK's issuer, → ARK, with the ARK pinned by
//!    SHA-256 per product (Milan, Genoa, Turin) and RSASSA-PSS SHA-384
//!    signatures; every certificate valid at the time passed in; the report
//!    signature verifies with the VEK key; REPORTED_TCB equals the VEK's TCB
//!    extensions (bootloader, TEE, SNP, microcode, and FMC on Turin); CHIP_ID
//!    equals the VCEK `hwID` (unless the guest masked it).
//! 3. **Compare** with [`SnpExpectations`] (an owner's [`reference::SnpReference`],
//!    the `--expect-snp` file, turns into these): debug policy refused unless
//!    allowed, migration agent refused unless allowed, SMT if the caller
//!    requires it off, maximum VMPL, minimum TCB, measurement, report_data,
//!    host_data, chip id.
//!
//! Certificates come from the caller ([`SnpCerts`]: the VEK is required, the
//! ASK, ASVK and ARK are optional because the built-in copies are used
//! otherwise). The intermediate is chosen by the report's SIGNING_KEY field
//! (VCEK → ASK, VLEK → ASVK), and the VEK's issuer must be that intermediate
//! ([`Error::VekIssuerMismatch`]; a VLEK report with no ASVK given or built in is
//! [`Error::VlekWithoutAsvk`]), so supplying both intermediates is harmless.
//! There is no network access.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, Alg};
use crate::der::{self, Certificate};
use crate::{Error, Options, Platform, SnpSummary, UnixTime, Verdict};
use cbor::{Value, Writer};

/// Size of an ATTESTATION_REPORT.
pub const REPORT_LEN: usize = 0x4A0;
/// The signed region is `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Largest SNP evidence bundle accepted.
pub const MAX_BUNDLE_LEN: usize = 32 * 1024;

const POLICY_SMT: u64 = 1 << 16;
const POLICY_MIGRATE_MA: u64 = 1 << 18;
const POLICY_DEBUG: u64 = 1 << 19;

/// AMD VCEK/VLEK extension OIDs (content octets), arc 1.3.6.1.4.1.3704.1.
mod amd_oid {
    pub const PRODUCT_NAME: [u8; 9] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 2];
    pub const BOOTLOADER: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 3, 1];
    pub const TEE: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 3, 2];
    pub const SNP: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 3, 3];
    pub const MICROCODE: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 3, 8];
    pub const FMC: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 3, 9];
    pub const HWID: [u8; 9] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 4];
}

/// AMD EPYC product generations with pinned ARKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Product {
    /// 3rd gen EPYC (Zen 3).
    Milan,
    /// 4th gen EPYC (Zen 4).
    Genoa,
    /// 5th gen EPYC (Zen 5).
    Turin,
}

/// SHA-256 of ARK-Milan (DER).
pub const ARK_MILAN_SHA256: &str = "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd";
/// SHA-256 of ARK-Genoa (DER).
pub const ARK_GENOA_SHA256: &str = "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1";
/// SHA-256 of ARK-Turin (DER).
pub const ARK_TURIN_SHA256: &str = "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a";

impl Product {
    /// From a VEK `productName` such as `Milan-B0`, `Genoa`, `Turin`.
    pub fn from_name(name: &str) -> Option<Self> {
        let family = name.split('-').next().unwrap_or(name);
        match family {
            "Milan" => Some(Product::Milan),
            "Genoa" => Some(Product::Genoa),
            "Turin" => Some(Product::Turin),
            _ => None,
        }
    }

    /// From the CPUID family/model in a v3+ report, when it is one we know.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Self> {
        match (family, model) {
            (0x19, 0x00..=0x0f) => Some(Product::Milan),
            (0x19, 0x10..=0x1f) | (0x19, 0xa0..=0xaf) => Some(Product::Genoa),
            (0x1a, 0x00..=0x1f) => Some(Product::Turin),
            _ => None,
        }
    }

    /// Name as used by AMD KDS.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// The pinned ARK (DER).
    pub fn ark(self) -> &'static [u8] {
        match self {
            Product::Milan => include_bytes!("../roots/ark_milan.der"),
            Product::Genoa => include_bytes!("../roots/ark_genoa.der"),
            Product::Turin => include_bytes!("../roots/ark_turin.der"),
        }
    }

    /// SHA-256 pin of the ARK.
    pub fn ark_sha256(self) -> &'static str {
        match self {
            Product::Milan => ARK_MILAN_SHA256,
            Product::Genoa => ARK_GENOA_SHA256,
            Product::Turin => ARK_TURIN_SHA256,
        }
    }

    /// Built-in ASK (VCEK intermediate), DER.
    pub fn ask(self) -> &'static [u8] {
        match self {
            Product::Milan => include_bytes!("../roots/ask_milan.der"),
            Product::Genoa => include_bytes!("../roots/ask_genoa.der"),
            Product::Turin => include_bytes!("../roots/ask_turin.der"),
        }
    }

    /// Built-in ASVK (VLEK intermediate), DER, where one is bundled.
    pub fn asvk(self) -> Option<&'static [u8]> {
        match self {
            Product::Milan => Some(include_bytes!("../roots/asvk_milan.der")),
            _ => None,
        }
    }
}

/// Which key signed the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key (per chip and TCB).
    Vcek,
    /// Versioned Loaded Endorsement Key (per cloud provider and TCB).
    Vlek,
}

impl SigningKey {
    fn as_str(self) -> &'static str {
        match self {
            SigningKey::Vcek => "vcek",
            SigningKey::Vlek => "vlek",
        }
    }
}

/// A TCB version (security patch level of each firmware component).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcbVersion {
    /// Bootloader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
    /// FMC SPL (Turin and later; 0 before).
    pub fmc: u8,
}

impl TcbVersion {
    /// Decodes a raw TCB_VERSION (u64 little-endian in the report) for a product.
    ///
    /// Milan/Genoa: byte0 bootloader, byte1 TEE, byte6 SNP, byte7 microcode.
    /// Turin: byte0 FMC, byte1 bootloader, byte2 TEE, byte3 SNP, byte7 microcode.
    pub fn from_raw(raw: u64, product: Product) -> Self {
        let b = raw.to_le_bytes();
        match product {
            Product::Milan | Product::Genoa => Self { bootloader: b[0], tee: b[1], snp: b[6], microcode: b[7], fmc: 0 },
            Product::Turin => Self { fmc: b[0], bootloader: b[1], tee: b[2], snp: b[3], microcode: b[7] },
        }
    }

    fn components(&self) -> [(&'static str, u8); 5] {
        [
            ("bootloader", self.bootloader),
            ("tee", self.tee),
            ("snp", self.snp),
            ("microcode", self.microcode),
            ("fmc", self.fmc),
        ]
    }
}

/// SEV-SNP specific expectations. Unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpExpectations {
    /// Expected launch measurement (48 bytes).
    #[serde(with = "crate::hexser::opt", default)]
    pub measurement: Option<Vec<u8>>,
    /// Expected REPORT_DATA (64 bytes), e.g. a hash of nonce and channel key.
    #[serde(with = "crate::hexser::opt", default)]
    pub report_data: Option<Vec<u8>>,
    /// Expected HOST_DATA (32 bytes).
    #[serde(with = "crate::hexser::opt", default)]
    pub host_data: Option<Vec<u8>>,
    /// Expected CHIP_ID (64 bytes).
    #[serde(with = "crate::hexser::opt", default)]
    pub chip_id: Option<Vec<u8>>,
    /// Minimum REPORTED_TCB, component by component.
    #[serde(default)]
    pub min_tcb: Option<TcbVersion>,
    /// Highest VMPL accepted (None: any).
    #[serde(default)]
    pub max_vmpl: Option<u32>,
    /// Accept a guest policy that allows a migration agent.
    #[serde(default)]
    pub allow_migration_agent: bool,
    /// Refuse a guest policy that allows SMT.
    #[serde(default)]
    pub deny_smt: bool,
}

/// Certificates that come with an SNP report (DER each).
///
/// Both intermediates may be given at once (providers' bundles often carry both): which
/// one the chain goes through is decided by the report's SIGNING_KEY field (VCEK → ASK,
/// VLEK → ASVK) and must then be the VEK's issuer; the other is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnpCerts {
    /// VCEK or VLEK (required).
    pub vek: Vec<u8>,
    /// ASK, the intermediate for a VCEK; the built-in one is used when `None`.
    pub ask: Option<Vec<u8>>,
    /// ASVK, the intermediate for a VLEK; the built-in one (Milan only) is used when `None`.
    pub asvk: Option<Vec<u8>>,
    /// ARK; optional, and when given it must equal the pinned ARK.
    pub ark: Option<Vec<u8>>,
}

impl SnpCerts {
    /// Only the VEK: the pinned ARK and the built-in intermediates complete the chain.
    pub fn vek_only(vek: Vec<u8>) -> Self {
        Self { vek, ..Default::default() }
    }
}

/// What a product's chain is anchored in: the ARK with its SHA-256 pin, and the
/// intermediates used when the caller supplies none. [`Product::anchors`] gives AMD's;
/// tests substitute a test root to exercise paths no genuine fixture covers (VLEK).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anchors<'a> {
    pub ark: &'a [u8],
    pub ark_sha256: &'a str,
    pub ask: &'a [u8],
    pub asvk: Option<&'a [u8]>,
}

impl Product {
    pub(crate) fn anchors(self) -> Anchors<'static> {
        Anchors { ark: self.ark(), ark_sha256: self.ark_sha256(), ask: self.ask(), asvk: self.asvk() }
    }
}

/// The intermediate a report's chain goes through, chosen by the report's SIGNING_KEY
/// (VCEK → ASK, VLEK → ASVK) and never by which certificates were supplied: the caller's
/// copy of that intermediate, else the built-in one. Returns its DER and role name.
fn intermediate_for<'a>(
    signing_key: SigningKey,
    product: Product,
    certs: &'a SnpCerts,
    anchors: Anchors<'a>,
) -> Result<(&'a [u8], &'static str), Error> {
    match signing_key {
        SigningKey::Vcek => Ok((certs.ask.as_deref().unwrap_or(anchors.ask), "ASK")),
        SigningKey::Vlek => match certs.asvk.as_deref().or(anchors.asvk) {
            Some(a) => Ok((a, "ASVK")),
            None => Err(Error::VlekWithoutAsvk { product: product.as_str() }),
        },
    }
}

/// A parsed (not yet verified) ATTESTATION_REPORT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpReport {
    /// Format version (≥ 2).
    pub version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Guest policy.
    pub policy: u64,
    /// FAMILY_ID.
    #[serde(with = "crate::hexser::bytes")]
    pub family_id: Vec<u8>,
    /// IMAGE_ID.
    #[serde(with = "crate::hexser::bytes")]
    pub image_id: Vec<u8>,
    /// VMPL of the request.
    pub vmpl: u32,
    /// Signature algorithm (1).
    pub signature_algo: u32,
    /// CURRENT_TCB (raw).
    pub current_tcb: u64,
    /// PLATFORM_INFO.
    pub platform_info: u64,
    /// AUTHOR_KEY_EN.
    pub author_key_en: bool,
    /// MASK_CHIP_ID.
    pub mask_chip_id: bool,
    /// Signing key kind.
    pub signing_key: SigningKey,
    /// REPORT_DATA.
    #[serde(with = "crate::hexser::bytes")]
    pub report_data: Vec<u8>,
    /// MEASUREMENT.
    #[serde(with = "crate::hexser::bytes")]
    pub measurement: Vec<u8>,
    /// HOST_DATA.
    #[serde(with = "crate::hexser::bytes")]
    pub host_data: Vec<u8>,
    /// ID_KEY_DIGEST.
    #[serde(with = "crate::hexser::bytes")]
    pub id_key_digest: Vec<u8>,
    /// AUTHOR_KEY_DIGEST.
    #[serde(with = "crate::hexser::bytes")]
    pub author_key_digest: Vec<u8>,
    /// REPORT_ID.
    #[serde(with = "crate::hexser::bytes")]
    pub report_id: Vec<u8>,
    /// REPORT_ID_MA.
    #[serde(with = "crate::hexser::bytes")]
    pub report_id_ma: Vec<u8>,
    /// REPORTED_TCB (raw).
    pub reported_tcb: u64,
    /// CPUID family, model, stepping (v3+; zero before).
    pub cpuid: [u8; 3],
    /// CHIP_ID.
    #[serde(with = "crate::hexser::bytes")]
    pub chip_id: Vec<u8>,
    /// COMMITTED_TCB (raw).
    pub committed_tcb: u64,
    /// LAUNCH_TCB (raw).
    pub launch_tcb: u64,
    /// Launch mitigation vector (v5+).
    pub launch_mit_vector: Option<u64>,
    /// Current mitigation vector (v5+).
    pub current_mit_vector: Option<u64>,
    /// Signature r‖s, big-endian, 96 bytes.
    #[serde(with = "crate::hexser::bytes")]
    pub signature: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Step 1: strict parsing of the 1184-byte report (no signature check).
pub fn parse_report(b: &[u8]) -> Result<SnpReport, Error> {
    if b.len() != REPORT_LEN {
        return Err(Error::ReportSize(b.len()));
    }
    let version = u32_at(b, 0x00);
    if version < 2 {
        return Err(Error::UnsupportedReportVersion(version));
    }
    let signature_algo = u32_at(b, 0x34);
    if signature_algo != 1 {
        return Err(Error::UnsupportedSignatureAlgorithm(signature_algo));
    }
    let flags = u32_at(b, 0x48);
    let signing_key = match (flags >> 2) & 7 {
        0 => SigningKey::Vcek,
        1 => SigningKey::Vlek,
        other => return Err(Error::UnsupportedSigningKey(other)),
    };
    // r and s: 72-byte little-endian fields, only the low 48 bytes significant;
    // the rest of the 512-byte signature area is reserved.
    for off in (0x2A0 + 48..0x2A0 + 72).chain(0x2E8 + 48..0x2E8 + 72).chain(0x330..REPORT_LEN) {
        if b[off] != 0 {
            return Err(Error::ReservedNonZero(off));
        }
    }
    let mut signature = Vec::with_capacity(96);
    signature.extend(b[0x2A0..0x2A0 + 48].iter().rev());
    signature.extend(b[0x2E8..0x2E8 + 48].iter().rev());
    let v5 = version >= 5;
    Ok(SnpReport {
        version,
        guest_svn: u32_at(b, 0x04),
        policy: u64_at(b, 0x08),
        family_id: b[0x10..0x20].to_vec(),
        image_id: b[0x20..0x30].to_vec(),
        vmpl: u32_at(b, 0x30),
        signature_algo,
        current_tcb: u64_at(b, 0x38),
        platform_info: u64_at(b, 0x40),
        author_key_en: flags & 1 != 0,
        mask_chip_id: flags & 2 != 0,
        signing_key,
        report_data: b[0x50..0x90].to_vec(),
        measurement: b[0x90..0xC0].to_vec(),
        host_data: b[0xC0..0xE0].to_vec(),
        id_key_digest: b[0xE0..0x110].to_vec(),
        author_key_digest: b[0x110..0x140].to_vec(),
        report_id: b[0x140..0x160].to_vec(),
        report_id_ma: b[0x160..0x180].to_vec(),
        reported_tcb: u64_at(b, 0x180),
        cpuid: [b[0x188], b[0x189], b[0x18A]],
        chip_id: b[0x1A0..0x1E0].to_vec(),
        committed_tcb: u64_at(b, 0x1E0),
        launch_tcb: u64_at(b, 0x1F0),
        launch_mit_vector: v5.then(|| u64_at(b, 0x1F8)),
        current_mit_vector: v5.then(|| u64_at(b, 0x200)),
        signature,
    })
}

/// A report whose signature, chain and VEK binding have been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReport {
    /// The report.
    pub report: SnpReport,
    /// Product generation.
    pub product: Product,
    /// The VEK's productName (e.g. `Milan-B0`).
    pub product_name: String,
    /// Decoded REPORTED_TCB.
    pub reported_tcb: TcbVersion,
    /// Names of the checks that passed.
    pub checks: Vec<String>,
}

fn vek_u8(vek: &Certificate<'_>, oid: &[u8], name: &'static str) -> Result<u8, Error> {
    let ext = vek.extension(oid).ok_or(Error::VekExtensionMissing(name))?;
    let malformed = |source| Error::CertificateMalformed { role: "VEK".into(), source };
    let int = der::single(ext.value, der::tag::INTEGER).map_err(malformed)?;
    let v = der::small_uint(int.content).map_err(malformed)?;
    u8::try_from(v).map_err(|_| malformed(der::DerError::Invalid("TCB extension")))
}

fn product_name(vek: &Certificate<'_>) -> Result<String, Error> {
    let ext = vek.extension(&amd_oid::PRODUCT_NAME).ok_or(Error::VekExtensionMissing("productName"))?;
    let s = der::single(ext.value, der::tag::IA5_STRING)
        .map_err(|source| Error::CertificateMalformed { role: "VEK".into(), source })?;
    Ok(String::from_utf8_lossy(s.content).into_owned())
}

/// Step 2: verifies the report against its certificates at `at` and returns
/// what AMD vouches for. No caller expectation is applied.
pub fn extract_report(report: &[u8], certs: &SnpCerts, at: UnixTime) -> Result<VerifiedReport, Error> {
    extract_report_with(report, certs, at, Product::anchors)
}

/// [`extract_report`] with the trust anchors given per product (AMD's in production).
pub(crate) fn extract_report_with<'a>(
    report: &[u8],
    certs: &SnpCerts,
    at: UnixTime,
    anchors_for: impl Fn(Product) -> Anchors<'a>,
) -> Result<VerifiedReport, Error> {
    let r = parse_report(report)?;
    let mut checks: Vec<String> =
        ["report_size", "report_version", "signature_algorithm"].iter().map(|s| (*s).to_owned()).collect();
    let vek =
        Certificate::parse(&certs.vek).map_err(|source| Error::CertificateMalformed { role: "VEK".into(), source })?;
    let cert_kind = match vek.subject_cn().as_deref() {
        Some("SEV-VCEK") => SigningKey::Vcek,
        Some("SEV-VLEK") => SigningKey::Vlek,
        _ => {
            return Err(Error::SigningKeyKindMismatch {
                report: r.signing_key.as_str(),
                cert: "neither SEV-VCEK nor SEV-VLEK",
            })
        }
    };
    if cert_kind != r.signing_key {
        return Err(Error::SigningKeyKindMismatch { report: r.signing_key.as_str(), cert: cert_kind.as_str() });
    }
    let name = product_name(&vek)?;
    let product = Product::from_name(&name).ok_or_else(|| Error::UnknownProduct(name.clone()))?;
    if let Some(p) = Product::from_cpuid(r.cpuid[0], r.cpuid[1]) {
        if p != product {
            return Err(Error::UnknownProduct(format!("{name} (report CPUID says {})", p.as_str())));
        }
    }
    checks.push("product".into());

    let anchors = anchors_for(product);
    // The report's SIGNING_KEY picks the intermediate; the VEK must have been issued by it.
    let (ask_der, ask_role) = intermediate_for(r.signing_key, product, certs, anchors)?;
    let ark_der = anchors.ark;
    if let Some(supplied) = &certs.ark {
        if supplied.as_slice() != ark_der {
            return Err(Error::UntrustedRoot("AMD ARK"));
        }
    }
    let ark =
        Certificate::parse(ark_der).map_err(|source| Error::CertificateMalformed { role: "ARK".into(), source })?;
    if hex::encode(ark.sha256()) != anchors.ark_sha256 {
        return Err(Error::UntrustedRoot("AMD ARK"));
    }
    checks.push("ark_pinned".into());
    let ask =
        Certificate::parse(ask_der).map_err(|source| Error::CertificateMalformed { role: ask_role.into(), source })?;
    if vek.issuer != ask.subject {
        let cn = |name: Option<String>| name.unwrap_or_else(|| "(no common name)".to_owned());
        let (mut vek_issuer, intermediate_subject) = (cn(der::common_name(vek.issuer)), cn(ask.subject_cn()));
        if vek_issuer == intermediate_subject {
            vek_issuer.push_str(" (another attribute of the name differs)");
        }
        return Err(Error::VekIssuerMismatch {
            signing_key: r.signing_key.as_str(),
            intermediate: ask_role,
            vek_issuer,
            intermediate_subject,
        });
    }
    checks.push("vek_issuer".into());
    let roles = ["ARK".to_owned(), ask_role.to_owned(), "VEK".to_owned()];
    let chain = [ark, ask, vek];
    crate::chain::verify_chain(&chain, &roles, at)?;
    checks.extend(
        ["chain_names", "chain_basic_constraints", "chain_signatures", "certificate_validity"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let vek = &chain[2];
    if !vek.is_p384_key() {
        return Err(Error::CertificateAlgorithm { role: "VEK".into() });
    }
    crypto::verify(Alg::EcdsaP384Sha384Fixed, vek.public_key, &report[..SIGNED_LEN], &r.signature)
        .map_err(|_| Error::SignatureInvalid)?;
    checks.push("signature".into());

    let reported = TcbVersion::from_raw(r.reported_tcb, product);
    check_vek_binding(&r, vek, product, cert_kind, &mut checks)?;
    Ok(VerifiedReport { report: r, product, product_name: name, reported_tcb: reported, checks })
}

/// Checks that the report's REPORTED_TCB equals the VEK's TCB extensions and,
/// for a VCEK, that CHIP_ID equals its hwID (unless the guest masked the chip id).
pub fn check_vek_binding(
    r: &SnpReport,
    vek: &Certificate<'_>,
    product: Product,
    cert_kind: SigningKey,
    checks: &mut Vec<String>,
) -> Result<(), Error> {
    let reported = TcbVersion::from_raw(r.reported_tcb, product);
    let cert_tcb = TcbVersion {
        bootloader: vek_u8(vek, &amd_oid::BOOTLOADER, "bootloader")?,
        tee: vek_u8(vek, &amd_oid::TEE, "tee")?,
        snp: vek_u8(vek, &amd_oid::SNP, "snp")?,
        microcode: vek_u8(vek, &amd_oid::MICROCODE, "microcode")?,
        fmc: if product == Product::Turin { vek_u8(vek, &amd_oid::FMC, "fmc")? } else { 0 },
    };
    for ((component, rep), (_, cert)) in reported.components().into_iter().zip(cert_tcb.components()) {
        if rep != cert {
            return Err(Error::TcbMismatch { component, report: rep, cert });
        }
    }
    checks.push("tcb_binding".into());

    if cert_kind == SigningKey::Vcek {
        if r.mask_chip_id && r.chip_id.iter().all(|b| *b == 0) {
            checks.push("chip_id_masked".into());
        } else {
            let hwid = vek.extension(&amd_oid::HWID).ok_or(Error::VekExtensionMissing("hwID"))?.value;
            let n = hwid.len();
            let ok = n > 0 && n <= r.chip_id.len() && r.chip_id[..n] == *hwid && r.chip_id[n..].iter().all(|b| *b == 0);
            if !ok {
                return Err(Error::ChipIdMismatch);
            }
            checks.push("chip_id_binding".into());
        }
    }
    Ok(())
}

/// Step 3: compares a verified report with the caller's expectations.
pub fn check_expectations(
    v: &VerifiedReport,
    e: &SnpExpectations,
    opts: &Options,
    checks: &mut Vec<String>,
) -> Result<(), Error> {
    let r = &v.report;
    if r.policy & POLICY_DEBUG != 0 {
        if !opts.allow_debug {
            return Err(Error::GuestPolicyDebug { policy: r.policy });
        }
        checks.push("debug_policy_allowed".into());
    } else {
        checks.push("debug_policy".into());
    }
    if r.policy & POLICY_MIGRATE_MA != 0 && !e.allow_migration_agent {
        return Err(Error::MigrationAgentNotAllowed);
    }
    checks.push("migration_agent_policy".into());
    if e.deny_smt {
        if r.policy & POLICY_SMT != 0 {
            return Err(Error::SmtNotAllowed);
        }
        checks.push("smt_policy".into());
    }
    if let Some(max) = e.max_vmpl {
        if r.vmpl > max {
            return Err(Error::VmplTooHigh { vmpl: r.vmpl, max });
        }
        checks.push("vmpl".into());
    }
    if let Some(min) = &e.min_tcb {
        for ((component, have), (_, want)) in v.reported_tcb.components().into_iter().zip(min.components()) {
            if have < want {
                return Err(Error::TcbTooLow { component, reported: have, minimum: want });
            }
        }
        checks.push("min_tcb".into());
    }
    let cmp = |want: &Option<Vec<u8>>, have: &[u8], err: Error, name: &str, checks: &mut Vec<String>| match want {
        Some(w) if w.as_slice() != have => Err(err),
        Some(_) => {
            checks.push(name.to_owned());
            Ok(())
        }
        None => Ok(()),
    };
    let measurement_mismatch = || Error::MeasurementMismatch {
        expected: e.measurement.as_deref().map(hex::encode).unwrap_or_default(),
        actual: hex::encode(&r.measurement),
    };
    cmp(&e.measurement, &r.measurement, measurement_mismatch(), "measurement", checks)?;
    cmp(&e.report_data, &r.report_data, Error::ReportDataMismatch, "report_data", checks)?;
    cmp(&e.host_data, &r.host_data, Error::HostDataMismatch, "host_data", checks)?;
    cmp(&e.chip_id, &r.chip_id, Error::ExpectedChipIdMismatch, "chip_id", checks)?;
    Ok(())
}

/// Verifies an SEV-SNP report with its certificates at time `at`, then checks
/// `expect`. See the module docs.
pub fn verify_snp(
    report: &[u8],
    certs: &SnpCerts,
    expect: &SnpExpectations,
    opts: &Options,
    at: UnixTime,
) -> Result<Verdict, Error> {
    let v = extract_report(report, certs, at)?;
    let mut checks = v.checks.clone();
    check_expectations(&v, expect, opts, &mut checks)?;
    let r = v.report;
    let debug = r.policy & POLICY_DEBUG != 0;
    Ok(Verdict {
        platform: Platform::Snp,
        simulated: false,
        emulated_nsm: false,
        warning: None,
        debug,
        checks_passed: checks,
        module_id: None,
        timestamp: None,
        pcrs: Default::default(),
        nonce: None,
        user_data: None,
        public_key: None,
        snp: Some(SnpSummary {
            product: v.product_name,
            version: r.version,
            policy: r.policy,
            vmpl: r.vmpl,
            measurement: r.measurement,
            report_data: r.report_data,
            host_data: r.host_data,
            chip_id: r.chip_id,
            reported_tcb: v.reported_tcb,
            signing_key: r.signing_key.as_str().to_owned(),
        }),
    })
}

const BUNDLE_KEYS: &[&str] = &["report", "vek", "ask", "asvk", "ark"];

/// Encodes an SNP evidence bundle: CBOR map `{"report": bstr, "vek": bstr,
/// ? "ask": bstr, ? "asvk": bstr, ? "ark": bstr}` — what `verify_evidence(Platform::Snp, …)` takes.
pub fn encode_bundle(report: &[u8], certs: &SnpCerts) -> Vec<u8> {
    let n = 2 + [&certs.ask, &certs.asvk, &certs.ark].iter().filter(|c| c.is_some()).count();
    let mut w = Writer::new();
    w.map(n).text("report").bytes(report).text("vek").bytes(&certs.vek);
    if let Some(a) = &certs.ask {
        w.text("ask").bytes(a);
    }
    if let Some(a) = &certs.asvk {
        w.text("asvk").bytes(a);
    }
    if let Some(a) = &certs.ark {
        w.text("ark").bytes(a);
    }
    w.into_bytes()
}

/// Decodes an SNP evidence bundle made by [`encode_bundle`].
pub fn decode_bundle(bundle: &[u8]) -> Result<(Vec<u8>, SnpCerts), Error> {
    if bundle.len() > MAX_BUNDLE_LEN {
        return Err(Error::InputTooLarge { len: bundle.len(), max: MAX_BUNDLE_LEN });
    }
    let v = cbor::decode(bundle)?;
    let Value::Map(entries) = &v else {
        return Err(Error::BundleMalformed("not a map"));
    };
    crate::fields::only_known_keys(entries, BUNDLE_KEYS)?;
    let get = |k: &'static str| -> Result<Option<Vec<u8>>, Error> {
        match v.map_get_text(k) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(_) => Err(Error::WrongFieldType { field: k, expected: "byte string" }),
        }
    };
    let report = get("report")?.ok_or(Error::MissingField("report"))?;
    let vek = get("vek")?.ok_or(Error::MissingField("vek"))?;
    Ok((report, SnpCerts { vek, ask: get("ask")?, asvk: get("asvk")?, ark: get("ark")? }))
}

/// Verifies an SNP evidence bundle (see [`encode_bundle`]).
pub fn verify_snp_bundle(
    bundle: &[u8],
    expect: &SnpExpectations,
    opts: &Options,
    at: UnixTime,
) -> Result<Verdict, Error> {
    let (report, certs) = decode_bundle(bundle)?;
    verify_snp(&report, &certs, expect, opts, at)
}

/// Sorts loose DER certificates (from a directory or a PEM bundle) into an
/// [`SnpCerts`] by subject CN: `SEV-VCEK`/`SEV-VLEK` → VEK, `SEV-VLEK-*` → ASVK, other
/// `SEV-*` → ASK, `ARK-*` → ARK. Unrecognised ones are ignored. A folder may hold both
/// intermediates (and several products' certificates): where several of one kind are
/// present, the one whose subject is the VEK's issuer is kept (and the ARK above it).
/// Which intermediate the chain then goes through is decided by the verifier from the
/// report's SIGNING_KEY, never here.
pub fn sort_certs(ders: Vec<Vec<u8>>) -> Result<SnpCerts, Error> {
    let mut vek: Option<Vec<u8>> = None;
    let (mut asks, mut asvks, mut arks) = (Vec::new(), Vec::new(), Vec::new());
    for d in ders {
        let cn = Certificate::parse(&d)
            .map_err(|source| Error::CertificateMalformed { role: "supplied certificate".into(), source })?
            .subject_cn()
            .unwrap_or_default();
        if cn == "SEV-VCEK" || cn == "SEV-VLEK" {
            if vek.is_some() {
                return Err(Error::BundleMalformed("more than one VCEK/VLEK"));
            }
            vek = Some(d);
        } else if cn.starts_with("SEV-VLEK-") {
            asvks.push(d);
        } else if cn.starts_with("SEV-") {
            asks.push(d);
        } else if cn.starts_with("ARK-") {
            arks.push(d);
        }
    }
    let vek = vek.ok_or(Error::MissingCertificate("VCEK or VLEK"))?;
    let names = |d: &[u8]| Certificate::parse(d).map(|c| (c.subject.to_vec(), c.issuer.to_vec())).unwrap_or_default();
    let vek_issuer = names(&vek).1;
    // Of several candidates, the one named `subject`; else the first (the verifier then
    // refuses it with a typed error naming both names).
    let pick = |mut cands: Vec<Vec<u8>>, subject: &[u8]| -> Option<Vec<u8>> {
        let i = cands.iter().position(|c| names(c).0 == subject).unwrap_or(0);
        (!cands.is_empty()).then(|| cands.swap_remove(i))
    };
    let ask = pick(asks, &vek_issuer);
    let asvk = pick(asvks, &vek_issuer);
    let ark_name = [&ask, &asvk]
        .into_iter()
        .flatten()
        .map(|c| names(c))
        .find(|(subject, _)| *subject == vek_issuer)
        .map(|(_, issuer)| issuer)
        .unwrap_or_default();
    let ark = pick(arks, &ark_name);
    Ok(SnpCerts { vek, ask, asvk, ark })
}

pub mod reference;

#[cfg(test)]
mod tests;
