//! Byte-level helpers shared by the digit-pattern detectors. Values are UTF-8, but every
//! pattern here is ASCII, and UTF-8 continuation bytes are never ASCII, so scanning bytes
//! cannot split a character into a false match.

pub(crate) fn digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// `n` ASCII digits starting at `i`.
pub(crate) fn digits(b: &[u8], i: usize, n: usize) -> bool {
    i + n <= b.len() && b[i..i + n].iter().all(u8::is_ascii_digit)
}

/// The decimal value of a short run of ASCII digits.
pub(crate) fn num(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |acc, &c| acc.saturating_mul(10).saturating_add(u32::from(c - b'0')))
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A pattern starting at `i` is a token of its own: not glued to a word, and not the tail
/// of a longer code such as `12-123-45-6789`, `3.123-45-6789` or `SKU-555-867-5309`.
pub(crate) fn starts_clean(b: &[u8], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    let p = b[i - 1];
    if is_word(p) {
        return false;
    }
    !(matches!(p, b'-' | b'.' | b'/') && i >= 2 && b[i - 2].is_ascii_alphanumeric())
}

/// A pattern ending before `end` is not continued by a word or by a separator and more digits.
pub(crate) fn ends_clean(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(b'-' | b'.' | b'/' | b',') => !digit_at(b, end + 1),
        Some(_) => true,
    }
}

/// Whitespace-free pieces of a value with surrounding punctuation removed, for the
/// detectors that look at words (dates in text, postcodes after a town name).
pub(crate) fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '"' | '<' | '>' | '|'))
        .map(|t| t.trim_matches(|c: char| matches!(c, '\'' | '`' | '*' | '!' | '?')))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let b = b"x 123-45-6789 y";
        assert!(starts_clean(b, 2) && ends_clean(b, 13));
        assert!(!starts_clean(b"a123", 1));
        assert!(!starts_clean(b"1-123", 2));
        assert!(!starts_clean(b"SKU-555", 4));
        assert!(!ends_clean(b"123.5", 3));
        assert!(ends_clean(b"123. Next", 3));
    }

    #[test]
    fn token_split() {
        let t: Vec<&str> = tokens("Leeds (LS1 4AP), UK; \"hi\"").collect();
        assert_eq!(t, ["Leeds", "LS1", "4AP", "UK", "hi"]);
    }
}
