//! The small subset of CBOR (RFC 8949) that the EIF signature section uses.
//!
//! The encoder writes shortest-form heads only. The decoder works on a borrowed slice,
//! accepts definite lengths only, limits nesting depth, and never reserves memory from a
//! declared length: every element it stores has been read from the input first, so its
//! allocations are bounded by the input size.

/// Major types.
pub const MAJOR_UINT: u8 = 0;
pub const MAJOR_NINT: u8 = 1;
pub const MAJOR_BYTES: u8 = 2;
pub const MAJOR_TEXT: u8 = 3;
pub const MAJOR_ARRAY: u8 = 4;
pub const MAJOR_MAP: u8 = 5;
pub const MAJOR_TAG: u8 = 6;
pub const MAJOR_SIMPLE: u8 = 7;

const MAX_DEPTH: usize = 16;

/// Appends a shortest-form head.
pub fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.push(m | 24);
        out.push(n as u8);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, MAJOR_BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

pub fn text(out: &mut Vec<u8>, s: &str) {
    head(out, MAJOR_TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A byte vector the way serde_cbor writes a Rust `Vec<u8>` without `serde_bytes`:
/// an array of unsigned integers, one per byte.
pub fn u8_array(out: &mut Vec<u8>, b: &[u8]) {
    head(out, MAJOR_ARRAY, b.len() as u64);
    for &x in b {
        head(out, MAJOR_UINT, x as u64);
    }
}

/// A decoded CBOR item borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Uint(u64),
    /// -1 - n
    Nint(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Tag(u64, Box<Value<'a>>),
    Bool(bool),
    Null,
}

impl<'a> Value<'a> {
    /// Looks up a text key in a map.
    pub fn map_get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Text(t) if *t == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A byte field written either as a byte string or as an array of integers 0..=255.
    pub fn as_byte_vec(&self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b.to_vec()),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Uint(n) => u8::try_from(*n).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// Why a CBOR item could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("CBOR truncated at offset {0}")]
    Truncated(usize),
    #[error("CBOR item at offset {0} uses an unsupported encoding (indefinite length, reserved info or float)")]
    Unsupported(usize),
    #[error("CBOR text at offset {0} is not UTF-8")]
    BadUtf8(usize),
    #[error("CBOR nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("{0} trailing bytes after the CBOR item")]
    TrailingBytes(usize),
}

/// Decodes exactly one item spanning the whole input.
pub fn decode_all(input: &[u8]) -> Result<Value<'_>, CborError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.item(0)?;
    if d.pos != input.len() {
        return Err(CborError::TrailingBytes(input.len() - d.pos));
    }
    Ok(v)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len()).ok_or(CborError::Truncated(self.pos))?;
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arg(&mut self, info: u8, at: usize) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => info as u64,
            24 => self.take(1)?[0] as u64,
            25 => {
                let b = self.take(2)?;
                u16::from_be_bytes([b[0], b[1]]) as u64
            }
            26 => {
                let b = self.take(4)?;
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_be_bytes(a)
            }
            _ => return Err(CborError::Unsupported(at)),
        })
    }

    fn len(&mut self, info: u8, at: usize) -> Result<usize, CborError> {
        let n = self.arg(info, at)?;
        // Anything longer than the rest of the input cannot be complete.
        usize::try_from(n).ok().filter(|&n| n <= self.input.len() - self.pos).ok_or(CborError::Truncated(at))
    }

    fn item(&mut self, depth: usize) -> Result<Value<'a>, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let at = self.pos;
        let ib = self.take(1)?[0];
        let (major, info) = (ib >> 5, ib & 0x1f);
        match major {
            MAJOR_UINT => Ok(Value::Uint(self.arg(info, at)?)),
            MAJOR_NINT => Ok(Value::Nint(self.arg(info, at)?)),
            MAJOR_BYTES => {
                let n = self.len(info, at)?;
                Ok(Value::Bytes(self.take(n)?))
            }
            MAJOR_TEXT => {
                let n = self.len(info, at)?;
                let b = self.take(n)?;
                std::str::from_utf8(b).map(Value::Text).map_err(|_| CborError::BadUtf8(at))
            }
            MAJOR_ARRAY => {
                let n = self.len(info, at)?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            MAJOR_MAP => {
                let n = self.len(info, at)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    let k = self.item(depth + 1)?;
                    let v = self.item(depth + 1)?;
                    entries.push((k, v));
                }
                Ok(Value::Map(entries))
            }
            MAJOR_TAG => {
                let t = self.arg(info, at)?;
                Ok(Value::Tag(t, Box::new(self.item(depth + 1)?)))
            }
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 | 23 => Ok(Value::Null),
                _ => Err(CborError::Unsupported(at)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest_form() {
        let mut v = Vec::new();
        head(&mut v, MAJOR_ARRAY, 855);
        assert_eq!(v, [0x99, 0x03, 0x57]);
        let mut v = Vec::new();
        u8_array(&mut v, &[0x2d, 5]);
        assert_eq!(v, [0x82, 0x18, 0x2d, 0x05]);
    }

    #[test]
    fn round_trip_and_lookup() {
        let mut v = Vec::new();
        head(&mut v, MAJOR_MAP, 2);
        text(&mut v, "a");
        u8_array(&mut v, &[1, 200, 24]);
        text(&mut v, "b");
        bytes(&mut v, b"xyz");
        let d = decode_all(&v).unwrap();
        assert_eq!(d.map_get("a").unwrap().as_byte_vec().unwrap(), vec![1, 200, 24]);
        assert_eq!(d.map_get("b").unwrap().as_byte_vec().unwrap(), b"xyz".to_vec());
        assert!(d.map_get("c").is_none());
    }

    #[test]
    fn hostile_lengths_fail_cleanly() {
        // array claiming 2^64-1 elements
        let v = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode_all(&v), Err(CborError::Truncated(0))));
        // byte string longer than input
        assert!(decode_all(&[0x5a, 0, 0, 1, 0, 1]).is_err());
        // deep nesting
        let deep = vec![0x81u8; 1000];
        assert!(decode_all(&deep).is_err());
        // indefinite length
        assert!(matches!(decode_all(&[0x9f, 0xff]), Err(CborError::Unsupported(0))));
        assert!(matches!(decode_all(&[0x01, 0x02]), Err(CborError::TrailingBytes(1))));
        for n in 0..v.len() {
            let _ = decode_all(&v[..n]);
        }
    }
}
