//! Checkpoints in the C2SP `tlog-checkpoint` format, as C2SP `signed-note`s.
//!
//! ```text
//! cleanroom/audit/0123456789abcdef      origin: names the log
//! 42                                    tree size, decimal
//! qUx1…=                                root hash, standard base64
//!                                       blank line
//! — cleanroom/audit/0123456789abcdef AAAAAb…   signature line(s)
//! ```
//!
//! A signature line is an em dash, a space, the key name, a space, and the base64 of the
//! 4-byte key ID followed by the Ed25519 signature over the note text (everything before
//! the blank line, final newline included). The key ID is the first four bytes of
//! SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), 0x01 being the Ed25519 algorithm byte.
//! The key that signs is the attested enclave key; its name is the log's origin.

use crate::merkle::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use protocol::signing::SigningKey;
use ring::signature::{UnparsedPublicKey, ED25519};

/// Longest note accepted (a checkpoint is under 200 bytes plus its signatures).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 16;

const ED25519_ALG: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    #[error("checkpoint contains a control character other than newline")]
    ControlCharacter,
    #[error("checkpoint has no blank line before its signatures")]
    NoSignatureBlock,
    #[error("checkpoint line {line}: {why}")]
    Body { line: usize, why: &'static str },
    #[error("checkpoint signature line {line}: {why}")]
    SignatureLine { line: usize, why: &'static str },
    #[error("checkpoint has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("checkpoint is for log {got:?}, expected {expected:?}")]
    WrongOrigin { expected: String, got: String },
    #[error("checkpoint carries no signature by key {key_id} ({name})")]
    NotSignedBy { name: String, key_id: String },
    #[error("checkpoint signature by {name} does not verify")]
    BadSignature { name: String },
}

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

/// A parsed (not yet verified) signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// Extension lines after the root (none are written; kept when read).
    pub extensions: Vec<String>,
    pub signatures: Vec<NoteSignature>,
    /// The signed text, exactly as received.
    pub text: String,
}

impl Checkpoint {
    /// The note text that is signed.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Sign with `key` under the key name `origin`; returns the whole note.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let mut blob = key_id(&self.origin, &key.public_key()).to_vec();
        blob.extend_from_slice(&key.sign_note_text(&body));
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.origin, B64.encode(blob))
    }
}

/// The 4-byte key ID of an Ed25519 note key.
pub fn key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    c.update(name.as_bytes());
    c.update(b"\n");
    c.update(&[ED25519_ALG]);
    c.update(public_key);
    let d = c.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

/// The verifier key in the note `vkey` encoding: `name+keyid_hex+base64(0x01 ‖ key)`.
pub fn verifier_key(name: &str, public_key: &[u8]) -> String {
    let mut k = vec![ED25519_ALG];
    k.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(key_id(name, public_key)), B64.encode(k))
}

/// The log's origin line: one log per owner key (the owner's ledger keys its latest
/// checkpoint by it).
pub fn origin_for_owner(owner_public_key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, owner_public_key);
    format!("cleanroom/audit/{}", hex::encode(&d.as_ref()[..8]))
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// Parse a signed checkpoint. Checks its form only; [`SignedCheckpoint::verify`] checks
/// the signature.
pub fn parse(note: &str) -> Result<SignedCheckpoint, CheckpointError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::TooLarge);
    }
    if note.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(CheckpointError::ControlCharacter);
    }
    let split = note.find("\n\n").ok_or(CheckpointError::NoSignatureBlock)?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let lines: Vec<&str> = text.strip_suffix('\n').unwrap_or(text).split('\n').collect();
    let body_err = |line: usize, why| CheckpointError::Body { line, why };
    if lines.len() < 3 {
        return Err(body_err(lines.len() + 1, "a checkpoint has an origin, a tree size and a root hash"));
    }
    let origin = lines[0];
    if origin.is_empty() {
        return Err(body_err(1, "empty origin"));
    }
    let size_text = lines[1];
    if size_text.is_empty()
        || !size_text.bytes().all(|b| b.is_ascii_digit())
        || (size_text.len() > 1 && size_text.starts_with('0'))
    {
        return Err(body_err(2, "tree size is not a decimal number without leading zeros"));
    }
    let size: u64 = size_text.parse().map_err(|_| body_err(2, "tree size does not fit 64 bits"))?;
    let root: Hash = B64
        .decode(lines[2])
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| body_err(3, "root hash is not 32 bytes of standard base64"))?;
    if B64.encode(root) != lines[2] {
        return Err(body_err(3, "root hash is not in canonical base64"));
    }
    let extensions: Vec<String> = lines[3..].iter().map(|s| s.to_string()).collect();
    if let Some(i) = extensions.iter().position(|e| e.is_empty()) {
        return Err(body_err(4 + i, "empty line in the checkpoint body"));
    }
    if !sigs.ends_with('\n') {
        return Err(CheckpointError::SignatureLine { line: 1, why: "the note does not end in a newline" });
    }
    let mut signatures = Vec::new();
    for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
        let bad = |why| CheckpointError::SignatureLine { line: i + 1, why };
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| bad("does not start with an em dash and a space"))?;
        let (name, b64) = rest.rsplit_once(' ').ok_or_else(|| bad("no space between key name and signature"))?;
        if !valid_key_name(name) {
            return Err(bad("key name is empty or holds a space or '+'"));
        }
        let blob = B64.decode(b64).map_err(|_| bad("signature is not standard base64"))?;
        if blob.len() < 5 {
            return Err(bad("signature is shorter than a key ID"));
        }
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&blob[..4]);
        signatures.push(NoteSignature { name: name.to_string(), key_id, signature: blob[4..].to_vec() });
        if signatures.len() > MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures);
        }
    }
    if signatures.is_empty() {
        return Err(CheckpointError::SignatureLine { line: 1, why: "no signature" });
    }
    Ok(SignedCheckpoint {
        checkpoint: Checkpoint { origin: origin.to_string(), size, root },
        extensions,
        signatures,
        text: text.to_string(),
    })
}

