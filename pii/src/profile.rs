//! Streaming per-column profile. Memory is bounded per column whatever the row count:
//! counters, a set of at most [`DISTINCT_CAP`] 64-bit value hashes, and a 4 KiB
//! HyperLogLog sketch that takes over once the set is full. Values themselves are never
//! stored, so a profile can be printed or logged without leaking one.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::Hasher;

use crate::date::{classify, DateShape};
use crate::{scan_in_column, ColumnHint, Kind};

/// Distinct values are counted exactly up to this many.
pub const DISTINCT_CAP: usize = 10_000;

/// Below this many values, uniqueness says little about whether a column is an identifier.
const MIN_VALUES_FOR_UNIQUENESS: u64 = 20;
/// Share of distinct values above which an identifier-shaped column is a unit candidate.
const UNIT_UNIQUE_RATIO: f64 = 0.95;
/// Share of values that must be person identifiers (emails, SSNs…) for a column to be one.
const PERSON_ID_SHARE: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericRange {
    pub min: f64,
    pub max: f64,
    /// Every value was written as an integer (no decimal point or exponent).
    pub all_integers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistinctCount {
    Exact(u64),
    /// More than `cap` distinct values; `estimate` is a HyperLogLog estimate (about 1.6%
    /// standard error), never below `cap + 1`.
    MoreThan {
        cap: u64,
        estimate: u64,
    },
}

impl DistinctCount {
    /// The exact count, or the estimate once past the cap.
    pub fn estimate(self) -> u64 {
        match self {
            DistinctCount::Exact(n) => n,
            DistinctCount::MoreThan { estimate, .. } => estimate,
        }
    }
}

/// The narrowest type every non-null value of the column parses as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferredType {
    /// No non-null values.
    Empty,
    Boolean,
    Integer,
    Float,
    /// Calendar dates without a time.
    Date,
    /// Dates, some or all with a time of day.
    DateTime,
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Non-null values observed.
    pub values: u64,
    /// Nulls: `None`, and strings that are empty or all whitespace.
    pub nulls: u64,
    /// Values each kind fired on, for kinds that fired at least once, in [`Kind::ALL`] order.
    pub hits: Vec<(Kind, u64)>,
    /// Values that are dates or date-times, whether or not they are dates of birth.
    pub dates: u64,
    /// Set when every non-null value is a number.
    pub numeric: Option<NumericRange>,
    pub distinct: DistinctCount,
    /// Longest value, in characters.
    pub max_chars: usize,
    /// Mean whitespace-separated words per non-null value.
    pub mean_words: f64,
    pub max_words: usize,
    pub inferred_type: InferredType,
    /// Distinct values / non-null values (0 for an empty column).
    pub unique_ratio: f64,
    /// What the column name said.
    pub hint: ColumnHint,
}

impl Profile {
    /// Values a kind fired on (0 if it never did).
    pub fn count(&self, kind: Kind) -> u64 {
        self.hits.iter().find(|(k, _)| *k == kind).map_or(0, |&(_, n)| n)
    }

    /// The kind that fired on the most values, if it fired on at least `min_share` of the
    /// non-null values. Ties go to the kind listed first in [`Kind::ALL`].
    pub fn dominant_pii(&self, min_share: f64) -> Option<(Kind, u64)> {
        if self.values == 0 {
            return None;
        }
        let best = self.hits.iter().copied().fold(None::<(Kind, u64)>, |best, h| match best {
            Some(b) if b.1 >= h.1 => Some(b),
            _ => Some(h),
        })?;
        (best.1 as f64 >= min_share * self.values as f64 && best.1 > 0).then_some(best)
    }

