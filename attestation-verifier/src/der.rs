//! Minimal strict DER reader and X.509 certificate parser.
//!
//! Only definite, minimally encoded lengths and low tag numbers are accepted.
//! The parser keeps borrowed slices of the raw encoding, so signatures are
//! always checked over the bytes as received (the TBSCertificate is never
//! re-encoded). It understands what the Nitro and AMD chains need: validity,
//! subject/issuer names (compared byte for byte), the public key, basic
//! constraints, key usage, and raw access to every other extension.
//!
//! Beyond DER itself it makes the checks webpki makes on these fields: a
//! validity time must be a real UTC date and time (no 31 February, no 29
//! February outside leap years, no hour 24, no second 60), and the KeyUsage
//! BIT STRING must have at most 7 unused bits, none on an empty string, and
//! zero padding bits. Basic constraints and key usage are decoded while
//! parsing, so a malformed one makes the whole certificate malformed.

use thiserror::Error;

use crate::crypto::{self, Alg};

/// Why a certificate is not acceptable DER X.509.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DerError {
    /// Input ended inside an element.
    #[error("truncated")]
    Truncated,
    /// Indefinite, non-minimal or oversized length.
    #[error("bad length encoding")]
    BadLength,
    /// High-tag-number form, which no X.509 field here uses.
    #[error("unsupported tag form")]
    BadTag,
    /// A different element than the structure requires.
    #[error("unexpected element (tag {found:#04x}, wanted {wanted:#04x})")]
    Unexpected {
        /// Tag found.
        found: u8,
        /// Tag wanted.
        wanted: u8,
    },
    /// Bytes after the end of a structure.
    #[error("trailing data")]
    Trailing,
    /// A value is invalid for its type (boolean, integer, bit string, time).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The same extension twice.
    #[error("duplicate extension")]
    DuplicateExtension,
}

/// One tag-length-value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Tag byte.
    pub tag: u8,
    /// Content octets.
    pub content: &'a [u8],
    /// The whole element (tag, length and content).
    pub raw: &'a [u8],
}

/// DER tags used here.
pub mod tag {
    /// BOOLEAN
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// UTF8String
    pub const UTF8_STRING: u8 = 0x0c;
    /// PrintableString
    pub const PRINTABLE_STRING: u8 = 0x13;
    /// IA5String
    pub const IA5_STRING: u8 = 0x16;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE
    pub const SEQUENCE: u8 = 0x30;
    /// SET
    pub const SET: u8 = 0x31;
}

/// Sequential reader over DER elements.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// True when all input is consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Reads the next element.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let start = self.pos;
        let rest = &self.buf[self.pos..];
        let (&t, rest) = rest.split_first().ok_or(DerError::Truncated)?;
        if t & 0x1f == 0x1f {
            return Err(DerError::BadTag);
        }
        let (&l0, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            // 0x80 is indefinite (BER only); more than 4 length bytes is absurd here.
            if n == 0 || n > 4 {
                return Err(DerError::BadLength);
            }
            if rest.len() < n {
                return Err(DerError::Truncated);
            }
            let (lb, r) = rest.split_at(n);
            rest = r;
            if lb[0] == 0 {
                return Err(DerError::BadLength);
            }
            let v = lb.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if v < 0x80 {
                return Err(DerError::BadLength);
            }
            v
        };
        if rest.len() < len {
            return Err(DerError::Truncated);
        }
        let header = self.buf.len() - start - rest.len();
        let end = start + header + len;
        self.pos = end;
        Ok(Tlv { tag: t, content: &rest[..len], raw: &self.buf[start..end] })
    }

    /// Reads an element that must have tag `wanted`.
    pub fn expect(&mut self, wanted: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.read()?;
        if tlv.tag != wanted {
            return Err(DerError::Unexpected { found: tlv.tag, wanted });
        }
        Ok(tlv)
    }

    /// Reads an element with tag `wanted` if it is next.
    pub fn optional(&mut self, wanted: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(wanted) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless all input is consumed.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DerError::Trailing)
        }
    }
}

/// Parses a single element spanning all of `buf`.
pub fn single(buf: &[u8], wanted: u8) -> Result<Tlv<'_>, DerError> {
    let mut r = Reader::new(buf);
    let t = r.expect(wanted)?;
    r.finish()?;
    Ok(t)
}

