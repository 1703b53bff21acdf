//! A small, strict CBOR (RFC 8949) reader and writer.
//!
//! Only what attestation documents need is accepted:
//! unsigned/negative integers, byte and text strings, arrays, maps, tags,
//! `false`, `true`, `null` and `undefined`. Floats and other simple values are
//! refused. Definite and indefinite lengths are both accepted, because genuine
//! Nitro documents from 2025 use indefinite-length maps.
//!
//! Strictness:
//! - every declared length is checked against the bytes that remain *before*
//!   anything is allocated, so no input can make the reader allocate more than
//!   the input's own size;
//! - nesting depth is bounded;
//! - duplicate map keys are refused;
//! - text strings must be valid UTF-8;
//! - a top-level item followed by anything is refused ([`CborError::TrailingBytes`]).
//!
//! Canonical (deterministic) encoding is *not* required: NSM does not emit it,
//! and signatures are always verified over the bytes as received.

use thiserror::Error;

/// Maximum nesting depth of arrays, maps and tags.
pub const MAX_DEPTH: usize = 16;

/// A decoded CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`.
    Negative(u64),
    /// Major type 2 (chunks of an indefinite string are concatenated).
    Bytes(Vec<u8>),
    /// Major type 3 (chunks of an indefinite string are concatenated).
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in the order received.
    Map(Vec<(Value, Value)>),
    /// Major type 6.
    Tag(u64, Box<Value>),
    /// Simple values 20 / 21.
    Bool(bool),
    /// Simple value 22.
    Null,
    /// Simple value 23.
    Undefined,
}

impl Value {
    /// The value as an `i128` if it is an integer.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Unsigned(n) => Some(i128::from(*n)),
            Value::Negative(n) => Some(-1 - i128::from(*n)),
            _ => None,
        }
    }

    /// Looks up a text key in a map.
    pub fn map_get_text(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Text(t) if t == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A short name of the item's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unsigned(_) => "unsigned integer",
            Value::Negative(_) => "negative integer",
            Value::Bytes(_) => "byte string",
            Value::Text(_) => "text string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Tag(_, _) => "tag",
            Value::Bool(_) => "bool",
            Value::Null => "null",
            Value::Undefined => "undefined",
        }
    }
}

/// Why a byte string is not acceptable CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
                // every element takes at least one byte
                let n = self.len_within(arg)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(v))
            }
            5 => {
                // every entry takes at least two bytes
                let n = self.len_within(arg.saturating_mul(2))? / 2;
                let mut entries: Vec<(Value, Value)> = Vec::with_capacity(n);
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

/// A minimal CBOR writer (definite lengths, shortest heads).
#[derive(Debug, Default, Clone)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.out.push(m | arg as u8);
        } else if let Ok(b) = u8::try_from(arg) {
            self.out.push(m | 24);
            self.out.push(b);
        } else if let Ok(s) = u16::try_from(arg) {
            self.out.push(m | 25);
            self.out.extend_from_slice(&s.to_be_bytes());
        } else if let Ok(w) = u32::try_from(arg) {
            self.out.push(m | 26);
            self.out.extend_from_slice(&w.to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    /// Writes an unsigned integer.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n);
        self
    }

    /// Writes a signed integer.
    pub fn int(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            self.head(0, n.unsigned_abs());
        } else {
            self.head(1, (-1 - n).unsigned_abs());
        }
        self
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.out.extend_from_slice(b);
        self
    }

    /// Writes a text string.
    pub fn text(&mut self, t: &str) -> &mut Self {
        self.head(3, t.len() as u64);
        self.out.extend_from_slice(t.as_bytes());
        self
    }

    /// Starts an array of `n` items.
    pub fn array(&mut self, n: usize) -> &mut Self {
        self.head(4, n as u64);
        self
    }

    /// Starts a map of `n` entries.
    pub fn map(&mut self, n: usize) -> &mut Self {
        self.head(5, n as u64);
        self
    }

    /// Writes a tag head.
    pub fn tag(&mut self, t: u64) -> &mut Self {
        self.head(6, t);
        self
    }

    /// Writes `true` / `false`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.out.push(if b { 0xf5 } else { 0xf4 });
        self
    }

    /// Writes `null`.
    pub fn null(&mut self) -> &mut Self {
        self.out.push(0xf6);
        self
    }

    /// Writes a byte string or `null`.
    pub fn opt_bytes(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            Some(b) => self.bytes(b),
            None => self.null(),
        }
    }

    /// Appends already-encoded CBOR.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.out.extend_from_slice(encoded);
        self
    }

    /// Encodes any [`Value`] (definite lengths).
    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Unsigned(n) => self.head(0, *n),
            Value::Negative(n) => self.head(1, *n),
            Value::Bytes(b) => {
                self.bytes(b);
            }
            Value::Text(t) => {
                self.text(t);
            }
            Value::Array(items) => {
                self.array(items.len());
                for i in items {
                    self.value(i);
                }
            }
            Value::Map(entries) => {
                self.map(entries.len());
                for (k, val) in entries {
                    self.value(k);
                    self.value(val);
                }
            }
            Value::Tag(t, inner) => {
                self.tag(*t);
                self.value(inner);
            }
            Value::Bool(b) => {
                self.bool(*b);
            }
            Value::Null => {
                self.null();
            }
            Value::Undefined => self.out.push(0xf7),
        }
        self
    }
}