    /// A candidate privacy unit: single-token values (no spaces, at most 64 characters,
    /// integer or text, at most 1% nulls) that either identify a person (the column is
    /// named so, like `customer_id` or `email`, or 90% of its values are emails, phone,
    /// SSN, card or IBAN numbers; repeats are allowed, one person has many rows), or are
    /// at least 95% distinct over 20 or more values. Integer columns qualify by uniqueness
    /// only if their name says identifier, since counts and amounts can be unique too. A
    /// suggestion for the owner, who picks the unit.
    pub fn looks_like_unit_id(&self) -> bool {
        let shaped = self.values > 0
            && self.max_words <= 1
            && self.max_chars <= 64
            && matches!(self.inferred_type, InferredType::Integer | InferredType::Text)
            && self.nulls * 100 <= self.values + self.nulls;
        if !shaped {
            return false;
        }
        let person_values = self
            .dominant_pii(PERSON_ID_SHARE)
            .is_some_and(|(k, _)| matches!(k, Kind::Email | Kind::Phone | Kind::Ssn | Kind::CardNumber | Kind::Iban));
        if self.hint.person_identifier || person_values {
            return true;
        }
        if self.inferred_type == InferredType::Integer && !self.hint.identifier {
            return false;
        }
        self.values >= MIN_VALUES_FOR_UNIQUENESS && self.unique_ratio >= UNIT_UNIQUE_RATIO
    }
}

/// Feed one column's values with [`ColumnProfile::observe`], then read [`ColumnProfile::finish`].
#[derive(Clone)]
pub struct ColumnProfile {
    hint: ColumnHint,
    values: u64,
    nulls: u64,
    kinds: [u64; Kind::ALL.len()],
    dates: u64,
    datetimes: u64,
    integers: u64,
    numbers: u64,
    booleans: u64,
    min: f64,
    max: f64,
    max_chars: usize,
    max_words: usize,
    words: u64,
    exact: Option<HashSet<u64>>,
    sketch: Hll,
}

impl std::fmt::Debug for ColumnProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnProfile").field("hint", &self.hint).field("values", &self.values).finish_non_exhaustive()
    }
}

fn is_boolean(s: &str) -> bool {
    ["true", "false", "yes", "no", "t", "f", "y", "n"].iter().any(|b| s.eq_ignore_ascii_case(b))
}

/// Plain decimal numbers only: `inf`, `NaN`, `0x1F` and `1,000` are text.
fn number(s: &str) -> Option<(f64, bool)> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then(|| (v, body.bytes().all(|c| c.is_ascii_digit())))
}

impl ColumnProfile {
    pub fn new(column_name: &str) -> Self {
        Self::with_hint(ColumnHint::from_name(column_name))
    }

    pub fn with_hint(hint: ColumnHint) -> Self {
        ColumnProfile {
            hint,
            values: 0,
            nulls: 0,
            kinds: [0; Kind::ALL.len()],
            dates: 0,
            datetimes: 0,
            integers: 0,
            numbers: 0,
            booleans: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            max_chars: 0,
            max_words: 0,
            words: 0,
            exact: Some(HashSet::new()),
            sketch: Hll::new(),
        }
    }

