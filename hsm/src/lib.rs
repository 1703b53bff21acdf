//! The data owner's keys inside a PKCS#11 token (a hardware security module, or SoftHSM2
//! for development).
//!
//! * The tokenization key is a 32-byte `CKK_GENERIC_SECRET` generated in the token,
//!   sensitive and non-extractable; [`TokenizationKey::token`] computes HMAC-SHA-256 on
//!   the token, with the same input framing and the same public key id as the file key
//!   store (`cleanroom/src/keystore.rs`), so a key gives identical tokens wherever it lives.
//! * The grant-signing key is an Ed25519 key pair generated in the token; the private half
//!   is sensitive and non-extractable, [`Ed25519Key::sign`] runs `CKM_EDDSA` on the token.
//!
//! A key found on the token is used only if the token says it cannot be read or exported
//! (`CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false, `CKA_DERIVE` false).
//!
//! A PKCS#11 module is process-global state (one `C_Initialize` per process), so modules
//! are loaded once and never finalized, and a token can be open through one [`Token`] at
//! a time per process (login state is shared by all sessions of a token).
//! See docs/hsm.md.

mod error;
#[cfg(feature = "softhsm-test")]
pub mod softhsm;
/// Test support: the cryptoki version this crate uses, for raw PKCS#11 calls in tests.
#[cfg(feature = "softhsm-test")]
pub use cryptoki;

pub use error::{HsmError, KeyKind};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

// The file key store's labels: same key, same tokens and same key id in a file or a token.
const TOKEN_LABEL: &[u8] = b"cleanroom/token/v1\0";
const KEY_ID_LABEL: &[u8] = b"cleanroom/key-id/v1";
const HMAC_KEY_LEN: usize = 32;
const OBJECT_ID_LEN: u32 = 16;

// CKA_EC_PARAMS for Ed25519: the RFC 8410 OID 1.3.101.112, or the PKCS#11 3.0
// printable string "edwards25519". Tokens differ in which they accept; we try both.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const ED25519_PRINTABLE: &[u8] = b"\x13\x0cedwards25519";

/// A token user PIN. Zeroized on drop, never printed.
pub struct Pin(Zeroizing<String>);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl Pin {
    pub fn new(pin: impl Into<String>) -> Pin {
        Pin(Zeroizing::new(pin.into()))
    }

    /// The PIN in environment variable `var` (taken as is).
    pub fn from_env(var: &str) -> Result<Pin, HsmError> {
        let bad = |reason: &str| HsmError::PinSource {
            source_name: format!("environment variable {var}"),
            reason: reason.into(),
        };
        match std::env::var(var) {
            Ok(v) if v.is_empty() => Err(bad("is empty")),
            Ok(v) => Ok(Pin::new(v)),
            Err(std::env::VarError::NotPresent) => Err(bad("is not set")),
            Err(std::env::VarError::NotUnicode(_)) => Err(bad("is not valid UTF-8")),
        }
    }

    /// The PIN in a file of one line (a final newline is dropped). Like the key file, it
    /// must not be readable by group or others.
    pub fn from_file(path: &Path) -> Result<Pin, HsmError> {
        use std::io::Read;
        let bad = |reason: String| HsmError::PinSource { source_name: format!("file {}", path.display()), reason };
        let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(|e| bad(e.to_string()))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "is accessible by group or others (mode {:o}); run `chmod 600` on it",
                    mode & 0o777
                )));
            }
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("is not valid UTF-8".into()))?;
        let line = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
        if line.is_empty() {
            return Err(bad("is empty".into()));
        }
        if line.contains('\n') {
            return Err(bad("has more than one line".into()));
        }
        Ok(Pin::new(line))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// Loaded modules by canonical path. Never finalized: another Token may still use it.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
// (module, slot) of every open Token.
static OPEN: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

