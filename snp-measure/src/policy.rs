//! The SEV-SNP guest policy (SNP ABI, `LAUNCH_START`'s POLICY): what QEMU passes as
//! `sev-snp-guest,policy=`, what the AMD secure processor enforces for the guest's life and
//! copies into every attestation report's POLICY field.
//!
//! The policy is not part of the launch MEASUREMENT; the owner's verifier checks the
//! report's POLICY bits instead (`attestation_verifier::SnpReference`'s `policy` rules).
//! This type refuses at launch what that check would refuse later (DEBUG, MIGRATE_MA), so
//! an operator learns it before booting a guest no owner will release a key to.

use crate::Error;

/// A checked guest policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPolicy(u64);

impl GuestPolicy {
    /// Bit 16: SMT may be enabled on the host.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_ONE: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated with the guest.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: the host may debug (decrypt) the guest's memory.
    pub const DEBUG: u64 = 1 << 19;
    /// Bits 26–63 are reserved and must be zero (bits 20–25 are optional restrictions:
    /// single socket, CXL, AES-256-XTS, RAPL disable, ciphertext hiding, page swap).
    const RESERVED_ZERO: u64 = !((1 << 26) - 1);

    /// SMT allowed, ABI 0.0 minimum, nothing else: QEMU's default and the usual choice.
    pub const DEFAULT: GuestPolicy = GuestPolicy(Self::SMT | Self::RESERVED_ONE);

    /// Checks a policy value. DEBUG and MIGRATE_MA are refused because the owner's
    /// verifier refuses a report that carries them (unless the owner chose otherwise, in
    /// which case it is not this launcher's business to make that easy).
    pub fn new(bits: u64) -> Result<GuestPolicy, Error> {
        if bits & Self::RESERVED_ONE == 0 {
            return Err(Error::PolicyReservedBitClear { policy: bits });
        }
        if bits & Self::RESERVED_ZERO != 0 {
            return Err(Error::PolicyReservedBitsSet { policy: bits });
        }
        if bits & Self::DEBUG != 0 {
            return Err(Error::PolicyDebug { policy: bits });
        }
        if bits & Self::MIGRATE_MA != 0 {
            return Err(Error::PolicyMigrationAgent { policy: bits });
        }
        Ok(GuestPolicy(bits))
    }

    /// Parses `0x30000` (hex with `0x`) or a decimal number, then checks it.
    pub fn parse(text: &str) -> Result<GuestPolicy, Error> {
        let t = text.trim();
        let bits = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        }
        .map_err(|_| Error::PolicyNotANumber { text: text.to_string() })?;
        GuestPolicy::new(bits)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether the report's SMT bit will be set (the owner's reference must allow it).
    pub fn smt_allowed(self) -> bool {
        self.0 & Self::SMT != 0
    }

    /// The value as QEMU's `policy=` property takes it.
    pub fn to_qemu(self) -> String {
        format!("{:#x}", self.0)
    }
}

impl Default for GuestPolicy {
    fn default() -> Self {
        GuestPolicy::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_smt_plus_the_reserved_one() {
        assert_eq!(GuestPolicy::DEFAULT.bits(), 0x30000);
        assert_eq!(GuestPolicy::DEFAULT.to_qemu(), "0x30000");
        assert_eq!(GuestPolicy::parse("0x30000"), Ok(GuestPolicy::DEFAULT));
        assert_eq!(GuestPolicy::parse("196608"), Ok(GuestPolicy::DEFAULT));
        assert!(GuestPolicy::DEFAULT.smt_allowed());
        assert!(!GuestPolicy::parse("0x20000").unwrap().smt_allowed());
        // Optional restrictions (single socket) are accepted.
        assert!(GuestPolicy::parse("0x130000").is_ok());
    }

    #[test]
    fn refusals_name_the_bit() {
        assert_eq!(GuestPolicy::parse("0x10000"), Err(Error::PolicyReservedBitClear { policy: 0x10000 }));
        assert_eq!(GuestPolicy::parse("0xb0000"), Err(Error::PolicyDebug { policy: 0xb0000 }));
        assert_eq!(GuestPolicy::parse("0x70000"), Err(Error::PolicyMigrationAgent { policy: 0x70000 }));
        assert_eq!(GuestPolicy::parse("0x4000030000"), Err(Error::PolicyReservedBitsSet { policy: 0x40_0003_0000 }));
        assert!(matches!(GuestPolicy::parse("0xzz"), Err(Error::PolicyNotANumber { .. })));
        assert!(matches!(GuestPolicy::parse(""), Err(Error::PolicyNotANumber { .. })));
    }
}
