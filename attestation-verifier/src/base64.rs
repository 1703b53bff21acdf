//! Base64 decoding and raw/base64/hex input detection (for the CLI and PEM).

/// Decodes standard or URL-safe base64; padding optional; ASCII whitespace ignored.
/// Returns `None` on any other character or an impossible length.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut nbits = 0u32;
    let mut padding = 0usize;
    let mut count = 0usize;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None; // data after padding
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        count += 1;
        acc = (acc << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    if count % 4 == 1 || padding > 2 || (padding > 0 && !(count + padding).is_multiple_of(4)) {
        return None;
    }
    Some(out)
}

/// How input bytes were encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEncoding {
    /// Used as is.
    Raw,
    /// Hex text (whitespace allowed).
    Hex,
    /// Base64 text (standard or URL-safe, whitespace allowed).
    Base64,
}

/// Detects hex or base64 text and decodes it; anything else is raw bytes.
///
/// Text is recognised only if every byte is printable ASCII or whitespace:
/// all hex digits with an even count → hex; otherwise valid base64 → base64.
pub fn decode_auto(input: &[u8]) -> (Vec<u8>, InputEncoding) {
    let texty = !input.is_empty() && input.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if texty {
        let compact: Vec<u8> = input.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        let body = compact.strip_prefix(b"0x").unwrap_or(compact.as_slice());
        if !body.is_empty() && body.len().is_multiple_of(2) && body.iter().all(u8::is_ascii_hexdigit) {
            if let Ok(v) = hex::decode(body) {
                return (v, InputEncoding::Hex);
            }
        }
        if let Ok(s) = std::str::from_utf8(&compact) {
            if let Some(v) = decode(s) {
                if !v.is_empty() {
                    return (v, InputEncoding::Base64);
                }
            }
        }
    }
    (input.to_vec(), InputEncoding::Raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("Zg==").unwrap(), b"f");
        assert_eq!(decode("Zm8=").unwrap(), b"fo");
        assert_eq!(decode("Zm9v").unwrap(), b"foo");
        assert_eq!(decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("Z").is_none());
        assert!(decode("Zm=9").is_none());
        assert!(decode("Zm9v!").is_none());
        assert!(decode("Zg===").is_none());
    }

    #[test]
    fn detection() {
        assert_eq!(decode_auto(b"0a0B\n"), (vec![0x0a, 0x0b], InputEncoding::Hex));
        assert_eq!(decode_auto(b"Zm9vYmFy"), (b"foobar".to_vec(), InputEncoding::Base64));
        assert_eq!(decode_auto(&[0x84, 0x44, 0xa1]), (vec![0x84, 0x44, 0xa1], InputEncoding::Raw));
        assert_eq!(decode_auto(b"ab!c"), (b"ab!c".to_vec(), InputEncoding::Raw));
    }
}
