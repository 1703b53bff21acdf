//! Certificate path validation shared by the Nitro and SEV-SNP verifiers.

use crate::der::{self, Certificate, SignatureCheck};
use crate::{Error, UnixTime};

const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
const KU_KEY_CERT_SIGN: u16 = 1 << 5;

/// Verifies root → … → leaf (the caller has already pinned the root): names, CA flags, key usage, path
/// lengths, critical extensions, signatures and validity at `at`.
pub fn verify_chain(chain: &[Certificate<'_>], roles: &[String], at: UnixTime) -> Result<(), Error> {
    verify_chain_cached(chain, roles, at, None)
}

/// A bounded cache of certificate signatures already verified: the fact
/// "these child bytes are signed by this parent's key" depends only on the two
/// byte strings, so it may be remembered across documents (Nitro instances reuse
/// their three CA certificates for hours). Validity, names and constraints are
/// still checked every time; the evidence signature is never cached.
#[derive(Debug, Default)]
pub struct SignatureCache {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// Entries kept before the cache is emptied and refilled.
pub const SIGNATURE_CACHE_CAPACITY: usize = 4096;

impl SignatureCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(parent: &Certificate<'_>, child: &Certificate<'_>) -> [u8; 32] {
        crate::crypto::sha256(&[&(parent.raw.len() as u64).to_be_bytes(), parent.raw, child.raw])
    }

    fn contains(&self, k: &[u8; 32]) -> bool {
        self.seen.lock().map(|s| s.contains(k)).unwrap_or(false)
    }

    fn insert(&self, k: [u8; 32]) {
        if let Ok(mut s) = self.seen.lock() {
            if s.len() >= SIGNATURE_CACHE_CAPACITY {
                s.clear();
            }
            s.insert(k);
        }
    }

    /// Number of remembered signatures.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One link's signature check, with its cache key when there is a cache.
#[derive(Clone, Copy)]
struct LinkCheck {
    result: Result<(), SignatureCheck>,
    key: Option<[u8; 32]>,
}

/// Each link's signature check (entry `i`: certificate `i` signed by certificate `i - 1`;
/// `None` for the root and for links the cache holds), computed before the walk so that on
/// two or more cores the links are verified in parallel: four P-384 verifications are most
/// of a cold Nitro check. Every link is checked whatever the others give, and the walk
/// reports the first failure in chain order, so the verdict and the error are those of a
/// sequential check.
fn link_signatures(chain: &[Certificate<'_>], cache: Option<&SignatureCache>) -> Vec<Option<LinkCheck>> {
    // Each link's cache key is hashed once: looked up here, inserted by the walk.
    let key = |i: usize| cache.map(|_| SignatureCache::key(&chain[i - 1], &chain[i]));
    let pending: Vec<(usize, Option<[u8; 32]>)> = (1..chain.len())
        .map(|i| (i, key(i)))
        .filter(|(_, k)| !matches!((cache, k), (Some(c), Some(k)) if c.contains(k)))
        .collect();
    let check = |&(i, key): &(usize, Option<[u8; 32]>)| {
        (i, LinkCheck { result: chain[i].verify_signed_by(&chain[i - 1]), key })
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<Option<LinkCheck>> = vec![None; chain.len()];
    if pending.len() < 2 || cores < 2 {
        for (i, c) in pending.iter().map(check) {
            results[i] = Some(c);
        }
        return results;
    }
    // Two halves: this thread takes the first, one scoped thread the second, with this
    // thread's crypto backend.
    let (mine, theirs) = pending.split_at(pending.len() / 2);
    let backend = crate::crypto::current();
    let (here, there) = std::thread::scope(|s| {
        let other = s.spawn(|| crate::crypto::with_backend(backend, || theirs.iter().map(check).collect::<Vec<_>>()));
        let here: Vec<_> = mine.iter().map(check).collect();
        // A panic in the other thread (none is possible in `verify_signed_by`) is re-raised here.
        (here, other.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    for (i, r) in here.into_iter().chain(there) {
        results[i] = Some(r);
    }
    results
}

/// [`verify_chain`] that consults and fills `cache` for the certificate signatures.
pub fn verify_chain_cached(
    chain: &[Certificate<'_>],
    roles: &[String],
    at: UnixTime,
    cache: Option<&SignatureCache>,
) -> Result<(), Error> {
    let n = chain.len();
    let at_s = at.as_secs();
    let mut signatures = link_signatures(chain, cache).into_iter();
    for (i, cert) in chain.iter().enumerate() {
        let signature = signatures.next().flatten();
        let r = &roles[i];
        for ext in &cert.extensions {
            if ext.critical && ext.oid != der::oid::BASIC_CONSTRAINTS && ext.oid != der::oid::KEY_USAGE {
                return Err(Error::UnknownCriticalExtension { role: r.clone(), oid: der::oid_to_string(ext.oid) });
            }
        }
        if i > 0 {
            let parent = &chain[i - 1];
            if cert.issuer != parent.subject {
                return Err(Error::ChainNameMismatch { role: r.clone() });
            }
            // `None`: the cache already held this link.
            if let Some(LinkCheck { result, key }) = signature {
                result.map_err(|e| match e {
                    SignatureCheck::UnsupportedAlgorithm => Error::CertificateAlgorithm { role: r.clone() },
                    SignatureCheck::Invalid => Error::ChainSignatureInvalid { role: r.clone() },
                })?;
                if let (Some(c), Some(k)) = (cache, key) {
                    c.insert(k);
                }
            }
        }
        let malformed = |source| Error::CertificateMalformed { role: r.clone(), source };
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
            return Err(Error::CertificateNotYetValid { role: r.clone(), not_before: cert.not_before, at: at_s });
        }
        if t > cert.not_after {
            return Err(Error::CertificateExpired { role: r.clone(), not_after: cert.not_after, at: at_s });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Chain rules on certificates built by [`crate::testcert`] (a tiny DER writer plus
    //! ring's ECDSA P-384 signing), so every constraint can be violated on purpose.

    use super::*;
    use crate::der::oid;
    use crate::testcert::{cert, Key, Spec};

    const CA: Option<(bool, Option<u8>)> = Some((true, None));
    const KU_CA: Option<u8> = Some(0x06); // keyCertSign | cRLSign
    const KU_LEAF: Option<u8> = Some(0x80); // digitalSignature

    fn check(ders: &[Vec<u8>]) -> Result<(), Error> {
        let certs: Vec<Certificate<'_>> = ders.iter().map(|d| Certificate::parse(d).unwrap()).collect();
        let n = certs.len();
        let roles: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        verify_chain(&certs, &roles, UnixTime::from_secs(1_700_000_000))
    }

    fn spec<'a>(subject: &'a str, issuer: &'a str) -> Spec<'a> {
        Spec {
            subject,
            issuer,
            ca: CA,
            key_usage: KU_CA,
            key_usage_bits: None,
            extra_critical: false,
            extensions: &[],
            validity: ("200101000000Z", "400101000000Z"),
        }
    }

    #[test]
    fn constraints() {
        let (k0, k1, k2) = (Key::new(), Key::new(), Key::new());
        let root = cert(&spec("root", "root"), &k0, &k0);
        let int = cert(&spec("int", "root"), &k1, &k0);
        let leaf_spec = Spec { ca: None, key_usage: KU_LEAF, ..spec("leaf", "int") };
        let leaf = cert(&leaf_spec, &k2, &k1);
        assert_eq!(check(&[root.clone(), int.clone(), leaf.clone()]), Ok(()));

        // intermediate without CA flag
        let not_ca = cert(&Spec { ca: Some((false, None)), ..spec("int", "root") }, &k1, &k0);
        assert_eq!(check(&[root.clone(), not_ca, leaf.clone()]), Err(Error::NotACa { role: "c1".into() }));
        // intermediate without keyCertSign
        let no_sign = cert(&Spec { key_usage: KU_LEAF, ..spec("int", "root") }, &k1, &k0);
        assert_eq!(check(&[root.clone(), no_sign, leaf.clone()]), Err(Error::NotACa { role: "c1".into() }));
        // root with pathLen 0 above an intermediate
        let root_pl0 = cert(&Spec { ca: Some((true, Some(0))), ..spec("root", "root") }, &k0, &k0);
        assert_eq!(check(&[root_pl0, int.clone(), leaf.clone()]), Err(Error::PathLenExceeded { role: "c0".into() }));
        // leaf whose key usage forbids signatures
        let leaf_ku = cert(&Spec { ca: None, key_usage: Some(0x04), ..spec("leaf", "int") }, &k2, &k1);
        assert_eq!(check(&[root.clone(), int.clone(), leaf_ku]), Err(Error::KeyUsage { role: "c2".into() }));
        // unknown critical extension
        let crit = cert(&Spec { ca: None, key_usage: KU_LEAF, extra_critical: true, ..spec("leaf", "int") }, &k2, &k1);
        assert!(matches!(
            check(&[root.clone(), int.clone(), crit]),
            Err(Error::UnknownCriticalExtension { role, oid }) if role == "c2" && oid == "1.2.3.4"
        ));
        // signed by the wrong key
        let forged = cert(&leaf_spec, &k2, &k0);
        assert_eq!(
            check(&[root.clone(), int.clone(), forged]),
            Err(Error::ChainSignatureInvalid { role: "c2".into() })
        );
        // name chaining
        let stranger = cert(&Spec { ca: None, key_usage: KU_LEAF, ..spec("leaf", "other") }, &k2, &k1);
        assert_eq!(check(&[root.clone(), int.clone(), stranger]), Err(Error::ChainNameMismatch { role: "c2".into() }));
        // validity (certificates valid 2020..2040)
        let certs: Vec<Certificate<'_>> = [&root, &int, &leaf].iter().map(|d| Certificate::parse(d).unwrap()).collect();
        let roles: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        assert!(matches!(
            verify_chain(&certs, &roles, UnixTime::from_secs(1_500_000_000)),
            Err(Error::CertificateNotYetValid { role, .. }) if role == "c2"
        ));
        assert!(matches!(
            verify_chain(&certs, &roles, UnixTime::from_secs(2_300_000_000)),
            Err(Error::CertificateExpired { role, .. }) if role == "c2"
        ));
    }

    /// The links are checked in parallel, yet the first bad link in chain order is the one
    /// named, whichever thread checked it; and a cached link is not checked again.
    #[test]
    fn the_first_bad_link_is_named_whatever_the_threads_and_the_cache() {
        let keys: Vec<Key> = (0..5).map(|_| Key::new()).collect();
        let names = ["c0", "c1", "c2", "c3", "c4"];
        let link = |i: usize, signer: &Key| {
            let s = if i == 4 {
                Spec { ca: None, key_usage: KU_LEAF, ..spec(names[i], names[i - 1]) }
            } else {
                spec(names[i], names[i.saturating_sub(1)])
            };
            cert(&s, &keys[i], signer)
        };
        let good: Vec<Vec<u8>> = (0..5).map(|i| link(i, &keys[i.saturating_sub(1)])).collect();
        assert_eq!(check(&good), Ok(()));
        let stranger = Key::new();
        for bad in [vec![1, 3], vec![2, 4], vec![3], vec![1, 2, 3, 4]] {
            let mut chain = good.clone();
            for &i in &bad {
                chain[i] = link(i, &stranger);
            }
            let first = format!("c{}", bad[0]);
            assert_eq!(check(&chain), Err(Error::ChainSignatureInvalid { role: first }), "bad links {bad:?}");
        }
        // A cache that holds the good chain's links does not vouch for other bytes.
        let cache = SignatureCache::new();
        let roles: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let at = UnixTime::from_secs(1_700_000_000);
        let good_certs: Vec<Certificate<'_>> = good.iter().map(|d| Certificate::parse(d).unwrap()).collect();
        verify_chain_cached(&good_certs, &roles, at, Some(&cache)).unwrap();
        assert_eq!(cache.len(), 4);
        let mut chain = good.clone();
        chain[2] = link(2, &stranger);
        let certs: Vec<Certificate<'_>> = chain.iter().map(|d| Certificate::parse(d).unwrap()).collect();
        assert_eq!(
            verify_chain_cached(&certs, &roles, at, Some(&cache)),
            Err(Error::ChainSignatureInvalid { role: "c2".into() })
        );
    }

    #[test]
    fn unsupported_signature_algorithm() {
        let (k0, k1) = (Key::new(), Key::new());
        let root = cert(&spec("root", "root"), &k0, &k0);
        let mut leaf = cert(&Spec { ca: None, key_usage: KU_LEAF, ..spec("leaf", "root") }, &k1, &k0);
        // rewrite ecdsa-with-SHA384 (…04 03 03) into ecdsa-with-SHA512 (…04 03 04) in both places
        let pat = oid::ECDSA_SHA384;
        let mut i = 0;
        while i + pat.len() <= leaf.len() {
            if &leaf[i..i + pat.len()] == pat {
                leaf[i + pat.len() - 1] = 0x04;
            }
            i += 1;
        }
        assert_eq!(check(&[root, leaf]), Err(Error::CertificateAlgorithm { role: "c1".into() }));
    }

    /// Correctly signed certificates whose only fault is an impossible date or a
    /// KeyUsage BIT STRING with padding bits set: without the webpki checks in `der`
    /// each of them verifies (the controls show the same chain with the fault removed
    /// does); with them each is refused while parsing.
    #[test]
    fn signed_certificates_with_impossible_dates_or_ku_padding_are_refused() {
        let (k0, k1) = (Key::new(), Key::new());
        let root = cert(&spec("root", "root"), &k0, &k0);
        let leaf = |s: Spec<'_>| cert(&Spec { ca: None, key_usage: KU_LEAF, ..s }, &k1, &k0);
        let parse = |d: &[u8]| Certificate::parse(d).map(|_| ());
        // controls: real dates, 29 February of a leap year, zero padding
        for validity in [("200228000000Z", "400101000000Z"), ("200229000000Z", "400229235959Z")] {
            let ok = leaf(Spec { validity, ..spec("leaf", "root") });
            assert_eq!(check(&[root.clone(), ok]), Ok(()), "{validity:?}");
        }
        let ok = leaf(Spec { key_usage_bits: Some(&[0x07, 0x80]), ..spec("leaf", "root") });
        assert_eq!(check(&[root.clone(), ok]), Ok(()));
        // the same with the fault
        for validity in [
            ("200231000000Z", "400101000000Z"),
            ("200101000000Z", "390229000000Z"),
            ("200431000000Z", "400101000000Z"),
            ("200101000000Z", "400101240000Z"),
            ("200101000060Z", "400101000000Z"),
        ] {
            let bad = leaf(Spec { validity, ..spec("leaf", "root") });
            assert_eq!(parse(&bad), Err(der::DerError::Invalid("time")), "{validity:?}");
        }
        for bits in [&[0x07u8, 0x81][..], &[0x01, 0x81], &[0x03, 0x84]] {
            let bad = leaf(Spec { key_usage_bits: Some(bits), ..spec("leaf", "root") });
            assert_eq!(parse(&bad), Err(der::DerError::Invalid("bit string (non-zero padding bits)")), "{bits:?}");
        }
    }
}