/// Encodes one value.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.value(v);
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn integers_and_strings() {
        assert_eq!(decode(&hex("00")).unwrap(), Value::Unsigned(0));
        assert_eq!(decode(&hex("1903e8")).unwrap(), Value::Unsigned(1000));
        assert_eq!(decode(&hex("3822")).unwrap().as_int(), Some(-35));
        assert_eq!(decode(&hex("1bffffffffffffffff")).unwrap(), Value::Unsigned(u64::MAX));
        assert_eq!(decode(&hex("4401020304")).unwrap(), Value::Bytes(vec![1, 2, 3, 4]));
        assert_eq!(decode(&hex("6161")).unwrap(), Value::Text("a".into()));
    }

    #[test]
    fn indefinite_lengths_accepted() {
        // {_ "a": 1, "b": [_ 2, 3]}
        let v = decode(&hex("bf61610161629f0203ffff")).unwrap();
        assert_eq!(v.map_get_text("a"), Some(&Value::Unsigned(1)));
        // (_ h'0102', h'03')
        assert_eq!(decode(&hex("5f42010241 03ff".replace(' ', "").as_str())).unwrap(), Value::Bytes(vec![1, 2, 3]));
        // (_ "ab", "c")
        assert_eq!(decode(&hex("7f62616261 63ff".replace(' ', "").as_str())).unwrap(), Value::Text("abc".into()));
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(decode(&hex("19 03".replace(' ', "").as_str())), Err(CborError::Truncated));
        assert_eq!(decode(&hex("bf6161")), Err(CborError::Truncated));
        assert_eq!(decode(&[]), Err(CborError::Truncated));
    }

    #[test]
    fn rejects_trailing() {
        assert_eq!(decode(&hex("0000")), Err(CborError::TrailingBytes(1)));
    }

    #[test]
    fn rejects_duplicate_keys() {
        assert_eq!(decode(&hex("a2616101616102")), Err(CborError::DuplicateKey));
        assert_eq!(decode(&hex("bf616101616102ff")), Err(CborError::DuplicateKey));
        assert_eq!(decode(&hex("a201010102")), Err(CborError::DuplicateKey));
    }

    #[test]
    fn rejects_huge_lengths_without_allocating() {
        assert!(matches!(decode(&hex("5bffffffffffffffff")), Err(CborError::LengthTooLarge { .. })));
        assert!(matches!(decode(&hex("9bffffffffffffffff")), Err(CborError::LengthTooLarge { .. })));
        assert!(matches!(decode(&hex("bb7fffffffffffffff")), Err(CborError::LengthTooLarge { .. })));
        assert!(matches!(decode(&hex("450102")), Err(CborError::LengthTooLarge { .. })));
    }

    #[test]
    fn rejects_deep_nesting() {
        let v = vec![0x81u8; MAX_DEPTH + 2];
        let mut v = v;
        v.push(0);
        assert_eq!(decode(&v), Err(CborError::TooDeep));
    }

    #[test]
    fn rejects_bad_utf8_and_reserved_and_floats() {
        assert_eq!(decode(&hex("62c328")), Err(CborError::InvalidUtf8));
        assert_eq!(decode(&hex("1c")), Err(CborError::Reserved(28)));
        assert_eq!(decode(&hex("f93c00")), Err(CborError::Unsupported(25)));
        assert_eq!(decode(&hex("f90014")), Err(CborError::Unsupported(25)));
        assert_eq!(decode(&hex("f814")), Err(CborError::Unsupported(24)));
        assert_eq!(decode(&hex("f0")), Err(CborError::Unsupported(16)));
    }

    #[test]
    fn rejects_breaks_and_bad_chunks() {
        assert_eq!(decode(&hex("ff")), Err(CborError::UnexpectedBreak));
        assert_eq!(decode(&hex("5f6161ff")), Err(CborError::BadChunk));
        assert_eq!(decode(&hex("1f")), Err(CborError::IndefiniteNotAllowed(0)));
        assert_eq!(decode(&hex("df00")), Err(CborError::IndefiniteNotAllowed(6)));
    }

    #[test]
    fn writer_round_trips() {
        let v = Value::Map(vec![
            (Value::Unsigned(1), Value::Negative(34)),
            (Value::Text("x".into()), Value::Array(vec![Value::Bytes(vec![0; 300]), Value::Null, Value::Bool(true)])),
            (Value::Unsigned(70000), Value::Tag(18, Box::new(Value::Unsigned(u64::MAX)))),
        ]);
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        let mut w = Writer::new();
        w.int(-35);
        assert_eq!(w.into_bytes(), vec![0x38, 0x22]);
    }
}