/// A DER INTEGER as a non-negative u64 (for small integers in extensions).
pub fn small_uint(content: &[u8]) -> Result<u64, DerError> {
    match content {
        [] => Err(DerError::Invalid("integer")),
        [b, ..] if b & 0x80 != 0 => Err(DerError::Invalid("integer")),
        [0, next, ..] if next & 0x80 == 0 => Err(DerError::Invalid("integer")),
        _ => {
            let digits = if content[0] == 0 { &content[1..] } else { content };
            if digits.len() > 8 {
                return Err(DerError::Invalid("integer"));
            }
            Ok(digits.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
        }
    }
}

fn der_bool(content: &[u8]) -> Result<bool, DerError> {
    match content {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err(DerError::Invalid("boolean")),
    }
}

/// Dotted form of OID content octets, for messages.
pub fn oid_to_string(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for (i, b) in oid.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 8 {
                let (first, second) = match acc {
                    0..=39 => (0, acc),
                    40..=79 => (1, acc - 40),
                    _ => (2, acc - 80),
                };
                parts.push(first);
                parts.push(second);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
        if acc > (u64::MAX >> 8) {
            return "<invalid oid>".into();
        }
    }
    parts.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(".")
}

/// OIDs (content octets).
pub mod oid {
    /// ecdsa-with-SHA384
    pub const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// ecdsa-with-SHA256
    pub const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// id-ecPublicKey
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// secp384r1
    pub const SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// id-Ed25519
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    /// rsaEncryption
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-RSASSA-PSS
    pub const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    /// basicConstraints
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// keyUsage
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// commonName
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
}

/// RSASSA-PSS parameters AMD uses: SHA-384, MGF1 with SHA-384, salt 48, trailer 1.
pub const PSS_SHA384_PARAMS: &[u8] = &[
    0x30, 0x39, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09,
    0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30, 0xa3, 0x03, 0x02,
    0x01, 0x01,
];

/// The same parameters with the (default) trailer field omitted, as in newer VCEKs.
pub const PSS_SHA384_PARAMS_NO_TRAILER: &[u8] = &[
    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09,
    0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
];

/// An AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmId<'a> {
    /// OID content octets.
    pub oid: &'a [u8],
    /// Raw parameters element, if any.
    pub params: Option<&'a [u8]>,
}

fn algorithm_id<'a>(t: Tlv<'a>) -> Result<AlgorithmId<'a>, DerError> {
    let mut r = Reader::new(t.content);
    let oid = r.expect(tag::OID)?.content;
    let params = if r.is_empty() { None } else { Some(r.read()?.raw) };
    r.finish()?;
    Ok(AlgorithmId { oid, params })
}

/// One certificate extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// OID content octets.
    pub oid: &'a [u8],
    /// Critical flag.
    pub critical: bool,
    /// Content of the extnValue OCTET STRING.
    pub value: &'a [u8],
}

/// Basic constraints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasicConstraints {
    /// cA flag.
    pub ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u64>,
}

/// A parsed X.509 v1/v3 certificate borrowing its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// The whole certificate.
    pub raw: &'a [u8],
    /// The TBSCertificate element as received (the signed bytes).
    pub tbs: &'a [u8],
    /// Serial number content octets.
    pub serial: &'a [u8],
    /// Issuer Name element.
    pub issuer: &'a [u8],
    /// Subject Name element.
    pub subject: &'a [u8],
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Public key algorithm.
    pub key_alg: AlgorithmId<'a>,
    /// Public key bits (BIT STRING content without the unused-bits octet).
    pub public_key: &'a [u8],
    /// Extensions, in order.
    pub extensions: Vec<Extension<'a>>,
    /// Signature algorithm.
    pub sig_alg: AlgorithmId<'a>,
    /// Signature bits.
    pub signature: &'a [u8],
}

fn bit_string(t: Tlv<'_>) -> Result<&[u8], DerError> {
    match t.content.split_first() {
        Some((0, rest)) => Ok(rest),
        _ => Err(DerError::Invalid("bit string")),
    }
}

/// The content of a BIT STRING used as a set of flags (KeyUsage): the bytes after the
/// unused-bits octet, checked as X.690 §8.6.2 and webpki require: at most 7 unused
/// bits, none on an empty string, and the unused (padding) bits of the last byte zero.
fn bit_string_flags(content: &[u8]) -> Result<&[u8], DerError> {
    let (&unused, bits) = content.split_first().ok_or(DerError::Invalid("bit string (no unused-bits octet)"))?;
    if unused > 7 {
        return Err(DerError::Invalid("bit string (more than 7 unused bits)"));
    }
    match bits.last() {
        None if unused != 0 => Err(DerError::Invalid("bit string (unused bits in an empty string)")),
        Some(last) if last & ((1u8 << unused) - 1) != 0 => Err(DerError::Invalid("bit string (non-zero padding bits)")),
        _ => Ok(bits),
    }
}

