//! The strict decoder (see the crate docs for what "strict" means here).

use thiserror::Error;

use crate::Value;

/// Maximum nesting depth of arrays, maps and tags.
pub const MAX_DEPTH: usize = 16;

/// Why a byte string is not acceptable CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CborError {
    /// The input ended in the middle of an item.
    #[error("CBOR truncated: input ended inside an item")]
    Truncated,
    /// Bytes follow the single top-level item.
    #[error("CBOR trailing bytes: {0} byte(s) after the top-level item")]
    TrailingBytes(usize),
    /// A map contains the same key twice.
    #[error("CBOR duplicate map key")]
    DuplicateKey,
    /// Arrays/maps/tags nest deeper than [`MAX_DEPTH`].
    #[error("CBOR nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A declared length exceeds the remaining input (or the platform's usize).
    #[error("CBOR declared length {declared} exceeds the {remaining} byte(s) remaining")]
    LengthTooLarge {
        /// Declared length or element count.
        declared: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A text string is not valid UTF-8.
    #[error("CBOR text string is not valid UTF-8")]
    InvalidUtf8,
    /// Additional information 28..30 (reserved) was used.
    #[error("CBOR reserved additional information {0}")]
    Reserved(u8),
    /// A break (0xff) outside an indefinite-length item.
    #[error("CBOR unexpected break byte")]
    UnexpectedBreak,
    /// Floats and unassigned simple values are not used in attestation evidence.
    #[error("CBOR unsupported item (major type 7, info {0}): floats and simple values are refused")]
    Unsupported(u8),
    /// An indefinite-length string contained something other than a definite chunk of the same type.
    #[error("CBOR malformed indefinite-length string chunk")]
    BadChunk,
    /// Indefinite length used where it is not allowed (integers, tags).
    #[error("CBOR indefinite length not allowed for major type {0}")]
    IndefiniteNotAllowed(u8),
}

/// Decodes exactly one CBOR item that spans the whole input.
pub fn decode(input: &[u8]) -> Result<Value, CborError> {
    let mut r = Reader { buf: input, pos: 0 };
    let v = r.item(0)?;
    if r.pos != input.len() {
        return Err(CborError::TrailingBytes(input.len() - r.pos));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Head {
    /// major, additional info, argument
    Def(u8, u8, u64),
    /// major (2..=5), indefinite
    Indef(u8),
    Break,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.buf.get(self.pos).ok_or(CborError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        if n > self.remaining() {
            return Err(CborError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let ib = self.byte()?;
        let major = ib >> 5;
        let info = ib & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => {
                let s = self.take(2)?;
                u64::from(u16::from_be_bytes([s[0], s[1]]))
            }
            26 => {
                let s = self.take(4)?;
                u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_be_bytes(a)
            }
            28..=30 => return Err(CborError::Reserved(info)),
            _ => {
                // info == 31
                return match major {
                    2..=5 => Ok(Head::Indef(major)),
                    7 => Ok(Head::Break),
                    m => Err(CborError::IndefiniteNotAllowed(m)),
                };
            }
        };
        Ok(Head::Def(major, info, arg))
    }

    /// Checks a declared length against the remaining input and converts it.
    fn len_within(&self, declared: u64) -> Result<usize, CborError> {
        let remaining = self.remaining();
        match usize::try_from(declared) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(CborError::LengthTooLarge { declared, remaining }),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        match self.head()? {
            Head::Break => Err(CborError::UnexpectedBreak),
            Head::Def(major, info, arg) => self.definite(major, info, arg, depth),
            Head::Indef(major) => self.indefinite(major, depth),
        }
    }

    fn definite(&mut self, major: u8, info: u8, arg: u64, depth: usize) -> Result<Value, CborError> {
        match major {
            0 => Ok(Value::Unsigned(arg)),
            1 => Ok(Value::Negative(arg)),
            2 => {
                let n = self.len_within(arg)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            3 => {
                let n = self.len_within(arg)?;
                let s = self.take(n)?;
                let t = std::str::from_utf8(s).map_err(|_| CborError::InvalidUtf8)?;
                Ok(Value::Text(t.to_owned()))
            }
            4 => {
                // every element takes at least one byte; nothing is reserved from the
                // declared count: memory grows only with items actually read
                let n = self.len_within(arg)?;
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(v))
            }
            5 => {
                // every entry takes at least two bytes
                let n = self.len_within(arg.saturating_mul(2))? / 2;
                let mut entries: Vec<(Value, Value)> = Vec::new();
                for _ in 0..n {
                    let k = self.item(depth + 1)?;
                    let v = self.item(depth + 1)?;
                    push_unique(&mut entries, k, v)?;
                }
                Ok(Value::Map(entries))
            }
            6 => {
                let inner = self.item(depth + 1)?;
                Ok(Value::Tag(arg, Box::new(inner)))
            }
            // major 7: only the one-byte simple values false/true/null/undefined;
            // one-byte-extended simple values (info 24) and floats (25..27) are refused
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                23 => Ok(Value::Undefined),
                other => Err(CborError::Unsupported(other)),
            },
        }
    }

    fn at_break(&mut self) -> Result<bool, CborError> {
        match self.buf.get(self.pos) {
            None => Err(CborError::Truncated),
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    fn indefinite(&mut self, major: u8, depth: usize) -> Result<Value, CborError> {
        match major {
            2 | 3 => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    match self.head()? {
                        Head::Def(m, _, arg) if m == major => {
                            let n = self.len_within(arg)?;
                            out.extend_from_slice(self.take(n)?);
                        }
                        _ => return Err(CborError::BadChunk),
                    }
                }
                if major == 2 {
                    Ok(Value::Bytes(out))
                } else {
                    String::from_utf8(out).map(Value::Text).map_err(|_| CborError::InvalidUtf8)
                }
            }
            4 => {
                let mut v = Vec::new();
                while !self.at_break()? {
                    v.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(v))
            }
            _ => {
                // 5: map
                let mut entries = Vec::new();
                while !self.at_break()? {
                    let k = self.item(depth + 1)?;
                    let v = self.item(depth + 1)?;
                    push_unique(&mut entries, k, v)?;
                }
                Ok(Value::Map(entries))
            }
        }
    }
}

fn push_unique(entries: &mut Vec<(Value, Value)>, k: Value, v: Value) -> Result<(), CborError> {
    if entries.iter().any(|(existing, _)| *existing == k) {
        return Err(CborError::DuplicateKey);
    }
    entries.push((k, v));
    Ok(())
}
