//! International bank account numbers (ISO 13616): a country code, two check digits and a
//! country-specific BBAN, compact or in groups of four, with the length the country uses
//! and the mod-97 check equal to 1. Upper case only, as printed and as exchanged.

/// IBAN length per country (SWIFT IBAN registry).
#[rustfmt::skip]
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16), (b"BG", 22),
    (b"BH", 22), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22), (b"CY", 28), (b"CZ", 24), (b"DE", 22),
    (b"DK", 18), (b"DO", 28), (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FO", 18), (b"FR", 27),
    (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HR", 21), (b"HU", 28),
    (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30), (b"KW", 30), (b"KZ", 20),
    (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21), (b"MC", 27), (b"MD", 24),
    (b"ME", 22), (b"MK", 19), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NL", 18), (b"NO", 15), (b"PK", 24),
    (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"SA", 24), (b"SC", 31),
    (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24),
    (b"TR", 26), (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20),
];

const MAX_LEN: usize = 34;

fn country_length(cc: &[u8]) -> Option<usize> {
    LENGTHS.iter().find(|(c, _)| c.as_slice() == cc).map(|&(_, n)| n)
}

/// Byte ranges of the IBANs in `b`.
pub(crate) fn spans(b: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 < b.len() {
        match iban_at(b, i) {
            Some(end) => {
                out.push(i..end);
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// The end of a valid IBAN starting at `i`.
fn iban_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    if !(b[i].is_ascii_uppercase()
        && b[i + 1].is_ascii_uppercase()
        && b[i + 2].is_ascii_digit()
        && b[i + 3].is_ascii_digit())
    {
        return None;
    }
    let len = country_length(&b[i..i + 2])?;
    let mut buf = [0u8; MAX_LEN];
    let (mut n, mut j) = (0, i);
    while n < len && j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            buf[n] = c;
            n += 1;
            j += 1;
        } else if c == b' ' && n % 4 == 0 && b.get(j + 1).is_some_and(u8::is_ascii_alphanumeric) {
            j += 1;
        } else {
            break;
        }
    }
    (n == len && !b.get(j).is_some_and(u8::is_ascii_alphanumeric) && checksum_ok(&buf[..n])).then_some(j)
}

/// ISO 7064 mod 97-10 as ISO 13616 applies it: move the first four characters to the end,
/// read letters as 10..35, and the number must be 1 mod 97. Check digits 00, 01 and 99
/// are never issued.
pub(crate) fn checksum_ok(iban: &[u8]) -> bool {
    let check = (iban[2] - b'0') * 10 + (iban[3] - b'0');
    if !(2..=98).contains(&check) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = (rem * if v >= 10 { 100 } else { 10 } + v) % 97;
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> bool {
        !spans(s.as_bytes()).is_empty()
    }

    #[test]
    fn published_examples() {
        // Examples from the SWIFT IBAN registry and ECBS documentation.
        for s in [
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
            "DE89 3704 0044 0532 0130 00",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91 ABNA 0417 1643 00",
            "BE68 5390 0754 7034",
            "CH93 0076 2011 6238 5295 7",
            "NO93 8601 1117 947",
            "ES91 2100 0418 4502 0005 1332",
            "IT60 X054 2811 1010 0000 0123 456",
            "pay to DE89370400440532013000 by Friday",
        ] {
            assert!(d(s), "{s}");
        }
        assert_eq!(spans(b"a GB82WEST12345698765432 b NO9386011117947"), [2..24, 27..42]);
    }

    #[test]
    fn rejects() {
        for s in [
            "GB82 WEST 1234 5698 7654 33", // check fails
            "GB28 WEST 1234 5698 7654 32", // transposed check digits
            "DE89 3704 0044 0532 0130 0",  // one short
            "DE89370400440532013000 1",    // fine, boundary is a space
            "XX89 3704 0044 0532 0130 00", // no such country
            "gb82 west 1234 5698 7654 32", // lower case
            "DE8937040044053201300099",    // runs on
            "ORDER DE89-3704-0044-0532-0130-00",
        ] {
            assert_eq!(d(s), s == "DE89370400440532013000 1", "{s}");
        }
    }
}