impl SignedCheckpoint {
    /// Check that the Ed25519 key `public_key`, named as the checkpoint's origin, signed it.
    /// Other signatures (witnesses, say) are ignored.
    pub fn verify(&self, public_key: &[u8]) -> Result<(), CheckpointError> {
        let name = &self.checkpoint.origin;
        let id = key_id(name, public_key);
        let sig = self
            .signatures
            .iter()
            .find(|s| &s.name == name && s.key_id == id)
            .ok_or_else(|| CheckpointError::NotSignedBy { name: name.clone(), key_id: hex::encode(id) })?;
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(self.text.as_bytes(), &sig.signature)
            .map_err(|_| CheckpointError::BadSignature { name: name.clone() })
    }

    /// The key IDs of the signature lines under the origin's name.
    pub fn origin_key_ids(&self) -> impl Iterator<Item = [u8; 4]> + '_ {
        self.signatures.iter().filter(|s| s.name == self.checkpoint.origin).map(|s| s.key_id)
    }
}

/// Parse and verify in one step, also requiring the origin.
pub fn open(note: &str, origin: &str, public_key: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let signed = parse(note)?;
    if signed.checkpoint.origin != origin {
        return Err(CheckpointError::WrongOrigin { expected: origin.into(), got: signed.checkpoint.origin });
    }
    signed.verify(public_key)?;
    Ok(signed.checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint { origin: "cleanroom/audit/00112233".into(), size: 42, root: [7; 32] }
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let k = SigningKey::from_seed([5; 32]);
        let note = cp().sign(&k);
        assert!(note.starts_with("cleanroom/audit/00112233\n42\nBwcH"));
        assert!(note.contains("\n\n\u{2014} cleanroom/audit/00112233 "));
        let opened = open(&note, "cleanroom/audit/00112233", &k.public_key()).unwrap();
        assert_eq!(opened, cp());
        let other = SigningKey::from_seed([6; 32]);
        assert!(matches!(
            open(&note, "cleanroom/audit/00112233", &other.public_key()),
            Err(CheckpointError::NotSignedBy { .. })
        ));
        assert!(matches!(open(&note, "other", &k.public_key()), Err(CheckpointError::WrongOrigin { .. })));
        assert!(verifier_key("a", &k.public_key()).starts_with("a+"));
    }

    #[test]
    fn a_changed_body_or_signature_fails() {
        let k = SigningKey::from_seed([5; 32]);
        let note = cp().sign(&k);
        let bigger = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(parse(&bigger).unwrap().verify(&k.public_key()), Err(CheckpointError::BadSignature { .. })));
        // Flip one character of the signature's base64 (not the key ID part).
        let at = note.len() - 10;
        let mut bytes = note.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(parse(&flipped).unwrap().verify(&k.public_key()).is_err());
    }

    #[test]
    fn malformed_notes_are_named() {
        let k = SigningKey::from_seed([5; 32]);
        let good = cp().sign(&k);
        let cases: Vec<(String, &str)> = vec![
            (good.replace("\n\n", "\n"), "no blank line"),
            (good.replacen("\n42\n", "\n042\n", 1), "leading zero"),
            (good.replacen("\n42\n", "\n-1\n", 1), "negative"),
            (good.replacen("\n42\n", "\n99999999999999999999\n", 1), "overflow"),
            (good.replacen("BwcH", "Bwc", 1), "root length"),
            (good.replacen('\u{2014}', "-", 1), "dash"),
            (good.trim_end().to_string(), "no final newline"),
            (good.replacen("42", "4\u{7}2", 1), "control"),
            (format!("{}\n\n", cp().body()), "no signature"),
            ("x".repeat(MAX_NOTE_BYTES + 1), "too large"),
        ];
        for (note, what) in cases {
            assert!(parse(&note).is_err(), "{what} should not parse");
        }
    }
}
