//! The CLI's commands as library calls: each function is one command's whole work (its
//! files, its connections, its checks) with typed inputs and a report struct out. The
//! `cleanroom` binary parses arguments, makes one call and prints the report; the e2e
//! tests make the same calls.

pub mod audit;
pub mod compare;
pub mod owner;
pub mod provider;

use owner_prep::hsm_keys::Pkcs11Location;

/// Where an owner key lives: in the key file, or in a PKCS#11 token.
#[derive(Debug, Clone)]
pub enum KeyHome {
    File,
    Pkcs11(Pkcs11Location),
}

/// What attestation established about the enclave on a connection.
#[derive(Debug, Clone)]
pub struct Attested {
    pub platform: protocol::platform::Platform,
    pub simulated: bool,
    /// Accepted as unsigned emulated-NSM evidence (`--allow-emulated-nsm`).
    pub emulated_nsm: bool,
    pub checks_passed: Vec<String>,
}

impl Attested {
    fn of(s: &crate::client::AttestedSession) -> Attested {
        Attested {
            platform: s.platform,
            simulated: s.simulated,
            emulated_nsm: s.verdict.emulated_nsm,
            checks_passed: s.verdict.checks_passed.iter().map(|c| c.to_string()).collect(),
        }
    }
}