fn load_module(path: &Path) -> Result<(PathBuf, Pkcs11), HsmError> {
    let load_err = |reason: String| HsmError::ModuleLoad { path: path.into(), reason };
    let canon = std::fs::canonicalize(path).map_err(|e| load_err(e.to_string()))?;
    let mut modules = lock(&MODULES);
    if let Some((_, ctx)) = modules.iter().find(|(p, _)| *p == canon) {
        return Ok((canon, ctx.clone()));
    }
    let ctx = Pkcs11::new(&canon).map_err(|e| match e {
        CkError::LibraryLoading(inner) => load_err(inner.to_string()),
        other => load_err(format!("not a PKCS#11 module ({other})")),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialized by other code in this process: usable as is.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(HsmError::ModuleInit { path: path.into(), ckr: error::describe(&e).1 }),
    }
    modules.push((canon.clone(), ctx.clone()));
    Ok((canon, ctx))
}

struct OpenGuard(PathBuf, u64);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        lock(&OPEN).retain(|(p, s)| !(*p == self.0 && *s == self.1));
    }
}

/// One logged-in session on one token.
pub struct Token {
    // Dropped first: closing the last session logs the user out.
    session: Session,
    label: String,
    module: PathBuf,
    _open: OpenGuard,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.label).field("module", &self.module).finish_non_exhaustive()
    }
}

fn pkcs11_err(token: &str, e: &CkError) -> HsmError {
    let (function, ckr) = error::describe(e);
    HsmError::Pkcs11 { token: token.into(), function, ckr }
}

