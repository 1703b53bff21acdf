//! Postcodes. Without a column hint only shapes that are hard to mistake fire: UK
//! postcodes (with a real area code and the inward letters the Royal Mail uses), Canadian
//! `A1A 1A1`, US ZIP+4 as a whole value, and a US ZIP after a state code in an address.
//! A bare number is a postcode only in a column whose name says so (zip, postal, plz…),
//! since quantities and ids have the same digits.

use crate::text::tokens;

/// UK postcode areas (the letters before the first digit).
const UK_AREAS: &[&str] = &[
    "AB", "AL", "B", "BA", "BB", "BD", "BF", "BH", "BL", "BN", "BR", "BS", "BT", "CA", "CB", "CF", "CH", "CM", "CO",
    "CR", "CT", "CV", "CW", "DA", "DD", "DE", "DG", "DH", "DL", "DN", "DT", "DY", "E", "EC", "EH", "EN", "EX", "FK",
    "FY", "G", "GL", "GU", "GY", "HA", "HD", "HG", "HP", "HR", "HS", "HU", "HX", "IG", "IM", "IP", "IV", "JE", "KA",
    "KT", "KW", "KY", "L", "LA", "LD", "LE", "LL", "LN", "LS", "LU", "M", "ME", "MK", "ML", "N", "NE", "NG", "NN",
    "NP", "NR", "NW", "OL", "OX", "PA", "PE", "PH", "PL", "PO", "PR", "RG", "RH", "RM", "S", "SA", "SE", "SG", "SK",
    "SL", "SM", "SN", "SO", "SP", "SR", "SS", "ST", "SW", "SY", "TA", "TD", "TF", "TN", "TQ", "TR", "TS", "TW", "UB",
    "W", "WA", "WC", "WD", "WF", "WN", "WR", "WS", "WV", "YO", "ZE",
];

/// US states, DC and territories, as written before a ZIP in an address.
const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
];

pub(crate) fn detect(s: &str, postcode_column: bool) -> bool {
    let owned;
    let s = if postcode_column {
        owned = s.to_ascii_uppercase();
        owned.as_str()
    } else {
        s
    };
    if zip_plus4(s) || (postcode_column && hinted_whole(s)) {
        return true;
    }
    let toks: Vec<&str> = tokens(s).map(|t| t.trim_end_matches('.')).collect();
    toks.windows(2)
        .any(|w| uk(w[0], w[1]) || canada(w[0], w[1]) || (US_STATES.contains(&w[0]) && (zip5(w[1]) || zip_plus4(w[1]))))
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|c| c.is_ascii_digit())
}

fn zip5(s: &str) -> bool {
    digits(s, 5) && s != "00000"
}

fn zip_plus4(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| zip5(a) && digits(b, 4))
}

/// Shapes accepted only in a postcode column: 4–7 digits (most of the world), and the
/// punctuated or lettered forms of NL `1234 AB`, PL `12-345`, PT `1234-567`, JP `123-4567`,
/// SE/CZ `123 45`, plus UK and Canadian codes written without their space.
fn hinted_whole(s: &str) -> bool {
    let b = s.as_bytes();
    let all_digits = |x: &[u8]| !x.is_empty() && x.iter().all(u8::is_ascii_digit);
    if all_digits(b) {
        return (4..=7).contains(&b.len()) && b.iter().any(|&c| c != b'0');
    }
    if let Some((x, y)) = s.split_once([' ', '-']) {
        let (xb, yb) = (x.as_bytes(), y.as_bytes());
        let nl =
            xb.len() == 4 && all_digits(xb) && xb[0] != b'0' && yb.len() == 2 && yb.iter().all(u8::is_ascii_uppercase);
        let split =
            all_digits(xb) && all_digits(yb) && matches!((xb.len(), yb.len()), (2, 3) | (4, 3) | (3, 4) | (3, 2));
        if nl || split {
            return true;
        }
    }
    (s.len() >= 5 && s.len() <= 7 && s.is_char_boundary(s.len() - 3) && {
        let (out, inw) = s.split_at(s.len() - 3);
        uk(out, inw)
    }) || (s.len() == 6 && canada(&s[..3], &s[3..]))
}

/// Outward code (area letters + district) and inward code (digit + two letters, never
/// C I K M O V), e.g. `SW1A 1AA`, `M1 1AE`, `B33 8TH`.
fn uk(out: &str, inw: &str) -> bool {
    if out == "GIR" && inw == "0AA" {
        return true;
    }
    let ib = inw.as_bytes();
    let inward = ib.len() == 3
        && ib[0].is_ascii_digit()
        && ib[1..].iter().all(|c| c.is_ascii_uppercase() && !b"CIKMOV".contains(c));
    if !inward {
        return false;
    }
    let ob = out.as_bytes();
    let area_len = ob.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if !(1..=2).contains(&area_len) || !UK_AREAS.contains(&&out[..area_len]) {
        return false;
    }
    match &ob[area_len..] {
        [d] | [d, b'0'..=b'9'] => d.is_ascii_digit(),
        [d, l] => d.is_ascii_digit() && l.is_ascii_uppercase(),
        _ => false,
    }
}

/// `K1A 0B1`: letters from the Canada Post alphabet (no D F I O Q U; W and Z not first).
fn canada(fsa: &str, ldu: &str) -> bool {
    let ok =
        |c: u8, first: bool| c.is_ascii_uppercase() && !b"DFIOQU".contains(&c) && !(first && (c == b'W' || c == b'Z'));
    let (f, l) = (fsa.as_bytes(), ldu.as_bytes());
    f.len() == 3
        && l.len() == 3
        && ok(f[0], true)
        && f[1].is_ascii_digit()
        && ok(f[2], false)
        && l[0].is_ascii_digit()
        && ok(l[1], false)
        && l[2].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn unhinted() {
        for s in [
            "SW1A 1AA",
            "M1 1AE",
            "B33 8TH",
            "EC1A 1BB",
            "10 Downing Street, London SW1A 2AA",
            "K1A 0B1",
            "Ottawa ON K1A 0B1",
            "62704-1234",
            "Springfield, IL 62704",
            "1600 Pennsylvania Ave NW, Washington, DC 20500-0003",
        ] {
            assert!(detect(s, false), "{s}");
        }
        for s in [
            "62704",
            "SW1A1AA",
            "QA1 1AA",  // no area Q
            "SW1A 1CA", // C never in the inward code
            "AB12 3CD",
            "D1A 0B1", // D never in a Canadian code
            "A1B2C3",
            "12345-678",
            "00000-0000",
            "XX 62704",
            "1234 AB",
        ] {
            assert!(!detect(s, false), "{s}");
        }
    }

    #[test]
    fn hinted() {
        for s in [
            "62704", "02139", "8001", "1011 AB", "00-950", "1000-001", "100-0001", "114 55", "sw1a1aa", "K1A0B1",
            "560001",
        ] {
            assert!(detect(s, true), "{s}");
        }
        for s in ["N/A", "0000", "123", "12345678", "Leeds", "1011 A"] {
            assert!(!detect(s, true), "{s}");
        }
    }
}
