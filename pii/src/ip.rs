//! IP addresses. IPv4 is a dotted quad of decimal octets (no leading zeros), standing
//! alone. A four-part version string (`1.2.3.4`) cannot be told apart by shape, so a quad
//! is taken as an address unless its context says version: a `v` prefix, a suffix like
//! `-beta`, a preceding word such as "version" or "build", or a version-like column name.
//! IPv6 candidates are parsed by [`std::net::Ipv6Addr`].

use std::net::Ipv6Addr;

/// Words that, just before a quad, make it a version or section number.
const VERSION_WORDS: &[&str] = &[
    "version", "ver", "v", "build", "release", "firmware", "fw", "rev", "revision", "section", "sec", "clause",
    "chapter", "para", "§",
];

pub(crate) fn detect(s: &str, version_column: bool) -> bool {
    (!version_column && has_ipv4(s)) || has_ipv6(s)
}

fn has_ipv4(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit()
            || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.' || b[i - 1] == b'_'))
        {
            i += 1;
            continue;
        }
        let len = b[i..].iter().position(|&c| !(c.is_ascii_digit() || c == b'.')).unwrap_or(b.len() - i);
        let mut run = &b[i..i + len];
        if let Some(r) = run.strip_suffix(b".") {
            run = r; // end of a sentence
        }
        let end = i + run.len();
        if is_quad(run) && !version_context(b, i, end) {
            return true;
        }
        i += len.max(1);
    }
    false
}

fn is_quad(run: &[u8]) -> bool {
    let parts: Vec<&[u8]> = run.split(|&c| c == b'.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && !(p.len() > 1 && p[0] == b'0') && crate::text::num(p) <= 255)
}

fn version_context(b: &[u8], start: usize, end: usize) -> bool {
    // A glued suffix: `1.2.3.4a`, `1.2.3.4-beta`, `1.2.3.4+build`.
    let suffix = match b.get(end) {
        Some(c) if c.is_ascii_alphabetic() => true,
        Some(b'-' | b'+' | b'_') => b.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
        _ => false,
    };
    if suffix {
        return true;
    }
    // The word right before, `v1.2.3.4` included.
    let before = std::str::from_utf8(&b[..start]).unwrap_or("");
    let word = before
        .trim_end_matches([' ', ':', '=', '#'])
        .rsplit(|c: char| !c.is_alphanumeric() && c != '§')
        .next()
        .unwrap_or("");
    VERSION_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

fn has_ipv6(s: &str) -> bool {
    s.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '(' | ')' | '<' | '>' | '[' | ']' | '=' | '/' | '|')
    })
    .any(|t| {
        let t = t.trim_end_matches('.');
        let t = t.split('%').next().unwrap_or(t); // zone index
        t.matches(':').count() >= 2
                && t.parse::<Ipv6Addr>().is_ok()
                // `::1`, `::` and hex words like `dead::beef` are not worth a finding.
                && t.split(':').filter(|g| !g.is_empty()).count() >= 2
                && t.bytes().any(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn ipv4() {
        for s in [
            "192.168.1.1",
            "10.0.0.254:8080",
            "client 203.0.113.7 connected",
            "8.8.8.8.",
            "172.16.0.0/12",
            "ip=1.2.3.4",
        ] {
            assert!(detect(s, false), "{s}");
        }
    }

    #[test]
    fn ipv6() {
        for s in [
            "2001:db8::1",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "fe80::1ff:fe23:4567:890a%eth0",
            "[2001:db8::ff00:42:8329]:443",
            "src=2001:db8:0:0:1:0:0:1",
            "::ffff:192.0.2.128",
        ] {
            assert!(detect(s, false), "{s}");
        }
    }

    #[test]
    fn not_ips() {
        for s in [
            "1.2.3",
            "256.1.1.1",
            "01.02.03.04",
            "3.14159",
            "1.2.3.4.5",
            "v1.2.3.4",
            "version 10.0.0.1",
            "Build: 4.2.0.1",
            "1.2.3.4-beta",
            "12.03.1985",
            "40.7128,-74.0060",
            "10:22:33",
            "00:1A:2B:3C:4D:5E",
            "::1",
            "dead::beef",
            "std::net::Ipv6Addr",
            "2023-10-15T10:22:00Z",
            "see section 1.2.3.4",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert!(!detect(s, false), "{s}");
        }
        assert!(!detect("1.2.3.4", true), "version column");
        assert!(detect("2001:db8::1", true), "IPv6 is never a version");
    }
}