impl Token {
    /// Load the PKCS#11 module at `module` (a `.so`), find the token labelled `label` and
    /// log in as its user.
    pub fn open(module: impl AsRef<Path>, label: &str, pin: &Pin) -> Result<Token, HsmError> {
        let path = module.as_ref();
        let (canon, ctx) = load_module(path)?;
        let tk = |e: CkError| pkcs11_err(label, &e);
        let mut found: Vec<Slot> = Vec::new();
        let mut available = Vec::new();
        for slot in ctx.get_slots_with_token().map_err(tk)? {
            // A slot whose token cannot be described must not hide the others.
            let Ok(info) = ctx.get_token_info(slot) else { continue };
            if info.label() == label {
                found.push(slot);
            }
            if info.token_initialized() {
                available.push(info.label().to_string());
            }
        }
        let slot = match found[..] {
            [] => return Err(HsmError::TokenNotFound { label: label.into(), module: path.into(), available }),
            [slot] => slot,
            _ => return Err(HsmError::AmbiguousToken { label: label.into(), count: found.len() }),
        };
        let guard = {
            let mut open = lock(&OPEN);
            if open.iter().any(|(p, s)| *p == canon && *s == slot.id()) {
                return Err(HsmError::TokenInUse { label: label.into() });
            }
            open.push((canon.clone(), slot.id()));
            OpenGuard(canon, slot.id())
        };
        let session = ctx.open_rw_session(slot).map_err(tk)?;
        let auth = AuthPin::from(pin.0.as_str());
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid, _)) => {
                return Err(HsmError::WrongPin { label: label.into() })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(HsmError::PinLocked { label: label.into() }),
            // Another session of this process logged in (not through a Token): we could
            // not tell whether `pin` is right, so refuse.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn | RvError::UserAnotherAlreadyLoggedIn, _)) => {
                return Err(HsmError::TokenInUse { label: label.into() })
            }
            Err(e) => return Err(tk(e)),
        }
        Ok(Token { session, label: label.into(), module: path.into(), _open: guard })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The module path as given to [`Token::open`].
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Test support: the raw session, to attempt what this API refuses to do.
    #[cfg(feature = "softhsm-test")]
    pub fn raw_session(&self) -> &Session {
        &self.session
    }

    fn err(&self, e: CkError) -> HsmError {
        pkcs11_err(&self.label, &e)
    }

    fn mech_err(&self, e: CkError, mechanism: &'static str) -> HsmError {
        match e {
            CkError::Pkcs11(RvError::MechanismInvalid | RvError::MechanismParamInvalid, _) => {
                HsmError::MechanismUnsupported { token: self.label.clone(), mechanism }
            }
            e => self.err(e),
        }
    }

    fn find(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>, HsmError> {
        self.session.find_objects(template).map_err(|e| self.err(e))
    }

    fn find_one(&self, kind: KeyKind, label: &str, class: ObjectClass) -> Result<ObjectHandle, HsmError> {
        let found = self.find(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])?;
        match found[..] {
            [h] => Ok(h),
            [] => Err(HsmError::KeyNotFound { kind, label: label.into(), token: self.label.clone() }),
            _ => {
                Err(HsmError::AmbiguousKey { kind, label: label.into(), token: self.label.clone(), count: found.len() })
            }
        }
    }

    fn refuse_existing(&self, kind: KeyKind, label: &str, classes: &[ObjectClass]) -> Result<(), HsmError> {
        for class in classes {
            if !self.find(&[Attribute::Class(*class), Attribute::Label(label.as_bytes().to_vec())])?.is_empty() {
                return Err(HsmError::KeyExists { kind, label: label.into(), token: self.label.clone() });
            }
        }
        Ok(())
    }

    fn attributes(&self, handle: ObjectHandle, types: &[AttributeType]) -> Result<Attrs, HsmError> {
        let mut a = Attrs::default();
        for attr in self.session.get_attributes(handle, types).map_err(|e| self.err(e))? {
            match attr {
                Attribute::KeyType(t) => a.key_type = Some(t),
                Attribute::Sensitive(b) => a.sensitive = Some(b),
                Attribute::Extractable(b) => a.extractable = Some(b),
                Attribute::Derive(b) => a.derive = Some(b),
                Attribute::Sign(b) => a.sign = Some(b),
                Attribute::Local(b) => a.local = Some(b),
                Attribute::NeverExtractable(b) => a.never_extractable = Some(b),
                Attribute::AlwaysSensitive(b) => a.always_sensitive = Some(b),
                Attribute::ValueLen(n) => a.value_len = usize::try_from(*n).ok(),
                Attribute::Id(v) => a.id = Some(v),
                Attribute::EcParams(v) => a.ec_params = Some(v),
                Attribute::EcPoint(v) => a.ec_point = Some(v),
                _ => {}
            }
        }
        Ok(a)
    }

    fn random_id(&self) -> Result<Vec<u8>, HsmError> {
        self.session.generate_random_vec(OBJECT_ID_LEN).map_err(|e| self.err(e))
    }

    /// Generate a new tokenization key labelled `label` in the token: 32 random bytes made
    /// by the token, stored on it, never readable or exportable. Refuses if a secret key
    /// with this label exists.
    pub fn generate_hmac_key(&self, label: &str) -> Result<TokenizationKey<'_>, HsmError> {
        self.refuse_existing(KeyKind::Tokenization, label, &[ObjectClass::SECRET_KEY])?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(Ulong::try_from(HMAC_KEY_LEN).map_err(|e| self.err(e))?),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            // Derivation could produce an exportable key from this one.
            Attribute::Derive(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(self.random_id()?),
        ];
        let handle = self
            .session
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(|e| self.mech_err(e, "CKM_GENERIC_SECRET_KEY_GEN"))?;
        TokenizationKey::new(self, handle, label).inspect_err(|_| {
            // The token ignored part of the template: do not leave a weaker key behind.
            let _ = self.session.destroy_object(handle);
        })
    }

    /// The tokenization key labelled `label`, if it is sensitive and non-extractable.
    pub fn find_hmac_key(&self, label: &str) -> Result<TokenizationKey<'_>, HsmError> {
        let handle = self.find_one(KeyKind::Tokenization, label, ObjectClass::SECRET_KEY)?;
        TokenizationKey::new(self, handle, label)
    }

    /// Generate a new Ed25519 key pair labelled `label` in the token; both halves are
    /// stored on it, the private half never readable or exportable.
    pub fn generate_ed25519_key(&self, label: &str) -> Result<Ed25519Key<'_>, HsmError> {
        self.refuse_existing(KeyKind::Ed25519, label, &[ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY])?;
        let id = self.random_id()?;
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Derive(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        let mut last = None;
        for params in [ED25519_OID, ED25519_PRINTABLE] {
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(params.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            match self.session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private) {
                Ok((public, private)) => {
                    return Ed25519Key::new(self, private, public, label).inspect_err(|_| {
                        let _ = self.session.destroy_object(private);
                        let _ = self.session.destroy_object(public);
                    })
                }
                // This encoding of the curve is not the one this token understands.
                Err(
                    e @ CkError::Pkcs11(
                        RvError::CurveNotSupported
                        | RvError::DomainParamsInvalid
                        | RvError::AttributeValueInvalid
                        | RvError::TemplateInconsistent,
                        _,
                    ),
                ) => last = Some(e),
                Err(e) => return Err(self.mech_err(e, "CKM_EC_EDWARDS_KEY_PAIR_GEN")),
            }
        }
        match last {
            Some(CkError::Pkcs11(RvError::CurveNotSupported | RvError::DomainParamsInvalid, _)) | None => {
                Err(HsmError::MechanismUnsupported { token: self.label.clone(), mechanism: "the edwards25519 curve" })
            }
            Some(e) => Err(self.err(e)),
        }
    }

    /// The Ed25519 key pair labelled `label` (private and public objects share label and
    /// CKA_ID), if the private half is sensitive and non-extractable.
    pub fn find_ed25519_key(&self, label: &str) -> Result<Ed25519Key<'_>, HsmError> {
        let private = self.find_one(KeyKind::Ed25519, label, ObjectClass::PRIVATE_KEY)?;
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Label(label.as_bytes().to_vec())];
        if let Some(id) = self.attributes(private, &[AttributeType::Id])?.id {
            template.push(Attribute::Id(id));
        }
        let refuse = |reason: &str| HsmError::KeyAttributes {
            kind: KeyKind::Ed25519,
            label: label.into(),
            token: self.label.clone(),
            reason: reason.into(),
        };
        match self.find(&template)?[..] {
            [public] => Ed25519Key::new(self, private, public, label),
            [] => Err(refuse("its public key object (same label and CKA_ID) is missing")),
            _ => Err(refuse("several public key objects have its label and CKA_ID")),
        }
    }
}