fn digits(s: &[u8]) -> Result<i64, DerError> {
    s.iter().try_fold(0i64, |acc, b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + i64::from(b - b'0'))
        } else {
            Err(DerError::Invalid("time"))
        }
    })
}

fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in `month` (1..=12) of `year`, proleptic Gregorian.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn time(t: Tlv<'_>) -> Result<i64, DerError> {
    let (year, rest) = match (t.tag, t.content.len()) {
        (tag::UTC_TIME, 13) => {
            let yy = digits(&t.content[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t.content[2..])
        }
        (tag::GENERALIZED_TIME, 15) => (digits(&t.content[..4])?, &t.content[4..]),
        _ => return Err(DerError::Invalid("time")),
    };
    if rest[10] != b'Z' {
        return Err(DerError::Invalid("time"));
    }
    let mo = digits(&rest[0..2])?;
    let d = digits(&rest[2..4])?;
    let h = digits(&rest[4..6])?;
    let mi = digits(&rest[6..8])?;
    let s = digits(&rest[8..10])?;
    // As webpki: a real calendar date (no 31 April, no 29 February outside leap years),
    // hours 00..=23, minutes and seconds 00..=59 (X.509 times have no leap second).
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(year, mo) || h > 23 || mi > 59 || s > 59 {
        return Err(DerError::Invalid("time"));
    }
    Ok(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

impl<'a> Certificate<'a> {
    /// Parses one DER certificate spanning all of `der`.
    pub fn parse(der: &'a [u8]) -> Result<Self, DerError> {
        let cert = single(der, tag::SEQUENCE)?;
        let mut r = Reader::new(cert.content);
        let tbs = r.expect(tag::SEQUENCE)?;
        let sig_alg = algorithm_id(r.expect(tag::SEQUENCE)?)?;
        let signature = bit_string(r.expect(tag::BIT_STRING)?)?;
        r.finish()?;

        let mut t = Reader::new(tbs.content);
        let version = match t.optional(0xa0)? {
            Some(v) => small_uint(single(v.content, tag::INTEGER)?.content)?,
            None => 0,
        };
        if version > 2 {
            return Err(DerError::Invalid("version"));
        }
        let serial = t.expect(tag::INTEGER)?.content;
        if serial.is_empty() || serial.len() > 21 {
            return Err(DerError::Invalid("serial"));
        }
        let tbs_sig_alg = algorithm_id(t.expect(tag::SEQUENCE)?)?;
        if tbs_sig_alg != sig_alg {
            return Err(DerError::Invalid("signature algorithm (TBS and outer differ)"));
        }
        let issuer = t.expect(tag::SEQUENCE)?.raw;
        let validity = t.expect(tag::SEQUENCE)?;
        let mut v = Reader::new(validity.content);
        let not_before = time(v.read()?)?;
        let not_after = time(v.read()?)?;
        v.finish()?;
        let subject = t.expect(tag::SEQUENCE)?.raw;
        let spki = t.expect(tag::SEQUENCE)?;
        let mut s = Reader::new(spki.content);
        let key_alg = algorithm_id(s.expect(tag::SEQUENCE)?)?;
        let public_key = bit_string(s.expect(tag::BIT_STRING)?)?;
        s.finish()?;
        t.optional(0x81)?; // issuerUniqueID
        t.optional(0x82)?; // subjectUniqueID
        let mut extensions = Vec::new();
        if let Some(exts) = t.optional(0xa3)? {
            if version != 2 {
                return Err(DerError::Invalid("version (extensions need v3)"));
            }
            let seq = single(exts.content, tag::SEQUENCE)?;
            let mut e = Reader::new(seq.content);
            while !e.is_empty() {
                let ext = e.expect(tag::SEQUENCE)?;
                let mut x = Reader::new(ext.content);
                let oid = x.expect(tag::OID)?.content;
                let critical = match x.optional(tag::BOOLEAN)? {
                    Some(b) => der_bool(b.content)?,
                    None => false,
                };
                let value = x.expect(tag::OCTET_STRING)?.content;
                x.finish()?;
                if extensions.iter().any(|o: &Extension<'_>| o.oid == oid) {
                    return Err(DerError::DuplicateExtension);
                }
                extensions.push(Extension { oid, critical, value });
            }
        }
        t.finish()?;
        let cert = Self {
            raw: cert.raw,
            tbs: tbs.raw,
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            key_alg,
            public_key,
            extensions,
            sig_alg,
            signature,
        };
        // The extensions this crate interprets are decoded now, so a malformed one is
        // refused as malformed before any signature is checked.
        cert.basic_constraints()?;
        cert.key_usage()?;
        Ok(cert)
    }

    /// The extension with this OID.
    pub fn extension(&self, oid: &[u8]) -> Option<&Extension<'a>> {
        self.extensions.iter().find(|e| e.oid == oid)
    }

    /// Basic constraints (absent means "not a CA").
    pub fn basic_constraints(&self) -> Result<BasicConstraints, DerError> {
        let Some(ext) = self.extension(oid::BASIC_CONSTRAINTS) else {
            return Ok(BasicConstraints::default());
        };
        let seq = single(ext.value, tag::SEQUENCE)?;
        let mut r = Reader::new(seq.content);
        let ca = match r.optional(tag::BOOLEAN)? {
            Some(b) => der_bool(b.content)?,
            None => false,
        };
        let path_len = match r.optional(tag::INTEGER)? {
            Some(i) => Some(small_uint(i.content)?),
            None => None,
        };
        r.finish()?;
        Ok(BasicConstraints { ca, path_len })
    }

    /// Key usage bits as a u16 (bit 0 = digitalSignature … bit 8 = decipherOnly),
    /// or `None` when the extension is absent.
    pub fn key_usage(&self) -> Result<Option<u16>, DerError> {
        let Some(ext) = self.extension(oid::KEY_USAGE) else {
            return Ok(None);
        };
        let bs = single(ext.value, tag::BIT_STRING)?;
        let bits = bit_string_flags(bs.content)?;
        if bits.is_empty() || bits.len() > 2 {
            return Err(DerError::Invalid("key usage"));
        }
        let mut v = 0u16;
        for (i, byte) in bits.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    v |= 1 << (i * 8 + bit);
                }
            }
        }
        Ok(Some(v))
    }

    /// The subject's common name, if it has one.
    pub fn subject_cn(&self) -> Option<String> {
        common_name(self.subject)
    }

    /// SHA-256 of the whole DER certificate.
    pub fn sha256(&self) -> [u8; 32] {
        crypto::sha256(&[self.raw])
    }

    /// Whether the public key is an EC P-384 key.
    pub fn is_p384_key(&self) -> bool {
        self.key_alg.oid == oid::EC_PUBLIC_KEY
            && self.key_alg.params.is_some_and(|p| single(p, tag::OID).is_ok_and(|o| o.content == oid::SECP384R1))
    }

    /// Verifies that `self` is signed by `issuer`'s key.
    ///
    /// Accepted: ECDSA P-384 with SHA-384 (or SHA-256) by a P-384 issuer key,
    /// and RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48 by an RSA issuer key.
    pub fn verify_signed_by(&self, issuer: &Certificate<'_>) -> Result<(), SignatureCheck> {
        let alg = if self.sig_alg.oid == oid::ECDSA_SHA384 && self.sig_alg.params.is_none() && issuer.is_p384_key() {
            Alg::EcdsaP384Sha384Der
        } else if self.sig_alg.oid == oid::ECDSA_SHA256 && self.sig_alg.params.is_none() && issuer.is_p384_key() {
            Alg::EcdsaP384Sha256Der
        } else if self.sig_alg.oid == oid::RSASSA_PSS
            && (self.sig_alg.params == Some(PSS_SHA384_PARAMS)
                || self.sig_alg.params == Some(PSS_SHA384_PARAMS_NO_TRAILER))
            && issuer.key_alg.oid == oid::RSA_ENCRYPTION
        {
            Alg::RsaPssSha384
        } else {
            return Err(SignatureCheck::UnsupportedAlgorithm);
        };
        crypto::verify(alg, issuer.public_key, self.tbs, self.signature).map_err(|_| SignatureCheck::Invalid)
    }
}