    pub fn observe(&mut self, value: Option<&str>) {
        let Some(s) = value.map(str::trim).filter(|s| !s.is_empty()) else {
            self.nulls += 1;
            return;
        };
        self.values += 1;
        for k in scan_in_column(&self.hint, s).iter() {
            self.kinds[k as usize] += 1;
        }
        match classify(s) {
            Some(DateShape::Date) => self.dates += 1,
            Some(DateShape::DateTime) => self.datetimes += 1,
            None => {}
        }
        if let Some((v, integer)) = number(s) {
            self.numbers += 1;
            self.integers += u64::from(integer);
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.booleans += u64::from(is_boolean(s));
        self.max_chars = self.max_chars.max(s.chars().count());
        let words = s.split_whitespace().count();
        self.max_words = self.max_words.max(words);
        self.words += words as u64;

        let mut h = DefaultHasher::new();
        h.write(s.as_bytes());
        let hash = h.finish();
        self.sketch.insert(hash);
        if let Some(set) = &mut self.exact {
            if set.len() < DISTINCT_CAP || set.contains(&hash) {
                set.insert(hash);
            } else {
                self.exact = None; // past the cap: the sketch takes over
            }
        }
    }

    pub fn finish(&self) -> Profile {
        let n = self.values;
        let distinct = match &self.exact {
            Some(set) => DistinctCount::Exact(set.len() as u64),
            None => {
                let cap = DISTINCT_CAP as u64;
                DistinctCount::MoreThan { cap, estimate: self.sketch.estimate().max(cap + 1).min(n) }
            }
        };
        let all = |c: u64| n > 0 && c == n;
        let inferred_type = if n == 0 {
            InferredType::Empty
        } else if all(self.booleans) {
            InferredType::Boolean
        } else if all(self.integers) {
            InferredType::Integer
        } else if all(self.numbers) {
            InferredType::Float
        } else if all(self.dates) {
            InferredType::Date
        } else if all(self.dates + self.datetimes) {
            InferredType::DateTime
        } else {
            InferredType::Text
        };
        Profile {
            values: n,
            nulls: self.nulls,
            hits: Kind::ALL.into_iter().map(|k| (k, self.kinds[k as usize])).filter(|&(_, c)| c > 0).collect(),
            dates: self.dates + self.datetimes,
            numeric: all(self.numbers).then_some(NumericRange {
                min: self.min,
                max: self.max,
                all_integers: self.integers == n,
            }),
            distinct,
            max_chars: self.max_chars,
            mean_words: if n == 0 { 0.0 } else { self.words as f64 / n as f64 },
            max_words: self.max_words,
            inferred_type,
            unique_ratio: if n == 0 { 0.0 } else { (distinct.estimate() as f64 / n as f64).min(1.0) },
            hint: self.hint,
        }
    }
}

/// HyperLogLog with 2^12 one-byte registers (Flajolet et al. 2007, with the small-range
/// linear-counting correction; 64-bit hashes need no large-range one).
#[derive(Clone)]
struct Hll {
    registers: Box<[u8; Hll::M]>,
}

impl Hll {
    const P: u32 = 12;
    const M: usize = 1 << Self::P;

    fn new() -> Self {
        Hll { registers: Box::new([0; Self::M]) }
    }

    fn insert(&mut self, hash: u64) {
        let idx = (hash >> (64 - Self::P)) as usize;
        let rest = hash << Self::P;
        let rank = (rest.leading_zeros() + 1).min(64 - Self::P + 1) as u8;
        let r = &mut self.registers[idx];
        *r = (*r).max(rank);
    }

