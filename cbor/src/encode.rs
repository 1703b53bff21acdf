//! The canonical writer: shortest heads, definite lengths, entries in the order written.

use crate::Value;

/// The CBOR writer: RFC 8949 preferred serialization (the shortest head for every
/// argument, definite lengths only), items in the order they are written.
///
/// Containers are written as a head ([`Writer::array`], [`Writer::map`],
/// [`Writer::tag`]) followed by their items; the caller writes exactly as many items
/// as the head announces.
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

    /// Writes bytes the way serde_cbor writes a Rust `Vec<u8>` without `serde_bytes`:
    /// an array of unsigned integers, one per byte (the EIF signature section's layout).
    pub fn u8_array(&mut self, b: &[u8]) -> &mut Self {
        self.head(4, b.len() as u64);
        for &x in b {
            self.head(0, u64::from(x));
        }
        self
    }

    /// Writes `undefined`.
    pub fn undefined(&mut self) -> &mut Self {
        self.out.push(0xf7);
        self
    }

    /// Appends already-encoded CBOR (the caller vouches that it is one or more whole items).
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
            Value::Undefined => {
                self.undefined();
            }
        }
        self
    }
}

/// Encodes one value canonically (see [`Writer`]).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.value(v);
    w.into_bytes()
}
