//! Certificate path validation shared by the Nitro and SEV-SNP verifiers.

use crate::der::{self, Certificate, SignatureCheck};
use crate::{Error, UnixTime};

const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
const KU_KEY_CERT_SIGN: u16 = 1 << 5;

/// Verifies root → … → leaf (the caller has already pinned the root): names, CA flags, key usage, path
/// lengths, critical extensions, signatures and validity at `at`.
pub fn verify_chain(
    chain: &[Certificate<'_>],
    roles: &[String],
    at: UnixTime,
) -> Result<(), Error> {
    let n = chain.len();
    let at_s = at.as_secs();
    for (i, cert) in chain.iter().enumerate() {
        let r = &roles[i];
        for ext in &cert.extensions {
            if ext.critical
                && ext.oid != der::oid::BASIC_CONSTRAINTS
                && ext.oid != der::oid::KEY_USAGE
            {
                return Err(Error::UnknownCriticalExtension {
                    role: r.clone(),
                    oid: der::oid_to_string(ext.oid),
                });
            }
        }
        if i > 0 {
            let parent = &chain[i - 1];
            if cert.issuer != parent.subject {
                return Err(Error::ChainNameMismatch { role: r.clone() });
            }
            cert.verify_signed_by(parent).map_err(|e| match e {
                SignatureCheck::UnsupportedAlgorithm => Error::CertificateAlgorithm { role: r.clone() },
                SignatureCheck::Invalid => Error::ChainSignatureInvalid { role: r.clone() },
            })?;
        }
        let malformed = |source| Error::CertificateMalformed {
            role: r.clone(),
            source,
        };
        let bc = cert.basic_constraints().map_err(malformed)?;
        let ku = cert.key_usage().map_err(malformed)?;
        if i + 1 < n {
            // an issuer
            if !bc.ca || ku.is_some_and(|k| k & KU_KEY_CERT_SIGN == 0) {
                return Err(Error::NotACa { role: r.clone() });
            }
            let below = (n - 2 - i) as u64; // CA certificates between this one and the leaf
            if bc.path_len.is_some_and(|p| p < below) {
                return Err(Error::PathLenExceeded { role: r.clone() });
            }
        } else if ku.is_some_and(|k| k & KU_DIGITAL_SIGNATURE == 0) {
            return Err(Error::KeyUsage { role: r.clone() });
        }
    }
    // Validity last-to-first so the binding (shortest-lived) certificate is named.
    for (i, cert) in chain.iter().enumerate().rev() {
        let r = &roles[i];
        // at_s fits i64 for any realistic time; saturate otherwise (→ expired).
        let t = i64::try_from(at_s).unwrap_or(i64::MAX);
        if t < cert.not_before {
            return Err(Error::CertificateNotYetValid {
                role: r.clone(),
                not_before: cert.not_before,
                at: at_s,
            });
        }
        if t > cert.not_after {
            return Err(Error::CertificateExpired {
                role: r.clone(),
                not_after: cert.not_after,
                at: at_s,
            });
        }
    }
    Ok(())
}

