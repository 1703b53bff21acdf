//! Calendar dates (the owner's date transforms, the retention date, the audit report): proleptic Gregorian,
//! parsed strictly (2025-02-29 and 2024-13-01 are not dates).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

fn leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Date { year, month, day })
    }

    /// `YYYY-MM-DD`, optionally followed by a time (`T…` or ` …`), as in ISO 8601 and
    /// most database exports.
    pub fn parse_iso(s: &str) -> Option<Date> {
        let s = s.trim();
        let date = match s.as_bytes().get(10) {
            None => s,
            Some(b'T' | b' ') => s.get(..10)?,
            Some(_) => return None,
        };
        let b = date.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = date.get(r)?;
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
        };
        Date::new(i32::try_from(num(0..4)?).ok()?, u8::try_from(num(5..7)?).ok()?, u8::try_from(num(8..10)?).ok()?)
    }

    /// Days since 1970-01-01 (negative before), for Parquet's date32.
    pub fn from_days_since_epoch(days: i64) -> Option<Date> {
        // Civil-from-days (H. Hinnant's algorithm), in i64 so no input overflows.
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(i32::try_from(year).ok()?, u8::try_from(month).ok()?, u8::try_from(day).ok()?)
    }

    /// Days since 1970-01-01 (days-from-civil, the inverse of the above).
    pub fn days_since_epoch(&self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Unix seconds of the first instant after this day (UTC): when a retention date ends.
    pub fn end_unix(&self) -> u64 {
        u64::try_from((self.days_since_epoch() + 1) * 86_400).unwrap_or(0)
    }

    /// Whole years from `self` (a birth date) to `at`; negative when born after `at`.
    pub fn years_until(&self, at: &Date) -> i64 {
        let mut years = i64::from(at.year) - i64::from(self.year);
        if (at.month, at.day) < (self.month, self.day) {
            years -= 1;
        }
        years
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsing() {
        assert_eq!(Date::parse_iso("2024-02-29"), Date::new(2024, 2, 29));
        assert_eq!(Date::parse_iso("2024-02-29T10:00:00Z").map(|d| d.to_string()).as_deref(), Some("2024-02-29"));
        for bad in [
            "2025-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-01x",
            "+024-01-01",
        ] {
            assert_eq!(Date::parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_days_and_ages() {
        assert_eq!(Date::from_days_since_epoch(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_days_since_epoch(19_782), Date::new(2024, 2, 29));
        assert_eq!(Date::from_days_since_epoch(-1), Date::new(1969, 12, 31));
        for days in [-700_000i64, -1, 0, 59, 60, 19_782, 2_900_000] {
            assert_eq!(Date::from_days_since_epoch(days).unwrap().days_since_epoch(), days);
        }
        assert_eq!(Date::new(1970, 1, 1).unwrap().end_unix(), 86_400);
        let born = Date::new(1990, 6, 15).unwrap();
        assert_eq!(born.years_until(&Date::new(2026, 6, 14).unwrap()), 35);
        assert_eq!(born.years_until(&Date::new(2026, 6, 15).unwrap()), 36);
    }
}
