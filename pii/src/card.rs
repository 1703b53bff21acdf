//! Payment card numbers: 13–19 digits, compact or grouped by spaces or dashes, with a
//! known issuer prefix and a length that issuer uses, passing the Luhn check. The prefix
//! rule is what keeps Luhn-valid order and tracking numbers out (one random number in
//! ten passes Luhn).

use std::ops::Range;

use crate::text::digit_at;

/// Longest digit run looked at; longer runs are not card numbers.
const MAX_DIGITS: usize = 19;

/// Card numbers in `b` outside `skip` (the spans of checksum-valid IBANs, whose digit
/// groups can pass for a card).
pub(crate) fn detect(b: &[u8], skip: &[Range<usize>]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || !start_ok(b, i) || skip.iter().any(|r| r.contains(&i)) {
            i += 1;
            continue;
        }
        // Groups of one run: (digits so far at the end of the group, end index).
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut ds = [0u8; MAX_DIGITS];
        let (mut n, mut j, mut sep) = (0usize, i, None);
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                if n < MAX_DIGITS {
                    ds[n] = b[j] - b'0';
                }
                n += 1;
                j += 1;
            }
            groups.push((n, j));
            let next_sep = b.get(j).copied().filter(|c| matches!(c, b' ' | b'-'));
            match next_sep {
                Some(c) if digit_at(b, j + 1) && sep.is_none_or(|s| s == c) && groups.len() < 8 => {
                    sep = Some(c);
                    j += 1;
                }
                _ => break,
            }
        }
        // The whole run, or a prefix of it ending at a space (`4111 ... 1111 12/27`).
        for k in (1..=groups.len()).rev() {
            let (nd, end) = groups[k - 1];
            let whole = k == groups.len();
            if (whole && end_ok(b, end) || !whole && sep == Some(b' '))
                && nd <= MAX_DIGITS
                && shape_ok(&groups[..k])
                && valid_number(&ds[..nd])
            {
                return true;
            }
        }
        i = j.max(i + 1);
    }
    false
}

/// Not glued to a word, a decimal point, a sign or a longer dashed number.
fn start_ok(b: &[u8], i: usize) -> bool {
    i == 0 || {
        let p = b[i - 1];
        !(p.is_ascii_alphanumeric()
            || matches!(p, b'_' | b'.' | b'+' | b',')
            || (matches!(p, b'-' | b'/') && i >= 2 && b[i - 2].is_ascii_digit()))
    }
}

fn end_ok(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => false,
        Some(b'.' | b',' | b'-' | b'/') => !digit_at(b, end + 1),
        _ => true,
    }
}

/// Compact, or groups of four with a shorter last group, or the 4-6-5 / 4-6-4 layout of
/// Amex and Diners.
fn shape_ok(groups: &[(usize, usize)]) -> bool {
    let lens: Vec<usize> = groups.iter().scan(0, |prev, &(n, _)| Some(n - std::mem::replace(prev, n))).collect();
    match lens.as_slice() {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn valid_number(d: &[u8]) -> bool {
    (13..=MAX_DIGITS).contains(&d.len()) && issuer_accepts(d) && luhn(d)
}

fn prefix(d: &[u8], k: usize) -> u32 {
    d[..k].iter().fold(0, |a, &x| a * 10 + u32::from(x))
}

/// Whether a known scheme issues numbers with this prefix and length.
fn issuer_accepts(d: &[u8]) -> bool {
    let len = d.len();
    let (p2, p3, p4) = (prefix(d, 2), prefix(d, 3), prefix(d, 4));
    let long = (16..=19).contains(&len);
    if d[0] == 4 {
        matches!(len, 13 | 16 | 19) // Visa
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        len == 16 // Mastercard
    } else if p2 == 34 || p2 == 37 {
        len == 15 // American Express
    } else if p4 == 6011
        || (644..=649).contains(&p3)
        || p2 == 65
        || p2 == 62
        || (3528..=3589).contains(&p4)
        || (2200..=2204).contains(&p4)
    {
        long // Discover, UnionPay, JCB, Mir
    } else if (300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39) {
        (14..=19).contains(&len) // Diners Club
    } else if matches!(p2, 50 | 56 | 57 | 58 | 67) || p4 == 6304 || p3 == 639 {
        (13..=19).contains(&len) // Maestro
    } else {
        false
    }
}

/// The Luhn (mod 10) check over digit values, rightmost digit being the check digit.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &x)| {
            let x = u32::from(x);
            if k % 2 == 1 {
                let y = 2 * x;
                y - if y > 9 { 9 } else { 0 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> bool {
        detect(s.as_bytes(), &[])
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().map(|c| c - b'0').collect()
    }

    #[test]
    fn luhn_published_test_numbers() {
        // Test numbers published by the card schemes and payment processors.
        for s in [
            "4111111111111111",
            "4012888888881881",
            "5555555555554444",
            "5105105105105100",
            "378282246310005",
            "371449635398431",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "2223003122003222",
            "79927398713",
        ] {
            assert!(luhn(&digits(s)), "{s}");
        }
        for s in ["4111111111111112", "79927398710", "378282246310006"] {
            assert!(!luhn(&digits(s)), "{s}");
        }
    }

    #[test]
    fn cards() {
        for s in [
            "4111 1111 1111 1111",
            "card=4111-1111-1111-1111;",
            "4111111111111111",
            "3782 822463 10005",
            "5555-5555-5555-4444",
            "paid with 6011111111111117 yesterday",
            "4111 1111 1111 1111 12/27",
            "4222222222222",
        ] {
            assert!(d(s), "{s}");
        }
    }

    #[test]
    fn not_cards() {
        for s in [
            "4111111111111112", // Luhn failure
            "411111111111",     // too short
            "9111111111111119", // no issuer starts with 9
            "1234567812345670", // Luhn-valid, no issuer
            "0000000000000000",
            "490154203237518", // IMEI: Luhn-valid, Visa prefix, but 15 digits
            "0.30010000000000003",
            "4111111111111111.5",
            "4111 1111 11 111111", // irregular grouping
            "SKU4111111111111111",
            "+4111111111111111",
            "41111111111111111111", // 20 digits
        ] {
            assert!(!d(s), "{s}");
        }
        let b = b"DE12 4111 1111 1111 1111 00";
        assert!(detect(b, &[]) && !detect(b, std::slice::from_ref(&(0..b.len()))));
    }
}
