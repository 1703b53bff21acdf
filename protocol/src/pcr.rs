//! Measurement registers as the enclave uses them: Nitro-style SHA-384 extension, and the
//! PCR the policy digest is extended into. The enclave's platforms, the owner's client and
//! the log verifier all compute PCR16 here.

use crate::Digest;

/// PCR index the policy digest is extended into (the first application PCR on Nitro).
pub const POLICY_PCR: u16 = 16;

/// Length of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;

/// `PCR = SHA-384(PCR ‖ data)`, as the NSM extends.
pub fn extend(pcr: &[u8], data: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA384);
    ctx.update(pcr);
    ctx.update(data);
    ctx.finish().as_ref().to_vec()
}

/// PCR16 after one extension with the policy digest from zero.
pub fn policy_pcr(policy: &Digest) -> Vec<u8> {
    extend(&[0u8; PCR_LEN], policy.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_pcr_is_one_extension_from_zero() {
        // SHA-384(0⁴⁸ ‖ SHA-256("policy")), computed independently with Python's hashlib.
        assert_eq!(
            hex::encode(policy_pcr(&Digest::of(b"policy"))),
            "717003b9944373cc10add6c62756270f57e4f4ff6d755da873e09d86711a1b9126b14614652b19149313ff3122c8872a"
        );
        assert_eq!(extend(&[0; PCR_LEN], Digest::of(b"policy").as_bytes()), policy_pcr(&Digest::of(b"policy")));
    }
}
