//! Free text: prose that may contain anything, so no rule about its shape can vouch for
//! it. A value is free text when it reads like a sentence (at least four words, two of
//! them lower-case content words), has at least eight words, or is long (80+ characters,
//! four or more words). Names ("Maria de la Cruz"), addresses, titles ("The Lord of the
//! Rings") and category paths stay below the bar: their only lower-case words are
//! particles and function words.

/// Lower-case words that appear in names and titles, so do not make a value prose.
const SMALL_WORDS: &[&str] = &[
    "a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "for", "by", "with", "from", "de", "da", "di", "del",
    "der", "van", "von", "la", "le", "du", "dos", "bin", "al", "y", "und", "et",
];

pub(crate) const MIN_WORDS: usize = 4;
const MIN_PROSE_WORDS: usize = 2;
const MANY_WORDS: usize = 8;
const LONG_CHARS: usize = 80;

pub(crate) fn detect(s: &str) -> bool {
    let (mut words, mut prose) = (0, 0);
    for w in s.split_whitespace() {
        let w = w.trim_start_matches(|c: char| !c.is_alphanumeric());
        let Some(first) = w.chars().next() else { continue };
        if !first.is_alphabetic() {
            continue;
        }
        words += 1;
        let letters = w.chars().take_while(|c| c.is_alphabetic()).count();
        let bare = w.trim_end_matches(|c: char| !c.is_alphanumeric());
        if first.is_lowercase() && letters >= 2 && !SMALL_WORDS.contains(&bare) {
            prose += 1;
        }
    }
    (words >= MIN_WORDS && prose >= MIN_PROSE_WORDS)
        || words >= MANY_WORDS
        || (s.chars().count() >= LONG_CHARS && s.split_whitespace().count() >= MIN_WORDS)
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn prose() {
        for s in [
            "Customer called twice about the late delivery",
            "left package with neighbour at no. 12",
            "Please call me back on 555-867-5309 after 6pm",
            "PATIENT REPORTS MILD HEADACHE SINCE MONDAY, NO FEVER",
        ] {
            assert!(detect(s), "{s}");
        }
    }

    #[test]
    fn not_prose() {
        for s in [
            "Maria de la Cruz",
            "221B Baker Street, London NW1 6XE",
            "Home & Garden > Outdoor Furniture > Chairs",
            "Head of Customer Success",
            "In stock",
            "Net 30",
            "Left a voicemail",
            "SKU-12345-XL",
            "2023-10-15T10:22:00Z",
            "The Lord of the Rings",
            "Bank of America Plaza",
        ] {
            assert!(!detect(s), "{s}");
        }
    }
}