    fn estimate(&self) -> u64 {
        let m = Self::M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-(f64::from(r))).exp2()).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let e = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        e.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, vals: &[Option<&str>]) -> Profile {
        let mut p = ColumnProfile::new(name);
        for v in vals {
            p.observe(*v);
        }
        p.finish()
    }

    #[test]
    fn types_and_ranges() {
        let p = profile("amount", &[Some("1"), Some("-2"), None, Some(" "), Some("30")]);
        assert_eq!((p.values, p.nulls), (3, 2));
        assert_eq!(p.inferred_type, InferredType::Integer);
        assert_eq!(p.numeric, Some(NumericRange { min: -2.0, max: 30.0, all_integers: true }));
        let p = profile("price", &[Some("1.5"), Some("2"), Some("1e3")]);
        assert_eq!(p.inferred_type, InferredType::Float);
        assert_eq!(p.numeric.map(|r| (r.max, r.all_integers)), Some((1000.0, false)));
        assert_eq!(profile("x", &[Some("inf"), Some("NaN")]).inferred_type, InferredType::Text);
        assert_eq!(profile("flag", &[Some("true"), Some("N")]).inferred_type, InferredType::Boolean);
        assert_eq!(profile("d", &[Some("2024-01-02"), Some("03/04/2024")]).inferred_type, InferredType::Date);
        assert_eq!(
            profile("d", &[Some("2024-01-02"), Some("2024-01-02T10:00:00Z")]).inferred_type,
            InferredType::DateTime
        );
        assert_eq!(profile("x", &[None]).inferred_type, InferredType::Empty);
    }

    #[test]
    fn order_dates_are_dates_not_births() {
        let vals = [Some("1985-03-12"), Some("1990-07-01"), Some("2001-12-24")];
        let order = profile("order_date", &vals);
        assert_eq!((order.dates, order.count(Kind::DateOfBirth)), (3, 0));
        assert_eq!(order.dominant_pii(0.5), None);
        let dob = profile("date_of_birth", &vals);
        assert_eq!(dob.dominant_pii(0.5), Some((Kind::DateOfBirth, 3)));
    }

    #[test]
    fn hints_reach_the_detectors() {
        let zips = [Some("02139"), Some("10001"), Some("94105")];
        assert_eq!(profile("zip", &zips).dominant_pii(0.9), Some((Kind::Postcode, 3)));
        assert_eq!(profile("quantity", &zips).dominant_pii(0.1), None);
        let names = [Some("Maria"), Some("Xiomara"), Some("Kwabena")];
        assert_eq!(profile("first_name", &names).dominant_pii(0.9), Some((Kind::PersonName, 3)));
        assert_eq!(profile("colour", &names).dominant_pii(0.1), None);
    }

    #[test]
    fn dominant_needs_share() {
        let p = profile("contact", &[Some("a@example.com"), Some("b@example.com"), Some("n/a"), Some("n/a")]);
        assert_eq!(p.dominant_pii(0.5), Some((Kind::Email, 2)));
        assert_eq!(p.dominant_pii(0.6), None);
    }

    #[test]
    fn distinct_is_exact_then_estimated() {
        let mut p = ColumnProfile::new("token");
        for i in 0..DISTINCT_CAP {
            p.observe(Some(&format!("tok{i}")));
            p.observe(Some(&format!("tok{i}")));
        }
        let f = p.finish();
        assert_eq!(f.distinct, DistinctCount::Exact(DISTINCT_CAP as u64));
        assert!((f.unique_ratio - 0.5).abs() < 1e-9);
        for i in 0..40_000 {
            p.observe(Some(&format!("more{i}")));
        }
        let f = p.finish();
        let DistinctCount::MoreThan { cap, estimate } = f.distinct else { panic!("still exact") };
        assert_eq!(cap, DISTINCT_CAP as u64);
        let err = (estimate as f64 - 50_000.0).abs() / 50_000.0;
        assert!(err < 0.06, "estimate {estimate}");
    }

    #[test]
    fn unit_candidates() {
        let ids: Vec<String> = (0..50).map(|i| format!("C{:05}", i * 7)).collect();
        let p = profile("ref", &ids.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>());
        assert!(p.looks_like_unit_id());
        // Repeated customer ids in a transactions table: still the unit.
        let rep: Vec<Option<&str>> = ids.iter().take(5).cycle().take(50).map(|s| Some(s.as_str())).collect();
        assert!(profile("customer_id", &rep).looks_like_unit_id());
        assert!(!profile("ref", &rep).looks_like_unit_id());
        let emails = [Some("a@example.com"), Some("b@example.com"), Some("a@example.com")];
        assert!(profile("buyer", &emails).looks_like_unit_id());
        // Unique amounts are not identifiers.
        let amounts: Vec<String> = (0..50).map(|i| (i * 13 + 7).to_string()).collect();
        let a: Vec<Option<&str>> = amounts.iter().map(|s| Some(s.as_str())).collect();
        assert!(!profile("amount_cents", &a).looks_like_unit_id());
        assert!(profile("row_id", &a).looks_like_unit_id());
        // Names are not ids, nor are free-text notes.
        assert!(!profile("customer_id", &[Some("Maria Garcia"), Some("John Smith")]).looks_like_unit_id());
        assert!(!profile("ref", &[Some("x"); 5]).looks_like_unit_id());
    }

    #[test]
    fn debug_output_has_no_values() {
        let mut p = ColumnProfile::new("email");
        p.observe(Some("secret.person@example.com"));
        assert!(!format!("{p:?}").contains("secret"));
        assert!(!format!("{:?}", p.finish()).contains("secret"));
    }
}
