//! Hand-written detectors for personal data that should never reach a sealed table
//! in the clear: email addresses, US social security numbers, phone numbers and payment
//! card numbers (Luhn-checked). They scan whole values and substrings of free text.
//!
//! They are deliberately conservative about digits: a bare 9-digit number is not called
//! an SSN and a bare number is called a phone number only when the whole value is one
//! (10 digits, or 11 starting with 1), so amounts and zip codes do not trip them.

/// A detector's name, as it appears in findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detector {
    Email,
    Ssn,
    Phone,
    CardNumber,
}

impl Detector {
    pub const ALL: [Detector; 4] = [Detector::Email, Detector::Ssn, Detector::Phone, Detector::CardNumber];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Ssn => "ssn",
            Detector::Phone => "phone",
            Detector::CardNumber => "card_number",
        }
    }
}

/// Which detectors fire on `value` (each at most once), as a bit set indexed like
/// [`Detector::ALL`].
pub fn scan(value: &str) -> [bool; 4] {
    let b = value.as_bytes();
    let mut hits = [false; 4];
    if b.contains(&b'@') {
        hits[0] = has_email(b);
    }
    // Every digit pattern needs at least 9 digits.
    if b.iter().filter(|c| c.is_ascii_digit()).count() >= 9 {
        hits[1] = has_ssn(b);
        hits[2] = has_phone(b);
        hits[3] = has_card(b);
    }
    hits
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

fn has_email(b: &[u8]) -> bool {
    for (at, _) in b.iter().enumerate().filter(|(_, &c)| c == b'@') {
        let local = b[..at].iter().rev().take_while(|&&c| is_local(c)).count();
        let domain_len = b[at + 1..].iter().take_while(|&&c| is_domain(c)).count();
        let domain = &b[at + 1..at + 1 + domain_len];
        let domain = domain.strip_suffix(b".").unwrap_or(domain);
        if local == 0 {
            continue;
        }
        let mut labels = domain.split(|&c| c == b'.');
        let first = labels.next().unwrap_or_default();
        let rest: Vec<&[u8]> = labels.collect();
        if first.is_empty() || rest.is_empty() || rest.iter().any(|l| l.is_empty()) {
            continue;
        }
        let tld = rest[rest.len() - 1];
        if tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            return true;
        }
    }
    false
}

fn digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// `n` digits starting at `i`.
fn digits(b: &[u8], i: usize, n: usize) -> bool {
    i + n <= b.len() && b[i..i + n].iter().all(u8::is_ascii_digit)
}

/// Not preceded by a digit (or a digit and a dash, which would extend a number).
fn starts_here(b: &[u8], i: usize) -> bool {
    i == 0 || !(b[i - 1].is_ascii_digit() || (b[i - 1] == b'-' && i >= 2 && b[i - 2].is_ascii_digit()))
}

/// Not followed by a digit, or by a separator and a digit.
fn ends_here(b: &[u8], end: usize) -> bool {
    !(digit_at(b, end) || (b.get(end) == Some(&b'-') && digit_at(b, end + 1)))
}

/// `ddd-dd-dddd` (also with spaces) standing alone.
fn has_ssn(b: &[u8]) -> bool {
    (0..b.len()).any(|i| {
        starts_here(b, i)
            && digits(b, i, 3)
            && matches!(b.get(i + 3), Some(b'-' | b' '))
            && digits(b, i + 4, 2)
            && b.get(i + 6) == b.get(i + 3)
            && digits(b, i + 7, 4)
            && ends_here(b, i + 11)
    })
}