/// Outcome of a failed certificate signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Algorithm (or algorithm/key combination) not accepted.
    UnsupportedAlgorithm,
    /// The signature does not verify.
    Invalid,
}

/// The first commonName in a Name element.
pub fn common_name(name: &[u8]) -> Option<String> {
    let seq = single(name, tag::SEQUENCE).ok()?;
    let mut rdns = Reader::new(seq.content);
    while !rdns.is_empty() {
        let set = rdns.expect(tag::SET).ok()?;
        let mut atvs = Reader::new(set.content);
        while !atvs.is_empty() {
            let atv = atvs.expect(tag::SEQUENCE).ok()?;
            let mut a = Reader::new(atv.content);
            let o = a.expect(tag::OID).ok()?;
            let v = a.read().ok()?;
            if o.content == oid::COMMON_NAME
                && matches!(v.tag, tag::UTF8_STRING | tag::PRINTABLE_STRING | tag::IA5_STRING)
            {
                return std::str::from_utf8(v.content).ok().map(str::to_owned);
            }
        }
    }
    None
}

/// Decodes every `-----BEGIN CERTIFICATE-----` block of a PEM text into DER.
#[cfg(any(test, feature = "cli"))]
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, &'static str> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or("PEM block without END line")?;
        let body: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        out.push(crate::base64::decode(&body).ok_or("PEM body is not base64")?);
        rest = &after[end + END.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NITRO_ROOT: &[u8] = include_bytes!("../roots/aws_nitro_root_g1.der");
    const ARK_MILAN: &[u8] = include_bytes!("../roots/ark_milan.der");
    const ASK_MILAN: &[u8] = include_bytes!("../roots/ask_milan.der");

    #[test]
    fn parses_nitro_root() {
        let c = Certificate::parse(NITRO_ROOT).unwrap();
        assert_eq!(c.subject_cn().as_deref(), Some("aws.nitro-enclaves"));
        assert_eq!(c.issuer, c.subject);
        assert!(c.is_p384_key());
        let bc = c.basic_constraints().unwrap();
        assert!(bc.ca);
        assert_eq!(c.key_usage().unwrap().map(|k| k & (1 << 5) != 0), Some(true));
        // 2019-10-28 … 2049-10-28
        assert!(c.not_before > 1_572_000_000 && c.not_before < 1_572_400_000);
        c.verify_signed_by(&c).unwrap();
    }

    #[test]
    fn amd_chain_rsa_pss() {
        let ark = Certificate::parse(ARK_MILAN).unwrap();
        let ask = Certificate::parse(ASK_MILAN).unwrap();
        ark.verify_signed_by(&ark).unwrap();
        ask.verify_signed_by(&ark).unwrap();
        assert_eq!(ask.verify_signed_by(&ask), Err(SignatureCheck::Invalid));
        assert_eq!(ark.subject_cn().as_deref(), Some("ARK-Milan"));
        assert_eq!(ask.basic_constraints().unwrap(), BasicConstraints { ca: true, path_len: Some(0) });
    }

    #[test]
    fn strict_lengths() {
        // non-minimal long form
        assert_eq!(Reader::new(&[0x04, 0x81, 0x01, 0x00]).read(), Err(DerError::BadLength));
        // indefinite
        assert_eq!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).read(), Err(DerError::BadLength));
        // leading zero length byte
        assert_eq!(Reader::new(&[0x04, 0x82, 0x00, 0x81]).read(), Err(DerError::BadLength));
        assert_eq!(Reader::new(&[0x04, 0x02, 0x00]).read(), Err(DerError::Truncated));
        assert_eq!(Reader::new(&[0x1f, 0x01, 0x00]).read(), Err(DerError::BadTag));
        assert_eq!(single(&[0x05, 0x00, 0x00], 0x05), Err(DerError::Trailing)); // NULL, then a stray byte
    }

    #[test]
    fn integers_and_times() {
        assert_eq!(small_uint(&[0x73]), Ok(0x73));
        assert_eq!(small_uint(&[0x00, 0xd9]), Ok(217));
        assert!(small_uint(&[0x00, 0x10]).is_err());
        assert!(small_uint(&[0x80]).is_err());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let t = |s: &[u8], tg| time(Tlv { tag: tg, content: s, raw: s });
        assert_eq!(t(b"221013085759Z", tag::UTC_TIME), Ok(1_665_651_479));
        assert_eq!(t(b"20491028000000Z", tag::GENERALIZED_TIME).map(|v| v > 2_500_000_000), Ok(true));
        assert!(t(b"221313085759Z", tag::UTC_TIME).is_err());
        assert!(t(b"2210130857590", tag::UTC_TIME).is_err());
    }

    /// webpki's calendar check: a date that does not exist is refused, whatever its
    /// format. Fails without it: with only `1..=31` for the day (the check before),
    /// every 29/30/31 February, 31 April/June/September/November is accepted.
    #[test]
    fn impossible_dates_are_refused() {
        let t = |s: &str| {
            let tg = if s.len() == 13 { tag::UTC_TIME } else { tag::GENERALIZED_TIME };
            time(Tlv { tag: tg, content: s.as_bytes(), raw: s.as_bytes() })
        };
        // the last day of every month, 29 February in leap years (2000 is one, 2100 is not)
        for ok in [
            "230131000000Z",
            "230228000000Z",
            "240229235959Z",
            "000229000000Z",
            "20000229000000Z",
            "230331000000Z",
            "230430000000Z",
            "230531000000Z",
            "230630000000Z",
            "230731000000Z",
            "230831000000Z",
            "230930000000Z",
            "231031000000Z",
            "231130000000Z",
            "231231235959Z",
            "20991231235959Z",
        ] {
            assert!(t(ok).is_ok(), "{ok} refused");
        }
        assert_eq!(t("240229235959Z"), Ok(1_709_251_199));
        for bad in [
            "230229000000Z",   // not a leap year
            "21000229000000Z", // divisible by 100, not by 400
            "19000229000000Z",
            "230230000000Z",
            "230231000000Z", // 31 February
            "240230000000Z",
            "230431000000Z",
            "230631000000Z",
            "230931000000Z",
            "231131000000Z",
            "230132000000Z",
            "230100000000Z", // day 0
            "231301000000Z", // month 13
            "230001000000Z", // month 0
            "230101240000Z", // hour 24
            "230101236000Z", // minute 60
            "230101235960Z", // second 60: X.509 times have no leap second
            "20230231000000Z",
            "20231301000000Z",
            "20230101240000Z",
            "20230101235960Z",
        ] {
            assert_eq!(t(bad), Err(DerError::Invalid("time")), "{bad} accepted");
        }
    }

    /// webpki's BIT STRING checks on KeyUsage. Each refusal names its rule, so removing
    /// any one check makes this test fail (the padding-bit check was missing before).
    #[test]
    fn key_usage_bit_strings() {
        let ku = |value: &[u8]| {
            let mut c = Certificate::parse(NITRO_ROOT).unwrap();
            c.extensions = vec![Extension { oid: oid::KEY_USAGE, critical: true, value }];
            c.key_usage().map(|k| k.unwrap())
        };
        // digitalSignature | keyCertSign | cRLSign, 1 unused bit (the Nitro root's own)
        assert_eq!(ku(&[0x03, 0x02, 0x01, 0x86]), Ok(1 | 1 << 5 | 1 << 6));
        assert_eq!(ku(&[0x03, 0x02, 0x07, 0x80]), Ok(1));
        assert_eq!(ku(&[0x03, 0x02, 0x00, 0xff]), Ok(0xff));
        assert_eq!(ku(&[0x03, 0x03, 0x07, 0x80, 0x80]), Ok(1 | 1 << 8));
        let padding = Err(DerError::Invalid("bit string (non-zero padding bits)"));
        assert_eq!(ku(&[0x03, 0x02, 0x01, 0x87]), padding);
        assert_eq!(ku(&[0x03, 0x02, 0x07, 0x81]), padding);
        assert_eq!(ku(&[0x03, 0x02, 0x03, 0x84]), padding);
        assert_eq!(ku(&[0x03, 0x03, 0x07, 0x80, 0xc0]), padding);
        for unused in [8u8, 9, 0x7f, 0xff] {
            assert_eq!(ku(&[0x03, 0x02, unused, 0x80]), Err(DerError::Invalid("bit string (more than 7 unused bits)")));
        }
        for unused in 1..=7u8 {
            assert_eq!(
                ku(&[0x03, 0x01, unused]),
                Err(DerError::Invalid("bit string (unused bits in an empty string)"))
            );
        }
        // an empty KeyUsage asserts nothing: refused as before
        assert_eq!(ku(&[0x03, 0x01, 0x00]), Err(DerError::Invalid("key usage")));
        assert_eq!(ku(&[0x03, 0x00]), Err(DerError::Invalid("bit string (no unused-bits octet)")));
        assert_eq!(ku(&[0x03, 0x04, 0x00, 0x80, 0x00, 0x00]), Err(DerError::Invalid("key usage")));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for n in 0..NITRO_ROOT.len() {
            assert!(Certificate::parse(&NITRO_ROOT[..n]).is_err());
        }
    }

    #[test]
    fn oid_strings() {
        assert_eq!(oid_to_string(oid::ECDSA_SHA384), "1.2.840.10045.4.3.3");
        assert_eq!(oid_to_string(oid::BASIC_CONSTRAINTS), "2.5.29.19");
    }
}
