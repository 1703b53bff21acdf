//! Which kind of enclave produced evidence, a result or a log record. One enum for the
//! wire, the log and every verifier's dispatch; its text is the wire value.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Platform {
    /// AWS Nitro Enclaves: an NSM attestation document.
    Nitro,
    /// AMD SEV-SNP: an attestation report with its certificates.
    Snp,
    /// Development only: evidence signed by a published key, not hardware-backed.
    Simulated,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Nitro, Platform::Snp, Platform::Simulated];

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

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Platform, String> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown platform {s:?} (nitro, snp, simulated)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_value_is_the_name_and_nothing_else_decodes() {
        for p in Platform::ALL {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("{:?}", p.as_str()));
            assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
            let back: Platform = serde_json::from_str(&format!("{:?}", p.as_str())).unwrap();
            assert_eq!(back, p);
        }
        for bad in ["Nitro", "sev", "", "simulated "] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Platform>(&format!("{bad:?}")).is_err(), "{bad:?}");
        }
    }
}