#[derive(Default)]
struct Attrs {
    key_type: Option<KeyType>,
    sensitive: Option<bool>,
    extractable: Option<bool>,
    derive: Option<bool>,
    sign: Option<bool>,
    local: Option<bool>,
    never_extractable: Option<bool>,
    always_sensitive: Option<bool>,
    value_len: Option<usize>,
    id: Option<Vec<u8>>,
    ec_params: Option<Vec<u8>>,
    ec_point: Option<Vec<u8>>,
}

impl Attrs {
    /// Why a private or secret key must not be used, if it must not.
    fn unusable(&self, expected_type: KeyType) -> Option<String> {
        match self.key_type {
            Some(t) if t == expected_type => {}
            Some(t) => return Some(format!("its key type is {t}, not {expected_type}")),
            None => return Some("the token does not report its key type".into()),
        }
        match self.extractable {
            Some(false) => {}
            Some(true) => return Some("CKA_EXTRACTABLE is true: it could be exported from the token".into()),
            None => return Some("the token does not report CKA_EXTRACTABLE".into()),
        }
        match self.sensitive {
            Some(true) => {}
            Some(false) => return Some("CKA_SENSITIVE is false: its value could be read from the token".into()),
            None => return Some("the token does not report CKA_SENSITIVE".into()),
        }
        if self.derive == Some(true) {
            return Some("CKA_DERIVE is true: a key derived from it could be exported".into());
        }
        if self.sign != Some(true) {
            return Some("CKA_SIGN is not true".into());
        }
        None
    }

    fn generated_in_token(&self) -> bool {
        self.local == Some(true) && self.never_extractable == Some(true) && self.always_sensitive == Some(true)
    }
}

const CHECKED: &[AttributeType] = &[
    AttributeType::KeyType,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::Derive,
    AttributeType::Sign,
    AttributeType::Local,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
];

