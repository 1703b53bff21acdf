//! `local@domain.tld` anywhere in a value. ASCII only: internationalized addresses are
//! rare in tabular data and would need a much looser pattern.

/// Extensions that follow `@2x`-style asset names (`icon@2x.png`), which are not addresses.
const FILE_EXTENSIONS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"bmp", b"ico", b"pdf", b"txt", b"csv", b"zip", b"js", b"css",
    b"html", b"htm", b"json", b"xml", b"mp3", b"mp4", b"mov", b"tif", b"tiff", b"heic",
];

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-'!#$&*/=?^`{|}~".contains(&c)
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

pub(crate) fn detect(b: &[u8]) -> bool {
    (0..b.len()).filter(|&i| b[i] == b'@').any(|at| email_at(b, at))
}

fn email_at(b: &[u8], at: usize) -> bool {
    let start = b[..at].iter().rposition(|&c| !is_local(c)).map_or(0, |p| p + 1);
    // Quotes and slashes are legal in a local part but in running text they open the token.
    let local = b[start..at].trim_ascii_start();
    let local = &local[local.iter().position(|c| c.is_ascii_alphanumeric()).unwrap_or(local.len())..];
    if local.is_empty() || local.len() > 64 || local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return false;
    }
    let len = b[at + 1..].iter().position(|&c| !is_domain(c)).unwrap_or(b.len() - at - 1);
    let mut domain = &b[at + 1..at + 1 + len];
    // A sentence may end right after the address.
    while let Some(d) = domain.strip_suffix(b".") {
        domain = d;
    }
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let labels: Vec<&[u8]> = domain.split(|&c| c == b'.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| l.is_empty() || l.len() > 63 || l.starts_with(b"-") || l.ends_with(b"-"))
    {
        return false;
    }
    let tld = labels[labels.len() - 1];
    (2..=24).contains(&tld.len())
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !FILE_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e))
}

#[cfg(test)]
mod tests {
    use super::detect;

    fn d(s: &str) -> bool {
        detect(s.as_bytes())
    }

    #[test]
    fn addresses() {
        for s in [
            "jane.doe@example.com",
            "j_smith+news@mail.example.co.uk",
            "Contact: ops-team@sub.example.org.",
            "<info@example.io>",
            "mailto:a.b@example.travel",
            "O'Brien@example.ie",
        ] {
            assert!(d(s), "{s}");
        }
    }

    #[test]
    fn non_addresses() {
        for s in [
            "@handle",
            "user@localhost",
            "a@b",
            "x@host.c0m",
            "icon@2x.png",
            "foo@.com",
            "foo@bar..com",
            "foo@-bar.com",
            "jane..doe@example.com",
            "2 @ 3.99",
            "example.com",
            "name at example dot com",
        ] {
            assert!(!d(s), "{s}");
        }
    }
}
