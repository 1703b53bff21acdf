//! Phone numbers: North American (NANP) numbers written with separators, international
//! numbers in E.164 form (`+` country code, 8–15 digits), and a whole value of exactly
//! ten digits that is a valid NANP number. National formats of other countries without
//! `+` (`020 7946 0958`) are not matched: without the country code they are digit groups
//! like any other.

use crate::text::{digit_at, digits, ends_clean, num, starts_clean};

pub(crate) fn detect(b: &[u8]) -> bool {
    whole_ten_digits(b) || (0..b.len()).any(|i| nanp_at(b, i) || e164_at(b, i))
}

/// Area codes start with 2–9 and are never N11 (211, 911: service codes).
fn valid_area(a: &[u8]) -> bool {
    a[0] >= b'2' && !(a[1] == b'1' && a[2] == b'1')
}

fn whole_ten_digits(b: &[u8]) -> bool {
    b.len() == 10 && b.iter().all(u8::is_ascii_digit) && valid_area(&b[..3]) && b[3] >= b'2'
}

fn is_sep(c: Option<&u8>) -> bool {
    matches!(c, Some(b'-' | b'.' | b' '))
}

/// `(555) 867-5309`, `555-867-5309`, `555.867.5309`, `555 867 5309`, with an optional
/// `+1` / `1` prefix.
fn nanp_at(b: &[u8], start: usize) -> bool {
    if !starts_clean(b, start) {
        return false;
    }
    let mut i = start;
    if b[i] == b'+' {
        if b.get(i + 1) != Some(&b'1') {
            return false;
        }
        i += 2;
        if is_sep(b.get(i)) {
            i += 1;
        }
    } else if b[i] == b'1' && is_sep(b.get(i + 1)) && (digit_at(b, i + 2) || b.get(i + 2) == Some(&b'(')) {
        i += 2;
    }
    let area;
    if b.get(i) == Some(&b'(') {
        if !(digits(b, i + 1, 3) && b.get(i + 4) == Some(&b')')) {
            return false;
        }
        area = i + 1;
        i += 5;
        if matches!(b.get(i), Some(b' ' | b'-')) {
            i += 1;
        }
    } else {
        if !(digits(b, i, 3) && is_sep(b.get(i + 3))) {
            return false;
        }
        area = i;
        i += 4;
    }
    digits(b, i, 3)
        && is_sep(b.get(i + 3))
        && digits(b, i + 4, 4)
        && ends_clean(b, i + 8)
        && valid_area(&b[area..area + 3])
        && b[i] >= b'2'
}

/// `+<country code><subscriber>` with 8–15 digits in all, grouped by single spaces,
/// dashes, dots or a parenthesised group (`+44 (0)20 7946 0958`: the `(0)` trunk prefix
/// is not part of the number).
fn e164_at(b: &[u8], i: usize) -> bool {
    if b[i] != b'+'
        || (i > 0 && b[i - 1].is_ascii_alphanumeric())
        || !b.get(i + 1).is_some_and(|c| (b'1'..=b'9').contains(c))
    {
        return false;
    }
    let (mut j, mut n, mut seps, mut dots) = (i + 1, 0usize, 0, 0);
    loop {
        match b.get(j) {
            Some(c) if c.is_ascii_digit() => {
                n += 1;
                j += 1;
            }
            Some(&c @ (b' ' | b'-' | b'.')) if digit_at(b, j + 1) || b.get(j + 1) == Some(&b'(') => {
                seps += 1;
                dots += usize::from(c == b'.');
                j += 1;
            }
            Some(b'(') => {
                let Some(len) = b[j + 1..].iter().take(5).position(|&c| c == b')') else { break };
                let inner = &b[j + 1..j + 1 + len];
                if inner.is_empty() || !inner.iter().all(u8::is_ascii_digit) {
                    break;
                }
                if num(inner) != 0 {
                    n += inner.len();
                }
                seps += 1;
                j += len + 2;
                if matches!(b.get(j), Some(b' ' | b'-')) && digit_at(b, j + 1) {
                    j += 1;
                }
            }
            _ => break,
        }
        if n > 15 {
            return false;
        }
    }
    // One dot is a signed decimal (`+12345678.90`), not a grouping.
    if dots == 1 || !ends_clean(b, j) {
        return false;
    }
    let min = if seps == 0 { 10 } else { 8 };
    (min..=15).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::detect;

    fn d(s: &str) -> bool {
        detect(s.as_bytes())
    }

    #[test]
    fn nanp() {
        for s in [
            "555-867-5309",
            "(555) 867-5309",
            "(555)867-5309",
            "+1 555.867.5309",
            "+1 (555) 867-5309",
            "1-555-867-5309",
            "call 555 867 5309 after 6",
            "5558675309",
            "Tel: 212-555-0123.",
        ] {
            assert!(d(s), "{s}");
        }
    }

    #[test]
    fn e164() {
        for s in [
            "+44 20 7946 0958",
            "+447700900123",
            "+49 (0)30 1234567",
            "+33 1 23 45 67 89",
            "+91 98765 43210",
            "+354 555 1234",
        ] {
            assert!(d(s), "{s}");
        }
    }

    #[test]
    fn not_phones() {
        for s in [
            "123-456-7890", // area code cannot start with 1
            "911-555-1234", // N11 area code
            "555-155-1234", // exchange cannot start with 1
            "1234567890",   // unix-timestamp-like: area starts with 1
            "0412345678",
            "55586753090", // 11 digits
            "555-867-53090",
            "61234.57",
            "+12345678.90", // signed amount
            "+1234567",     // too short
            "+05:30",
            "2023-10-15T10:00:00+01:00",
            "+40.7128, -74.0060",
            "4111 1111 1111 1111",
            "ID555-867-5309",
        ] {
            assert!(!d(s), "{s}");
        }
    }
}