/// The tokenization key, held by the token. Borrowing the [`Token`] keeps its session.
pub struct TokenizationKey<'t> {
    token: &'t Token,
    handle: ObjectHandle,
    label: String,
    key_id: String,
    generated_in_token: bool,
}

impl std::fmt::Debug for TokenizationKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenizationKey")
            .field("token", &self.token.label)
            .field("label", &self.label)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl<'t> TokenizationKey<'t> {
    fn new(token: &'t Token, handle: ObjectHandle, label: &str) -> Result<Self, HsmError> {
        let mut types = CHECKED.to_vec();
        types.push(AttributeType::ValueLen);
        let a = token.attributes(handle, &types)?;
        let refuse = |reason: String| HsmError::KeyAttributes {
            kind: KeyKind::Tokenization,
            label: label.into(),
            token: token.label.clone(),
            reason,
        };
        if let Some(reason) = a.unusable(KeyType::GENERIC_SECRET) {
            return Err(refuse(reason));
        }
        match a.value_len {
            Some(HMAC_KEY_LEN) => {}
            Some(n) => return Err(refuse(format!("it is {n} bytes long, not {HMAC_KEY_LEN}"))),
            None => return Err(refuse("the token does not report its length (CKA_VALUE_LEN)".into())),
        }
        let mut key = TokenizationKey {
            token,
            handle,
            label: label.into(),
            key_id: String::new(),
            generated_in_token: a.generated_in_token(),
        };
        key.key_id = hex::encode(&key.hmac(KEY_ID_LABEL)?[..8]);
        Ok(key)
    }

    /// Public, non-secret name of this key (and of its population): hex of the first 8
    /// bytes of HMAC(key, "cleanroom/key-id/v1"), computed by the token. The same
    /// derivation as the file key store's `TokenKey::key_id`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// True if the token reports the key was generated on it and was never extractable
    /// nor readable (CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE); false for
    /// an imported key, which existed outside the token at some point.
    pub fn generated_in_token(&self) -> bool {
        self.generated_in_token
    }

    /// Test support: the object handle, to attempt what this API refuses to do.
    #[cfg(feature = "softhsm-test")]
    pub fn raw_handle(&self) -> ObjectHandle {
        self.handle
    }

    /// HMAC-SHA-256(key, message), computed by the token.
    pub fn hmac(&self, message: &[u8]) -> Result<[u8; 32], HsmError> {
        let tag = self
            .token
            .session
            .sign(&Mechanism::Sha256Hmac, self.handle, message)
            .map_err(|e| self.token.mech_err(e, "CKM_SHA256_HMAC"))?;
        tag.try_into().map_err(|_| HsmError::Malformed { token: self.token.label.clone(), what: "HMAC-SHA-256 tag" })
    }

    /// [`TokenizationKey::hmac`] of each message, in order. PKCS#11 has no batch MAC: one
    /// C_SignInit + C_Sign per message.
    pub fn hmac_many(&self, messages: &[&[u8]]) -> Result<Vec<[u8; 32]>, HsmError> {
        messages.iter().map(|m| self.hmac(m)).collect()
    }

    /// The privacy-unit token of an identifier: HMAC(key, "cleanroom/token/v1\0" || value),
    /// as the file key store's `Tokenizer::token`.
    pub fn token(&self, value: &[u8]) -> Result<[u8; 32], HsmError> {
        let mut m = Vec::with_capacity(TOKEN_LABEL.len() + value.len());
        m.extend_from_slice(TOKEN_LABEL);
        m.extend_from_slice(value);
        self.hmac(&m)
    }

    /// [`TokenizationKey::token`] of each value, in order.
    pub fn tokens(&self, values: &[&[u8]]) -> Result<Vec<[u8; 32]>, HsmError> {
        values.iter().map(|v| self.token(v)).collect()
    }

    /// Whether `tag` is HMAC(key, message), checked by the token (C_Verify).
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> Result<bool, HsmError> {
        match self.token.session.verify(&Mechanism::Sha256Hmac, self.handle, message, tag) {
            Ok(()) => Ok(true),
            Err(CkError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => Ok(false),
            Err(e) => Err(self.token.mech_err(e, "CKM_SHA256_HMAC")),
        }
    }
}

/// The owner's Ed25519 grant-signing key, held by the token.
pub struct Ed25519Key<'t> {
    token: &'t Token,
    private: ObjectHandle,
    public_key: [u8; 32],
    label: String,
    generated_in_token: bool,
}

