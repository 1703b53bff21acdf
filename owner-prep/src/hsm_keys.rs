//! The owner's tokenization key in a PKCS#11 token (`cleanroom-hsm`): generated there,
//! never extractable, used through the token for every privacy-unit token.

use crate::prepare::TokenKey;
use std::path::PathBuf;

/// Where the key is: the module, the token's label, the key's label, and the PIN's source.
#[derive(Debug, Clone)]
pub struct Pkcs11Location {
    pub module: PathBuf,
    pub token: String,
    pub key: String,
    /// A file holding the PIN (mode 0600); else the `CLEANROOM_PKCS11_PIN` variable.
    pub pin_file: Option<PathBuf>,
}

/// The environment variable read for the PIN when no PIN file is given.
pub const PIN_ENV: &str = "CLEANROOM_PKCS11_PIN";

impl Pkcs11Location {
    pub fn open(&self) -> Result<hsm::Token, hsm::HsmError> {
        let pin = match &self.pin_file {
            Some(p) => hsm::Pin::from_file(p)?,
            None => hsm::Pin::from_env(PIN_ENV)?,
        };
        hsm::Token::open(&self.module, &self.token, &pin)
    }

    /// How the manifest names the key's home.
    pub fn home(&self) -> String {
        format!("pkcs11:{}/{}", self.token, self.key)
    }
}

/// A token-held tokenization key as `prepare` uses it.
pub struct Pkcs11TokenKey<'t>(pub hsm::TokenizationKey<'t>);

impl TokenKey for Pkcs11TokenKey<'_> {
    fn key_id(&self) -> String {
        self.0.key_id().to_string()
    }
    fn token(&self, identifier: &[u8]) -> Result<[u8; 32], String> {
        self.0.token(identifier).map_err(|e| e.to_string())
    }
}

/// A token-held Ed25519 key that signs budget grants; its public half is the policy's
/// `owner_public_key`.
pub struct Pkcs11GrantSigner<'t>(pub hsm::Ed25519Key<'t>);

impl protocol::signing::Signer for Pkcs11GrantSigner<'_> {
    fn public_key(&self) -> Vec<u8> {
        self.0.public_key().to_vec()
    }
    fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64], String> {
        self.0.sign(message).map_err(|e| e.to_string())
    }
}

/// The label of the grant-signing key beside a tokenization key labelled `key`.
pub fn grant_key_label(key: &str) -> String {
    format!("{key}-grants")
}
