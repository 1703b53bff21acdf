//! Randomness. Every sampler takes `R: RngCore + CryptoRng + ?Sized`; inside the enclave the
//! generator is ChaCha20 seeded from the platform's randomness (NSM / SNP / getrandom), in
//! tests from a fixed seed.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use rand_core::{CryptoRng, CryptoRngCore, RngCore};

/// The CSPRNG used by the enclave.
pub type DpRng = ChaCha20Rng;

/// A ChaCha20 generator from a 32-byte seed (e.g. 32 bytes of platform randomness).
pub fn seeded_rng(seed: [u8; 32]) -> DpRng {
    ChaCha20Rng::from_seed(seed)
}

/// A ChaCha20 generator from a small integer seed. For tests and reproducible examples only:
/// 64 bits of seed is not enough entropy for production.
pub fn seeded_rng_from_u64(seed: u64) -> DpRng {
    ChaCha20Rng::seed_from_u64(seed)
}
