//! Person names. Without a column hint: 2–4 capitalised words (plus particles and
//! initials) where the first word is a known given name or the last a known surname, and
//! no word marks a place, company or product ("Street", "Inc", "Hotel"). A name that is
//! also an everyday word (Green, Wood, Rose) counts only when the other end of the phrase
//! is a name too, so "Dark Green" is a colour and "Emma Green" a person. In a column whose
//! name says "name": any short alphabetic value that is not a placeholder.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::names_data::{GIVEN, SURNAMES, WORDLIKE};

/// Lower-case connecting words inside names: "Maria de la Cruz", "Ludwig van Beethoven".
const PARTICLES: &[&str] = &[
    "de", "da", "di", "del", "della", "der", "den", "van", "von", "la", "le", "du", "dos", "das", "ten", "ter", "bin",
    "binti", "ibn", "al", "el", "y",
];

const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev", "lord", "lady"];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"];

/// Words that make a capitalised phrase a place, organisation, product or label rather
/// than a person, even when another word in it is a name ("Victoria Station").
#[rustfmt::skip]
const NOT_NAME: &[&str] = &[
    // organisations
    "inc", "ltd", "llc", "llp", "plc", "gmbh", "ag", "sa", "corp", "corporation", "co", "company", "group",
    "holdings", "bank", "trust", "capital", "partners", "associates", "services", "solutions", "systems",
    "technologies", "tech", "labs", "foods", "motors", "airlines", "airways", "energy", "pharma", "media", "controls",
    "industries", "international", "global", "foundation", "society", "club", "team", "fc", "united", "council",
    "agency", "ministry", "department", "office", "store", "shop", "market", "bakery", "restaurant", "cafe", "bar",
    "pub", "studio", "studios", "records", "press", "publishing", "insurance", "financial", "consulting", "logistics",
    "health", "care", "clinic", "pharmacy", "dental", "medical", "law", "realty", "properties", "estates",
    // places
    "street", "st", "road", "rd", "avenue", "ave", "lane", "ln", "drive", "way", "court", "ct", "place", "square",
    "park", "gardens", "garden", "boulevard", "blvd", "terrace", "close", "crescent", "highway", "hwy", "hotel",
    "hospital", "university", "college", "school", "academy", "institute", "center", "centre", "museum", "library",
    "church", "cathedral", "station", "airport", "bridge", "river", "lake", "mountain", "mount", "valley", "beach",
    "island", "islands", "city", "county", "town", "village", "district", "region", "province", "state", "north",
    "south", "east", "new", "san", "santa", "saint", "fort", "port", "upper", "lower", "great", "los", "las", "bay",
    "house", "tower", "building", "plaza", "mall", "stadium", "arena", "harbour",
    // products and labels
    "edition", "size", "pro", "max", "plus", "mini", "series", "model", "version", "day", "week", "month", "year",
    "sale", "period", "tea", "coffee", "cake", "bread", "wine", "beer", "box", "pack", "set", "kit", "card",
    "account", "service", "support", "customer", "manager", "director", "engineer", "officer", "assistant", "analyst",
    "senior", "junior", "head", "chief", "lead", "unknown", "test", "sample", "total", "none", "null", "default",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march",
    "april", "august", "september", "october", "november", "december", "christmas", "easter", "black", "red", "blue",
    "gold", "silver", "bronze", "pink", "purple", "orange", "yellow", "navy", "beige",
];

/// Values that sit in name columns but are not names.
const PLACEHOLDERS: &[&str] = &[
    "unknown",
    "none",
    "null",
    "nil",
    "na",
    "n/a",
    "test",
    "tbd",
    "anonymous",
    "redacted",
    "withheld",
    "not provided",
    "-",
];

fn sets() -> &'static (HashSet<&'static str>, HashSet<&'static str>) {
    static SETS: OnceLock<(HashSet<&'static str>, HashSet<&'static str>)> = OnceLock::new();
    SETS.get_or_init(|| (GIVEN.iter().copied().collect(), SURNAMES.iter().copied().collect()))
}

fn key(w: &str) -> String {
    w.chars().filter(|c| !matches!(c, '\'' | '’' | '.')).flat_map(char::to_lowercase).collect()
}

/// The word, or any part of a hyphenated word, is in `set`.
fn known(set: &HashSet<&str>, w: &str) -> bool {
    let k = key(w);
    set.contains(k.as_str()) || (k.contains('-') && k.split('-').any(|p| set.contains(p)))
}

fn is_given(w: &str) -> bool {
    known(&sets().0, w)
}

fn is_surname(w: &str) -> bool {
    known(&sets().1, w)
}

/// Known as a name and not also an everyday word.
fn strong(known: bool, w: &str) -> bool {
    known && !WORDLIKE.contains(&key(w).as_str())
}

fn in_list(list: &[&str], w: &str) -> bool {
    let k = w.trim_end_matches([',', '.']).to_lowercase();
    list.contains(&k.as_str())
}

fn name_chars(w: &str) -> bool {
    w.chars().any(char::is_alphabetic) && w.chars().all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '’' | '.'))
}

#[derive(PartialEq)]
enum Part {
    Word,
    Initial,
    Particle,
}

