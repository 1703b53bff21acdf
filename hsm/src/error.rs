//! Typed errors. Messages are one line, name the module, token or key label involved,
//! and never contain a PIN or key material.

use std::fmt;
use std::path::PathBuf;

/// Which of the owner's keys an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The HMAC-SHA-256 tokenization key.
    Tokenization,
    /// The Ed25519 grant-signing key.
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Tokenization => "HMAC tokenization",
            KeyKind::Ed25519 => "Ed25519 signing",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    #[error("PKCS#11 module {}: cannot be loaded: {reason}", path.display())]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("PKCS#11 module {}: C_Initialize failed with {ckr}", path.display())]
    ModuleInit { path: PathBuf, ckr: String },
    #[error("no token labelled {label:?} in PKCS#11 module {} (tokens present: {})", module.display(), list(available))]
    TokenNotFound { label: String, module: PathBuf, available: Vec<String> },
    #[error("{count} tokens are labelled {label:?}; relabel them so the label names one token")]
    AmbiguousToken { label: String, count: usize },
    #[error("wrong PIN for token {label:?}")]
    WrongPin { label: String },
    #[error("the user PIN of token {label:?} is locked; the token's security officer must reset it")]
    PinLocked { label: String },
    #[error("token {label:?} is already logged in by another handle in this process; use one Token for it")]
    TokenInUse { label: String },
    #[error("PIN from {source_name}: {reason}")]
    PinSource { source_name: String, reason: String },
    #[error("no {kind} key labelled {label:?} on token {token:?}")]
    KeyNotFound { kind: KeyKind, label: String, token: String },
    #[error("{count} {kind} keys are labelled {label:?} on token {token:?}; refusing to guess")]
    AmbiguousKey { kind: KeyKind, label: String, token: String, count: usize },
    #[error("a {kind} key labelled {label:?} already exists on token {token:?}; refusing to create another")]
    KeyExists { kind: KeyKind, label: String, token: String },
    #[error("{kind} key {label:?} on token {token:?} is refused: {reason}")]
    KeyAttributes { kind: KeyKind, label: String, token: String, reason: String },
    #[error("token {token:?} does not support {mechanism}")]
    MechanismUnsupported { token: String, mechanism: &'static str },
    #[error("token {token:?} returned a malformed {what}")]
    Malformed { token: String, what: &'static str },
    #[error("token {token:?}: {function} failed with {ckr}")]
    Pkcs11 { token: String, function: String, ckr: String },
}

fn list(labels: &[String]) -> String {
    if labels.is_empty() {
        "none".into()
    } else {
        labels.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ")
    }
}

impl HsmError {
    /// The PKCS#11 return code name (`CKR_...`) behind this error, if there is one.
    pub fn ckr(&self) -> Option<&str> {
        match self {
            HsmError::ModuleInit { ckr, .. } | HsmError::Pkcs11 { ckr, .. } => Some(ckr),
            _ => None,
        }
    }
}

/// `CKR_...` name of a return code. cryptoki's variant names are the CKR names in
/// CamelCase (checked against its table when this was written), so convert back.
pub(crate) fn ckr_name(rv: &cryptoki::error::RvError) -> String {
    use cryptoki::error::RvError;
    match rv {
        RvError::VendorDefined(code) => format!("vendor-defined CK_RV {code:#x}"),
        RvError::UnknownErrorCode(code) => format!("unknown CK_RV {code:#x}"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Function name and CKR name of a cryptoki error.
pub(crate) fn describe(e: &cryptoki::error::Error) -> (String, String) {
    use cryptoki::error::Error;
    match e {
        Error::Pkcs11(rv, function) => (format!("C_{function:?}"), ckr_name(rv)),
        other => ("PKCS#11 call".into(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::error::RvError;

    #[test]
    fn ckr_names() {
        assert_eq!(ckr_name(&RvError::AttributeSensitive), "CKR_ATTRIBUTE_SENSITIVE");
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(&RvError::Cancel), "CKR_CANCEL");
        assert_eq!(ckr_name(&RvError::VendorDefined(0x8000_0001)), "vendor-defined CK_RV 0x80000001");
    }

    #[test]
    fn messages_are_one_line() {
        let e = HsmError::TokenNotFound { label: "x".into(), module: "/m.so".into(), available: vec![] };
        assert_eq!(e.to_string(), "no token labelled \"x\" in PKCS#11 module /m.so (tokens present: none)");
    }
}