impl std::fmt::Debug for Ed25519Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("token", &self.token.label)
            .field("label", &self.label)
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

fn is_ed25519(params: &[u8]) -> bool {
    params == ED25519_OID || params == ED25519_PRINTABLE
}

/// CKA_EC_POINT of an Ed25519 public key: a DER OCTET STRING around the 32 bytes
/// (SoftHSM, PKCS#11 2.40 practice) or the 32 bytes alone (some PKCS#11 3.0 tokens).
fn parse_ec_point(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw if raw.len() == 32 => raw.try_into().ok(),
        _ => None,
    }
}

impl<'t> Ed25519Key<'t> {
    fn new(token: &'t Token, private: ObjectHandle, public: ObjectHandle, label: &str) -> Result<Self, HsmError> {
        let mut types = CHECKED.to_vec();
        types.push(AttributeType::EcParams);
        let a = token.attributes(private, &types)?;
        let p = token.attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
        let refuse = |reason: String| HsmError::KeyAttributes {
            kind: KeyKind::Ed25519,
            label: label.into(),
            token: token.label.clone(),
            reason,
        };
        if let Some(reason) = a.unusable(KeyType::EC_EDWARDS) {
            return Err(refuse(reason));
        }
        for params in [&a.ec_params, &p.ec_params].into_iter().flatten() {
            if !is_ed25519(params) {
                return Err(refuse("its curve is not edwards25519".into()));
            }
        }
        if a.ec_params.is_none() && p.ec_params.is_none() {
            return Err(refuse("the token does not report its curve (CKA_EC_PARAMS)".into()));
        }
        let malformed =
            || HsmError::Malformed { token: token.label.clone(), what: "Ed25519 public key (CKA_EC_POINT)" };
        let public_key = parse_ec_point(p.ec_point.as_deref().ok_or_else(malformed)?).ok_or_else(malformed)?;
        Ok(Ed25519Key { token, private, public_key, label: label.into(), generated_in_token: a.generated_in_token() })
    }

    /// The 32-byte Ed25519 public key (RFC 8032 encoding).
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// See [`TokenizationKey::generated_in_token`].
    pub fn generated_in_token(&self) -> bool {
        self.generated_in_token
    }

    /// Test support: the private key's object handle.
    #[cfg(feature = "softhsm-test")]
    pub fn raw_private_handle(&self) -> ObjectHandle {
        self.private
    }

    /// Ed25519 signature (pure, RFC 8032) of `message`, made by the token.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], HsmError> {
        let sig = self
            .token
            .session
            .sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), self.private, message)
            .map_err(|e| self.token.mech_err(e, "CKM_EDDSA"))?;
        sig.try_into().map_err(|_| HsmError::Malformed { token: self.token.label.clone(), what: "Ed25519 signature" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_redacted() {
        assert_eq!(format!("{:?}", Pin::new("123456")), "Pin(<redacted>)");
    }

    #[test]
    fn ec_point_forms() {
        let k = [7u8; 32];
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(&k);
        assert_eq!(parse_ec_point(&der), Some(k));
        assert_eq!(parse_ec_point(&k), Some(k));
        assert_eq!(parse_ec_point(&der[..33]), None);
        assert_eq!(parse_ec_point(&[0x04, 0x21, 1]), None);
        assert_eq!(parse_ec_point(&[]), None);
    }

    #[cfg(unix)]
    #[test]
    fn pin_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cleanroom-hsm-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pin");
        std::fs::write(&path, "12 34\r\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Pin::from_file(&path).unwrap().0.as_str(), "12 34");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Pin::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "\n").unwrap();
        assert!(Pin::from_file(&path).unwrap_err().to_string().ends_with("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