fn classify(w: &str, all_caps: bool, inner: bool) -> Option<Part> {
    if !name_chars(w) {
        return None;
    }
    let letters: Vec<char> = w.chars().filter(|c| c.is_alphabetic()).collect();
    if inner && PARTICLES.contains(&w) {
        return Some(Part::Particle);
    }
    if !letters[0].is_uppercase() {
        return None;
    }
    // `J.` / `J` / `J.R.`
    if letters.len() <= 2 && (w.ends_with('.') || letters.len() == 1) && letters.iter().all(|c| c.is_uppercase()) {
        return Some(Part::Initial);
    }
    // Mixed case as names are written (McDonald, O'Brien); all capitals only if the whole value is.
    let ok = letters.len() >= 2 && (all_caps || letters.iter().any(|c| c.is_lowercase())) && !w.ends_with('.');
    ok.then_some(Part::Word)
}

/// The display name of `Name <address>` (RFC 5322), or the value itself.
fn display_name(s: &str) -> &str {
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) if i > 0 => s[..i].trim().trim_matches('"'),
        _ => s,
    }
}

pub(crate) fn detect(s: &str, name_column: bool) -> bool {
    let s = display_name(s);
    if s.chars().count() > 60 || in_list(PLACEHOLDERS, s) || s.bytes().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let mut words: Vec<&str> = s.split_whitespace().collect();
    // "Garcia, Maria": surname first.
    let reversed = words.len() >= 2 && words[0].ends_with(',') && words[0].matches(',').count() == 1;
    if reversed {
        words[0] = words[0].trim_end_matches(',');
    }
    if words.iter().any(|w| w.contains(',')) {
        return false;
    }
    while words.first().is_some_and(|w| in_list(TITLES, w)) {
        words.remove(0);
    }
    while words.len() > 1 && words.last().is_some_and(|w| in_list(SUFFIXES, w)) {
        words.pop();
    }
    if words.is_empty() || words.iter().any(|w| in_list(NOT_NAME, w)) {
        return false;
    }
    if name_column {
        return words.len() <= 5 && words.iter().all(|w| name_chars(w)) && !in_list(PLACEHOLDERS, words[0]);
    }
    if !(2..=5).contains(&words.len()) {
        return false;
    }
    let all_caps = s.chars().filter(|c| c.is_alphabetic()).all(char::is_uppercase);
    let last = words.len() - 1;
    let mut core = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match classify(w, all_caps, i > 0 && i < last) {
            None => return false,
            Some(Part::Word) => core.push(*w),
            Some(_) => {}
        }
    }
    if !(1..=4).contains(&core.len()) {
        return false;
    }
    let (first, last) = (core[0], core[core.len() - 1]);
    let (given_first, surname_last) = (is_given(first), is_surname(last));
    let (surname_first, given_last) = (is_surname(first), is_given(last));
    if reversed {
        // "Garcia, Maria": surname, then given name.
        (surname_first && given_last) || strong(surname_first, first) || strong(given_last, last)
    } else {
        (given_first && surname_last)
            || strong(given_first, first)
            || strong(surname_last, last)
            // Surname first, as in Chinese, Korean and Hungarian order.
            || (strong(surname_first, first) && strong(given_last, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_normalised() {
        for w in GIVEN.iter().chain(SURNAMES) {
            assert_eq!(*w, key(w), "{w}");
            // Particles may be surnames too ("Das"): only inner lower-case words are particles.
            assert!(!NOT_NAME.contains(w), "{w}");
        }
        assert!(GIVEN.len() >= 300 && SURNAMES.len() >= 300);
        for w in WORDLIKE {
            assert!(GIVEN.contains(w) || SURNAMES.contains(w), "{w}");
        }
    }

    #[test]
    fn names_without_hint() {
        for s in [
            "Maria Garcia",
            "John Smith",
            "Priya Ramanathan",
            "Adaeze Okonkwo-Smith",
            "Zhang Wei",
            "Maria de la Cruz",
            "J. Smith",
            "Dr. Sarah O'Brien",
            "Garcia, Maria",
            "JOHN SMITH",
            "Jean-Luc Picard",
            "Søren Lindqvist",
            "Robert Hale Jr",
            "Emma Green",
            "\"Maria Garcia\" <m.garcia@example.com>",
        ] {
            assert!(detect(s, false), "{s}");
        }
    }

    #[test]
    fn not_names() {
        for s in [
            "New York",
            "San Diego",
            "Victoria Station",
            "Johnson Controls",
            "Grace Period",
            "Black Friday",
            "Customer Service",
            "Green Tea",
            "Baker Street",
            "Dark Green",
            "Solid Wood",
            "Maria",
            "maria garcia",
            "Blue Widget Pro",
            "The quick brown fox jumps",
            "Acme Ltd",
            "Smith & Sons",
            "Flat 3",
            "Unknown",
        ] {
            assert!(!detect(s, false), "{s}");
        }
    }

    #[test]
    fn names_with_hint() {
        for s in ["Maria", "Xiomara", "van der Berg", "o'neill", "Nguyen Thi Mai"] {
            assert!(detect(s, true), "{s}");
        }
        for s in ["N/A", "unknown", "Acme Ltd", "12345", "Customer Service"] {
            assert!(!detect(s, true), "{s}");
        }
    }
}
