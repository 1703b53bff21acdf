//! US social security numbers written `ddd-dd-dddd` or `ddd dd dddd`. A bare 9-digit
//! number is never called an SSN: account and routing numbers look the same.

use crate::text::{digits, ends_clean, num, starts_clean};

pub(crate) fn detect(b: &[u8]) -> bool {
    b.len() >= 11 && (0..=b.len() - 11).any(|i| ssn_at(b, i))
}

fn ssn_at(b: &[u8], i: usize) -> bool {
    let sep = b[i + 3];
    if !matches!(sep, b'-' | b' ') || b[i + 6] != sep {
        return false;
    }
    if !(digits(b, i, 3) && digits(b, i + 4, 2) && digits(b, i + 7, 4)) {
        return false;
    }
    // With spaces as separators a neighbouring number would run into this one.
    let spaced_neighbour = sep == b' '
        && ((i >= 2 && b[i - 1] == b' ' && b[i - 2].is_ascii_digit())
            || (b.get(i + 11) == Some(&b' ') && b.get(i + 12).is_some_and(u8::is_ascii_digit)));
    if !starts_clean(b, i) || !ends_clean(b, i + 11) || spaced_neighbour {
        return false;
    }
    valid_parts(num(&b[i..i + 3]), num(&b[i + 4..i + 6]), num(&b[i + 7..i + 11]))
}

/// The SSA never issues area 000, 666 or 900–999, group 00 or serial 0000.
fn valid_parts(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> bool {
        detect(s.as_bytes())
    }

    #[test]
    fn valid_numbers() {
        for s in ["123-45-6789", "ssn 536 22 1234 on file", "SSN:219-09-9999", "(536-22-1234)"] {
            assert!(d(s), "{s}");
        }
    }

    #[test]
    fn invalid_ranges_and_shapes() {
        for s in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "987-65-4321",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "1123-45-6789",
            "123-45-67890",
            "123-45 6789",
            "A123-45-6789",
            "12 123 45 6789",
            "123-45-6789.5",
        ] {
            assert!(!d(s), "{s}");
        }
    }
}