/// `(ddd) ddd-dddd`, `ddd-ddd-dddd`, `ddd.ddd.dddd`, `ddd ddd dddd`, optionally with a
/// leading `+1` or `1`; or a whole value of 10 digits (11 starting with 1).
fn has_phone(b: &[u8]) -> bool {
    let whole = b.trim_ascii();
    if whole.iter().all(u8::is_ascii_digit)
        && (whole.len() == 10 && whole[0] >= b'2' || whole.len() == 11 && whole[0] == b'1' && whole[1] >= b'2')
    {
        return true;
    }
    let sep = |c: Option<&u8>| matches!(c, Some(b'-' | b'.' | b' '));
    (0..b.len()).any(|start| {
        if !starts_here(b, start) {
            return false;
        }
        let mut i = start;
        if b.get(i) == Some(&b'+') {
            i += 1;
        }
        if b.get(i) == Some(&b'1') && (sep(b.get(i + 1)) || b.get(i + 1) == Some(&b'(')) {
            i += if b.get(i + 1) == Some(&b'(') { 1 } else { 2 };
        } else if i != start {
            return false; // "+" must be followed by country code 1
        }
        // Area code.
        if b.get(i) == Some(&b'(') {
            if !(digits(b, i + 1, 3) && b.get(i + 4) == Some(&b')')) {
                return false;
            }
            i += 5;
            if sep(b.get(i)) {
                i += 1;
            }
        } else {
            if !(digits(b, i, 3) && sep(b.get(i + 3))) {
                return false;
            }
            i += 4;
        }
        digits(b, i, 3) && sep(b.get(i + 3)) && digits(b, i + 4, 4) && ends_here(b, i + 8)
    })
}

/// 13–19 digits, optionally grouped by single spaces or dashes, passing the Luhn check.
fn has_card(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        // A card number starts at a digit that does not continue a number or a decimal fraction.
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let mut ds = Vec::with_capacity(19);
        let mut j = i;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                ds.push(b[j] - b'0');
                j += 1;
            } else if matches!(b[j], b' ' | b'-') && digit_at(b, j + 1) && j > i {
                j += 1;
            } else {
                break;
            }
        }
        let decimal = b.get(j) == Some(&b'.') && digit_at(b, j + 1);
        if (13..=19).contains(&ds.len()) && !decimal && luhn(&ds) {
            return true;
        }
        i = j.max(i + 1);
    }
    false
}

fn luhn(ds: &[u8]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(v: &str) -> Vec<&'static str> {
        scan(v).iter().zip(Detector::ALL).filter(|(h, _)| **h).map(|(_, d)| d.name()).collect()
    }

    #[test]
    fn emails() {
        assert_eq!(hit("jane.doe+x@mail.example.com"), ["email"]);
        assert_eq!(hit("contact: bob@example.org."), ["email"]);
        assert!(hit("@handle").is_empty());
        assert!(hit("a@b").is_empty());
        assert!(hit("x@host.c0m").is_empty());
    }

    #[test]
    fn ssns() {
        assert_eq!(hit("123-45-6789"), ["ssn"]);
        assert_eq!(hit("ssn 078 05 1120 on file"), ["ssn"]);
        assert!(hit("1123-45-6789").is_empty());
        assert!(hit("123-45-67890").is_empty());
        assert!(hit("123456789").is_empty());
    }

    #[test]
    fn phones() {
        for p in ["555-867-5309", "(555) 867-5309", "+1 555.867.5309", "1-555-867-5309", "call 555 867 5309"] {
            assert_eq!(hit(p), ["phone"], "{p}");
        }
        assert_eq!(hit("5558675309"), ["phone"]);
        assert!(hit("61234.57").is_empty());
        assert!(hit("12345").is_empty());
        assert!(hit("1234567890123").is_empty() || hit("1234567890123") == ["card_number"]);
    }

    #[test]
    fn cards() {
        assert_eq!(hit("4111 1111 1111 1111"), ["card_number"]);
        assert_eq!(hit("card=4111-1111-1111-1111;"), ["card_number"]);
        assert_eq!(hit("4111111111111111"), ["card_number"]);
        assert!(hit("4111111111111112").is_empty(), "Luhn failure");
        assert!(hit("411111111111").is_empty(), "too short");
        // Float renderings are not card numbers.
        assert!(hit("0.30010000000000003").is_empty());
        assert!(hit("4111111111111111.5").is_empty());
    }

    #[test]
    fn ordinary_values_are_clean() {
        for v in ["0.4321", "500000", "1987", "02139", "021", "C00012345", "Jane Doe", "-12.5", "1e300"] {
            assert!(hit(v).is_empty(), "{v}: {:?}", hit(v));
        }
    }
}
