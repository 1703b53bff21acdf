//! Heuristic detectors for personal data in tabular values, and a streaming per-column
//! profiler built on them. `cleanroom prepare --suggest-rules` uses the profile to propose
//! sensitivity labels; sealing uses [`scan`] to refuse identifying values kept in the clear.
//!
//! Everything here is a heuristic aid for the data owner, not a guarantee: see
//! `docs/pii-detection.md` for what each detector matches, what it deliberately does not,
//! and the measured precision and recall. The crate is pure (no I/O, no clock) and never
//! puts a scanned value into an error, a `Debug` string or a report.

mod card;
mod date;
mod email;
mod free_text;
mod hint;
mod iban;
mod ip;
mod name;
mod names_data;
mod phone;
mod postcode;
mod profile;
mod ssn;
mod text;

pub use hint::ColumnHint;
pub use profile::{ColumnProfile, DistinctCount, InferredType, NumericRange, Profile, DISTINCT_CAP};

/// A kind of personal data a value can contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Phone,
    Ssn,
    CardNumber,
    Iban,
    IpAddress,
    DateOfBirth,
    Postcode,
    PersonName,
    FreeText,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Email,
        Kind::Phone,
        Kind::Ssn,
        Kind::CardNumber,
        Kind::Iban,
        Kind::IpAddress,
        Kind::DateOfBirth,
        Kind::Postcode,
        Kind::PersonName,
        Kind::FreeText,
    ];

    /// Stable snake_case name, as it appears in findings and suggested rules.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Ssn => "ssn",
            Kind::CardNumber => "card_number",
            Kind::Iban => "iban",
            Kind::IpAddress => "ip_address",
            Kind::DateOfBirth => "date_of_birth",
            Kind::Postcode => "postcode",
            Kind::PersonName => "person_name",
            Kind::FreeText => "free_text",
        }
    }

    /// The inverse of [`Kind::name`].
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Points at one person on its own: email, phone, SSN, card, IBAN, IP address, name.
    pub fn is_direct_identifier(self) -> bool {
        !matches!(self, Kind::DateOfBirth | Kind::Postcode | Kind::FreeText)
    }

    /// Identifies in combination with other columns (date of birth, postcode): such
    /// columns should be generalized (binned, truncated) rather than kept as they are.
    pub fn is_quasi_identifier(self) -> bool {
        matches!(self, Kind::DateOfBirth | Kind::Postcode)
    }

    /// Direct or quasi-identifier: everything but [`Kind::FreeText`]. Free text is flagged
    /// because it *may* contain anything, not because it identifies; a free-text value
    /// that does contain an identifier also fires that identifier's kind.
    pub fn is_identifying(self) -> bool {
        self != Kind::FreeText
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of kinds that fired on one value.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hits(u16);

impl Hits {
    pub const EMPTY: Hits = Hits(0);

    pub fn insert(&mut self, kind: Kind) {
        self.0 |= kind.bit();
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The kinds in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// Whether any identifying kind fired (see [`Kind::is_identifying`]).
    pub fn any_identifying(self) -> bool {
        self.iter().any(Kind::is_identifying)
    }
}

impl FromIterator<Kind> for Hits {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut h = Hits::EMPTY;
        for k in iter {
            h.insert(k);
        }
        h
    }
}

impl std::fmt::Debug for Hits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(Kind::name)).finish()
    }
}

/// Which kinds fire on `value` on its own, with no column name. Date of birth, bare
/// postcodes and single-word names need a column hint and so fire less here than in
/// [`scan_in_column`].
pub fn scan(value: &str) -> Hits {
    scan_in_column(&ColumnHint::NONE, value)
}

/// Which kinds fire on `value` found in a column whose name gave `hint`.
pub fn scan_in_column(hint: &ColumnHint, value: &str) -> Hits {
    let mut hits = Hits::EMPTY;
    let s = value.trim();
    if s.is_empty() {
        return hits;
    }
    let b = s.as_bytes();
    // Digit counts gate the digit detectors: most values are skipped without a scan.
    let ndigits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let mut set = |k: Kind, fired: bool| {
        if fired {
            hits.insert(k);
        }
    };
    set(Kind::Email, b.contains(&b'@') && email::detect(b));
    set(Kind::Phone, ndigits >= 8 && phone::detect(b));
    set(Kind::Ssn, ndigits >= 9 && ssn::detect(b));
    // A valid IBAN's digit groups can pass for a card; the checksum-verified IBAN wins.
    let ibans = if ndigits >= 2 && b.len() >= 15 { iban::spans(b) } else { Vec::new() };
    set(Kind::Iban, !ibans.is_empty());
    set(Kind::CardNumber, ndigits >= 13 && card::detect(b, &ibans));
    set(Kind::IpAddress, (ndigits >= 4 || b.contains(&b':')) && ip::detect(s, hint.version));
    set(Kind::DateOfBirth, ndigits >= 4 && date::detect_dob(s, hint.birth));
    set(Kind::Postcode, postcode::detect(s, hint.postcode));
    set(Kind::PersonName, name::detect(s, hint.person_name));
    set(Kind::FreeText, free_text::detect(s));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_order() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k as usize, i);
            assert_eq!(Kind::from_name(k.name()), Some(k));
            assert!(k.is_identifying() == (k.is_direct_identifier() || k.is_quasi_identifier()));
        }
        assert!(!Kind::FreeText.is_identifying());
    }

    #[test]
    fn hits_set_operations() {
        let h: Hits = [Kind::Iban, Kind::Email].into_iter().collect();
        assert_eq!(h.iter().collect::<Vec<_>>(), [Kind::Email, Kind::Iban]);
        assert!(h.contains(Kind::Email) && !h.contains(Kind::Phone));
        assert_eq!(h.len(), 2);
        assert!(Hits::EMPTY.is_empty());
        assert_eq!(format!("{h:?}"), r#"{"email", "iban"}"#);
        assert!(!Hits::from_iter([Kind::FreeText]).any_identifying());
    }

    #[test]
    fn scan_combines_detectors() {
        let h = scan("Please refund jane.doe@example.com on card 4111 1111 1111 1111 today");
        assert_eq!(h.iter().collect::<Vec<_>>(), [Kind::Email, Kind::CardNumber, Kind::FreeText]);
        assert!(scan("   ").is_empty());
        assert!(scan("42.50").is_empty());
    }
}
