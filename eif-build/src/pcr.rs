//! PCR computation.
//!
//! Every EIF measurement is a TPM-style extend of an all-zero register with one digest:
//! `PCRn = H(zeros(len(H)) || H(measured bytes))`. See `FORMAT.md` §4 of the reference
//! vectors for which section payloads go into which register.

use serde::Serialize;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::fmt;
use std::str::FromStr;

/// Hash algorithm used for the PCRs. Nitro uses SHA-384; the others exist for tooling
/// compatibility (`eif_build --algo`). The EIF bytes do not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    Sha256,
    #[default]
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The string `nitro-cli`/`eif_build` print in `"HashAlgorithm"` (Rust debug text of
    /// the hasher type; not a stable identifier, kept so scripts keep working).
    pub fn nitro_label(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "Sha256 { ... }",
            HashAlgorithm::Sha384 => "Sha384 { ... }",
            HashAlgorithm::Sha512 => "Sha512 { ... }",
        }
    }

    /// The algorithm whose digest has `len` bytes.
    pub fn from_output_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(HashAlgorithm::Sha256),
            48 => Some(HashAlgorithm::Sha384),
            64 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        })
    }
}

/// Error for an unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash algorithm {0:?} (expected sha256, sha384 or sha512)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for HashAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha384" => Ok(HashAlgorithm::Sha384),
            "sha512" => Ok(HashAlgorithm::Sha512),
            _ => Err(UnknownAlgorithm(s.to_string())),
        }
    }
}

/// An incremental hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Accumulates the bytes of one register, then extends a zero register with their digest.
#[derive(Clone)]
pub struct PcrAccumulator {
    alg: HashAlgorithm,
    inner: Hasher,
}

impl PcrAccumulator {
    pub fn new(alg: HashAlgorithm) -> Self {
        PcrAccumulator { alg, inner: Hasher::new(alg) }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// `H(zeros || H(data))`.
    pub fn finalize(self) -> Vec<u8> {
        let digest = self.inner.finalize();
        let mut outer = Hasher::new(self.alg);
        outer.update(&vec![0u8; self.alg.output_len()]);
        outer.update(&digest);
        outer.finalize()
    }
}

/// `H(zeros || H(data))` in one call.
pub fn extend_from_zero(alg: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut acc = PcrAccumulator::new(alg);
    acc.update(data);
    acc.finalize()
}

/// Measurements of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    pub algorithm: HashAlgorithm,
    /// kernel ‖ cmdline ‖ all ramdisks
    pub pcr0: Vec<u8>,
    /// kernel ‖ cmdline ‖ first ramdisk
    pub pcr1: Vec<u8>,
    /// ramdisks after the first
    pub pcr2: Vec<u8>,
    /// DER of the signing certificate (signed images only)
    pub pcr8: Option<Vec<u8>>,
}

/// JSON shape printed by `eif_build` (inner object) and `nitro-cli build-enclave` (wrapped
/// in `{"Measurements": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasurementsJson {
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: String,
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    #[serde(rename = "PCR2")]
    pub pcr2: String,
    #[serde(rename = "PCR8", skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
}

impl Measurements {
    /// The `eif_build`/`nitro-cli` JSON form (lowercase hex).
    pub fn to_json(&self) -> MeasurementsJson {
        MeasurementsJson {
            hash_algorithm: self.algorithm.nitro_label().to_string(),
            pcr0: hex::encode(&self.pcr0),
            pcr1: hex::encode(&self.pcr1),
            pcr2: hex::encode(&self.pcr2),
            pcr8: self.pcr8.as_ref().map(hex::encode),
        }
    }
}

/// Measures PCR0/1/2 over section payloads as they are appended, in file order.
#[derive(Clone)]
pub struct ImageMeasurer {
    alg: HashAlgorithm,
    pcr0: PcrAccumulator,
    pcr1: PcrAccumulator,
    pcr2: PcrAccumulator,
    ramdisks_seen: usize,
}

impl ImageMeasurer {
    pub fn new(alg: HashAlgorithm) -> Self {
        ImageMeasurer {
            alg,
            pcr0: PcrAccumulator::new(alg),
            pcr1: PcrAccumulator::new(alg),
            pcr2: PcrAccumulator::new(alg),
            ramdisks_seen: 0,
        }
    }

    /// Kernel or cmdline payload (measured into PCR0 and PCR1).
    pub fn boot_bytes(&mut self, data: &[u8]) {
        self.pcr0.update(data);
        self.pcr1.update(data);
    }

    /// One ramdisk payload, in order.
    pub fn ramdisk(&mut self, data: &[u8]) {
        self.pcr0.update(data);
        if self.ramdisks_seen == 0 {
            self.pcr1.update(data);
        } else {
            self.pcr2.update(data);
        }
        self.ramdisks_seen += 1;
    }

    pub fn finish(self, signing_cert_der: Option<&[u8]>) -> Measurements {
        Measurements {
            algorithm: self.alg,
            pcr0: self.pcr0.finalize(),
            pcr1: self.pcr1.finalize(),
            pcr2: self.pcr2.finalize(),
            pcr8: signing_cert_der.map(|der| extend_from_zero(self.alg, der)),
        }
    }
}

/// Computes the measurements directly from build inputs (no EIF needed).
pub fn measure_inputs(
    alg: HashAlgorithm,
    kernel: &[u8],
    cmdline: &[u8],
    ramdisks: &[&[u8]],
    signing_cert_der: Option<&[u8]>,
) -> Measurements {
    let mut m = ImageMeasurer::new(alg);
    m.boot_bytes(kernel);
    m.boot_bytes(cmdline);
    for r in ramdisks {
        m.ramdisk(r);
    }
    m.finish(signing_cert_der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr2_of_single_ramdisk_is_extend_of_empty_digest() {
        let m = measure_inputs(HashAlgorithm::Sha384, b"k", b"c", &[b"r"], None);
        assert_eq!(
            hex::encode(&m.pcr2),
            "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
        );
        assert_eq!(m.pcr0, m.pcr1);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
            assert_eq!(a.to_string().parse::<HashAlgorithm>().unwrap(), a);
            assert_eq!(HashAlgorithm::from_output_len(a.output_len()), Some(a));
        }
        assert!("md5".parse::<HashAlgorithm>().is_err());
    }
}
