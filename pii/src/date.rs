//! Calendar dates, and the date-of-birth rule built on them. A date is only called a date
//! of birth when something says "birth": the column name, or a word in the value itself.
//! Every other date (order dates, timestamps) is counted as a date by the profile instead.

use crate::text::tokens;

/// Birth years considered plausible. Fixed rather than read from a clock, so results do
/// not change with the day they are computed; raise it when the calendar moves on.
pub(crate) const BIRTH_YEARS: std::ops::RangeInclusive<u16> = 1900..=2025;

/// Two-digit years up to this value are read as 20yy, later ones as 19yy (birth columns only).
const PIVOT: u16 = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    fn new(year: u16, month: u32, day: u32) -> Option<Date> {
        let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1..=days).contains(&day) && (1000..=2999).contains(&year)).then_some(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    pub(crate) fn plausible_birth(self) -> bool {
        BIRTH_YEARS.contains(&self.year)
    }
}

/// What a whole value is, as far as dates go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateShape {
    Date,
    DateTime,
}

pub(crate) fn classify(s: &str) -> Option<DateShape> {
    let s = s.trim();
    if parse_date(s, false).is_some() {
        Some(DateShape::Date)
    } else if parse_datetime(s).is_some() {
        Some(DateShape::DateTime)
    } else {
        None
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_name(w: &str) -> Option<u32> {
    let w = w.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let i = MONTHS
        .iter()
        .position(|m| *m == w || (w.len() == 3 && m.starts_with(&w)) || (w == "sept" && *m == "september"))?;
    Some(i as u32 + 1)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn int(s: &str) -> u32 {
    s.parse().unwrap_or(u32::MAX)
}

/// A whole date: ISO `1985-03-12` (also `/` and `.`), US `3/12/1985`, day-first
/// `12.03.1985` or `25/12/1985` when the month-first reading is impossible, and written
/// months (`12 March 1985`, `Mar 12, 1985`, `12-Mar-1985`). `loose` (birth columns only)
/// adds two-digit years (`03/12/85`) and compact `19850312`.
pub(crate) fn parse_date(s: &str, loose: bool) -> Option<Date> {
    if loose && s.len() == 8 && all_digits(s) {
        return Date::new(int(&s[..4]) as u16, int(&s[4..6]), int(&s[6..]));
    }
    let sep = s.chars().find(|c| !c.is_ascii_alphanumeric())?;
    if matches!(sep, '-' | '/' | '.') {
        let p: Vec<&str> = s.split(sep).collect();
        if p.len() == 3 && p.iter().all(|x| all_digits(x)) {
            return numeric(p[0], p[1], p[2], sep, loose);
        }
    }
    written(s)
}

fn numeric(a: &str, b: &str, c: &str, sep: char, loose: bool) -> Option<Date> {
    let short = |x: &str| (1..=2).contains(&x.len());
    if a.len() == 4 && short(b) && short(c) {
        return Date::new(int(a) as u16, int(b), int(c));
    }
    if !(short(a) && short(b)) {
        return None;
    }
    let year = match c.len() {
        4 => int(c) as u16,
        2 if loose => {
            let y = int(c) as u16;
            if y <= PIVOT {
                2000 + y
            } else {
                1900 + y
            }
        }
        _ => return None,
    };
    let (x, y) = (int(a), int(b));
    if sep == '.' {
        Date::new(year, y, x)
    } else {
        Date::new(year, x, y).or_else(|| Date::new(year, y, x))
    }
}

fn written(s: &str) -> Option<Date> {
    let p: Vec<&str> =
        s.split(|c: char| c.is_whitespace() || matches!(c, ',' | '-' | '/')).filter(|x| !x.is_empty()).collect();
    if p.len() != 3 {
        return None;
    }
    let day = |x: &str| {
        let x = x.trim_end_matches('.');
        let x = ["st", "nd", "rd", "th"].iter().find_map(|suf| x.strip_suffix(suf)).unwrap_or(x);
        ((1..=2).contains(&x.len()) && all_digits(x)).then(|| int(x))
    };
    let year = |x: &str| (x.len() == 4 && all_digits(x)).then(|| int(x) as u16);
    let (d, m, y) = if let Some(m) = month_name(p[1]) {
        (day(p[0])?, m, year(p[2])?) // 12 March 1985
    } else if let Some(m) = month_name(p[0]) {
        (day(p[1])?, m, year(p[2])?) // March 12, 1985
    } else {
        return None;
    };
    Date::new(y, m, d)
}

/// A date followed by a time: `1985-03-12T00:00:00Z`, `1985-03-12 14:05`, with optional
/// fraction and offset. Returns the date and whether the time is midnight (how birth dates
/// are often stored in timestamp columns).
pub(crate) fn parse_datetime(s: &str) -> Option<(Date, bool)> {
    let cut = s.find(['T', ' '])?;
    let date = parse_date(&s[..cut], false)?;
    let t = &s[cut + 1..];
    let t = t.strip_suffix('Z').unwrap_or(t);
    let t = match t.rfind(['+', '-']) {
        Some(k) if k >= 5 => {
            let off = &t[k + 1..];
            let ok = matches!(off.len(), 2 | 4 | 5) && off.bytes().all(|c| c.is_ascii_digit() || c == b':');
            if !ok {
                return None;
            }
            &t[..k]
        }
        _ => t,
    };
    let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
    if !all_digits(frac) {
        return None;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| p.len() == 2 && all_digits(p)) {
        return None;
    }
    let (h, m, sec) = (int(parts[0]), int(parts[1]), parts.get(2).map_or(0, |x| int(x)));
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((date, h == 0 && m == 0 && sec == 0 && int(frac) == 0))
}

/// Words that say the date next to them is a birth date.
const BIRTH_WORDS: &[&str] = &[
    "born",
    "dob",
    "birth",
    "birthday",
    "birthdate",
    "geb",
    "geboren",
    "geburtsdatum",
    "geburtstag",
    "née",
    "né",
    "nacido",
    "nacida",
    "nacimiento",
    "naissance",
    "nascita",
];

fn birth_context(s: &str) -> bool {
    let words: Vec<String> =
        s.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.iter().any(|w| BIRTH_WORDS.contains(&w.as_str()))
        || words.windows(3).any(|w| w[0] == "d" && w[1] == "o" && w[2] == "b")
}

/// Dates anywhere in running text: single tokens, `Key:date`, and three-word written dates.
fn dates_in_text(s: &str) -> impl Iterator<Item = Date> + '_ {
    let toks: Vec<&str> = tokens(s).collect();
    let singles = toks.clone().into_iter().flat_map(|t| {
        let t = t.trim_end_matches(['.', ':']);
        let after_colon = t.split_once(':').map(|(_, r)| r);
        [Some(t), after_colon]
            .into_iter()
            .flatten()
            .filter_map(|x| parse_date(x, false).or_else(|| parse_datetime(x).map(|d| d.0)))
    });
    let triples: Vec<Date> = toks.windows(3).filter_map(|w| written(&w.join(" "))).collect();
    singles.chain(triples)
}

pub(crate) fn detect_dob(s: &str, birth_column: bool) -> bool {
    if birth_column {
        if let Some(d) = parse_date(s, true) {
            return d.plausible_birth();
        }
        if let Some((d, midnight)) = parse_datetime(s) {
            return midnight && d.plausible_birth();
        }
    }
    birth_context(s) && dates_in_text(s).any(Date::plausible_birth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(s: &str, loose: bool) -> Option<(u16, u8, u8)> {
        parse_date(s, loose).map(|d| (d.year, d.month, d.day))
    }

    #[test]
    fn parses_date_forms() {
        assert_eq!(ymd("1985-03-12", false), Some((1985, 3, 12)));
        assert_eq!(ymd("1985/3/2", false), Some((1985, 3, 2)));
        assert_eq!(ymd("03/12/1985", false), Some((1985, 3, 12)));
        assert_eq!(ymd("25/12/1985", false), Some((1985, 12, 25)));
        assert_eq!(ymd("12.03.1985", false), Some((1985, 3, 12)));
        assert_eq!(ymd("12 March 1985", false), Some((1985, 3, 12)));
        assert_eq!(ymd("Mar 12, 1985", false), Some((1985, 3, 12)));
        assert_eq!(ymd("12-Mar-1985", false), Some((1985, 3, 12)));
        assert_eq!(ymd("1st Sept 2001", false), Some((2001, 9, 1)));
        assert_eq!(ymd("2000-02-29", false), Some((2000, 2, 29)));
        assert_eq!(ymd("03/12/85", true), Some((1985, 3, 12)));
        assert_eq!(ymd("03/12/05", true), Some((2005, 3, 12)));
        assert_eq!(ymd("19850312", true), Some((1985, 3, 12)));
        for s in [
            "1900-02-29",
            "1985-13-01",
            "1985-02-30",
            "32/12/1985",
            "03/12/85",
            "19850312",
            "1985-03",
            "12:30",
            "1.2.3",
        ] {
            assert_eq!(ymd(s, false), None, "{s}");
        }
    }

    #[test]
    fn parses_datetimes() {
        assert_eq!(parse_datetime("1985-03-12T00:00:00Z").map(|d| d.1), Some(true));
        assert_eq!(parse_datetime("1985-03-12 00:00:00.000").map(|d| d.1), Some(true));
        assert_eq!(parse_datetime("2023-10-15T10:22:05.123+02:00").map(|d| d.1), Some(false));
        assert_eq!(parse_datetime("2023-10-15T25:00"), None);
        assert_eq!(classify("2023-10-15"), Some(DateShape::Date));
        assert_eq!(classify("2023-10-15T10:22:05Z"), Some(DateShape::DateTime));
        assert_eq!(classify("15 Oct"), None);
    }

    #[test]
    fn birth_rule() {
        assert!(detect_dob("1985-03-12", true));
        assert!(detect_dob("03/12/85", true));
        assert!(detect_dob("1985-03-12T00:00:00Z", true));
        assert!(!detect_dob("1985-03-12T14:30:00Z", true), "a real time of day is an event");
        assert!(!detect_dob("1885-03-12", true), "implausible year");
        assert!(!detect_dob("2031-01-01", true));
        assert!(!detect_dob("1985-03-12", false), "no hint, no context");
        assert!(detect_dob("DOB: 12/03/1985", false));
        assert!(detect_dob("D.O.B. 1985-03-12", false));
        assert!(detect_dob("born 12 March 1985 in Leeds", false));
        assert!(detect_dob("geb. 12.03.1985", false));
        assert!(!detect_dob("shipped 12 March 1985", false));
        assert!(!detect_dob("birthday party on Friday", false));
    }
}
