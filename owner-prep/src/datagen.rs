//! A deterministic generator for the synthetic bank table used by the demo and tests.
//!
//! Everything is drawn from one ChaCha20 stream seeded by the caller; nothing reads the
//! clock or the environment, so the same `(rows, seed)` always gives byte-identical CSV.
//! The table looks like a small retail bank's customer file: direct identifiers
//! (id, name, email, SSN, phone), quasi-identifiers (zip, birth year) whose joint
//! distribution is skewed so that some zip3 groups are small, and correlated financial
//! features with a `defaulted` label drawn from a fixed logistic model:
//!
//! ```text
//! age   = 2026 - birth_year
//! logit = -2.0 + 3.0*(utilization - 0.3) + 0.5*late_payments - 0.8*ln(income/60000)
//!         - 0.005*(tenure_months - 60) - 0.015*(age - 40)
//! P(defaulted = 1) = sigmoid(logit)
//! ```
//!
//! Floats are fine here: this is synthetic input data, not a privacy mechanism.

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default table size for the demo.
pub const DEFAULT_ROWS: u64 = 200_000;
/// Customer ids are `C` + 8 digits, unique for up to this many rows.
pub const MAX_ROWS: u64 = 100_000_000;
/// The reference year for ages. Fixed so that output never depends on the clock.
pub const REFERENCE_YEAR: i64 = 2026;
/// Rows generated and written per block (bounds memory for large tables).
const BLOCK_ROWS: u64 = 65_536;

/// Column names, in file order.
pub const COLUMNS: [&str; 13] = [
    "customer_id",
    "full_name",
    "email",
    "ssn",
    "phone",
    "zip",
    "birth_year",
    "income",
    "credit_limit",
    "utilization",
    "late_payments",
    "tenure_months",
    "defaulted",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("rows must be between 1 and {max}, got {got}")]
    Rows { got: u64, max: u64 },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: writing CSV: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{}: writing Parquet: {source}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("building an Arrow batch: {0}")]
    Arrow(#[from] ArrowError),
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSummary {
    pub rows: u64,
    pub seed: u64,
    pub csv_bytes: u64,
    pub parquet_bytes: u64,
    /// Rows with `defaulted = 1`.
    pub defaulted: u64,
    /// Distinct 3-digit zip prefixes present.
    pub zip3_groups: u64,
}

/// One generated customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub customer_id: String,
    pub full_name: String,
    pub email: String,
    pub ssn: String,
    pub phone: String,
    pub zip: String,
    pub birth_year: i64,
    pub income: f64,
    pub credit_limit: f64,
    pub utilization: f64,
    pub late_payments: i64,
    pub tenure_months: i64,
    pub defaulted: i64,
}

const FIRST_NAMES: [&str; 64] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Dorothy",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Ronald",
    "Stephanie",
    "Jason",
    "Rebecca",
    "Luis",
    "Sharon",
    "Wei",
    "Laura",
    "Ahmed",
    "Cynthia",
    "Raj",
    "Maria",
    "Kenji",
    "Fatima",
];

const LAST_NAMES: [&str; 64] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Kim",
    "Singh",
    "Cohen",
    "Okafor",
    "Novak",
    "Silva",
    "Yamamoto",
    "Muller",
    "Kowalski",
    "Olsen",
    "Haddad",
    "Ivanova",
];

const EMAIL_DOMAINS: [&str; 6] =
    ["mail.example.com", "inbox.example.net", "post.example.org", "example.com", "bankmail.example", "web.example.net"];

/// Inclusive ranges of 3-digit zip prefixes in use in the US (approximately).
const ZIP3_RANGES: [(u16, u16); 48] = [
    (10, 27),
    (28, 29),
    (30, 38),
    (39, 49),
    (50, 59),
    (100, 149),
    (150, 196),
    (197, 199),
    (200, 212),
    (214, 219),
    (220, 246),
    (247, 268),
    (270, 289),
    (290, 299),
    (300, 319),
    (320, 349),
    (350, 369),
    (370, 385),
    (386, 397),
    (400, 427),
    (430, 459),
    (460, 479),
    (480, 499),
    (500, 528),
    (530, 549),
    (550, 567),
    (570, 577),
    (580, 588),
    (590, 599),
    (600, 629),
    (630, 658),
    (660, 679),
    (680, 693),
    (700, 714),
    (716, 729),
    (730, 749),
    (750, 799),
    (800, 816),
    (820, 831),
    (832, 838),
    (840, 847),
    (850, 865),
    (870, 884),
    (889, 898),
    (900, 961),
    (967, 968),
    (970, 979),
    (980, 994),
];

/// How many distinct zip3 prefixes the table draws from.
const ZIP3_COUNT: usize = 320;
/// Zipf exponent of zip3 popularity: the rarest prefixes get a few dozen customers
/// per 200,000, so some (zip3, birth decade) classes fall below k = 10.
const ZIP3_ZIPF: f64 = 1.3;
/// Seed of the fixed zip3 universe (the same for every table seed).
const ZIP3_UNIVERSE_SEED: u64 = 0x7a69_7033;

/// Uniform in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform integer in `lo..=hi` (tiny modulo bias is irrelevant for synthetic data).
fn int_in(rng: &mut ChaCha20Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut ChaCha20Rng) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson by Knuth's product method (fine for the small rates used here).
fn poisson(rng: &mut ChaCha20Rng, lambda: f64, cap: i64) -> i64 {
    let limit = (-lambda).exp();
    let mut p = 1.0;
    let mut k = 0;
    loop {
        p *= uniform(rng);
        if p <= limit || k >= cap {
            return k;
        }
        k += 1;
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Round to `decimals` decimal places so that values print short (`0.3001`, not
/// `0.30010000000000003`).
fn round_dp(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// The logistic default model from the module docs: P(defaulted = 1).
pub fn default_probability(
    utilization: f64,
    late_payments: i64,
    income: f64,
    tenure_months: i64,
    birth_year: i64,
) -> f64 {
    let age = (REFERENCE_YEAR - birth_year) as f64;
    let logit = -2.0 + 3.0 * (utilization - 0.3) + 0.5 * late_payments as f64
        - 0.8 * (income / 60_000.0).ln()
        - 0.005 * (tenure_months as f64 - 60.0)
        - 0.015 * (age - 40.0);
    sigmoid(logit)
}

/// The deterministic customer stream behind [`generate`].
pub struct Generator {
    rng: ChaCha20Rng,
    zip3: Vec<u16>,
    /// Cumulative popularity weights of `zip3`, normalised to end at 1.0.
    zip3_cdf: Vec<f64>,
    next: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let mut all: Vec<u16> = ZIP3_RANGES.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
        let mut urng = ChaCha20Rng::seed_from_u64(ZIP3_UNIVERSE_SEED);
        // Fisher–Yates; the first ZIP3_COUNT are the universe in popularity order.
        for i in (1..all.len()).rev() {
            let j = (urng.next_u64() % (i as u64 + 1)) as usize;
            all.swap(i, j);
        }
        all.truncate(ZIP3_COUNT);
        let mut cdf = Vec::with_capacity(all.len());
        let mut acc = 0.0;
        for rank in 0..all.len() {
            acc += 1.0 / ((rank + 1) as f64).powf(ZIP3_ZIPF);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Generator { rng: ChaCha20Rng::seed_from_u64(seed), zip3: all, zip3_cdf: cdf, next: 0 }
    }

    fn pick_zip3(&mut self) -> u16 {
        let u = uniform(&mut self.rng);
        let i = self.zip3_cdf.partition_point(|&c| c <= u).min(self.zip3.len() - 1);
        self.zip3[i]
    }

    /// The next customer. Customer ids are a fixed bijection of the row number, so they
    /// are unique for up to [`MAX_ROWS`] rows but not sequential.
    pub fn next_customer(&mut self) -> Customer {
        let i = self.next;
        self.next += 1;
        let id = (i.wrapping_mul(7_919_113).wrapping_add(1_234_567)) % MAX_ROWS;
        let customer_id = format!("C{id:08}");

        let r = &mut self.rng;
        let first = FIRST_NAMES[(r.next_u32() as usize) % FIRST_NAMES.len()];
        let last = LAST_NAMES[(r.next_u32() as usize) % LAST_NAMES.len()];
        let full_name = format!("{first} {last}");
        let domain = EMAIL_DOMAINS[(r.next_u32() as usize) % EMAIL_DOMAINS.len()];
        let email = format!("{}.{}{}@{domain}", first.to_lowercase(), last.to_lowercase(), int_in(r, 1, 9999));
        let area = loop {
            let a = int_in(r, 1, 899);
            if a != 666 {
                break a;
            }
        };
        let ssn = format!("{area:03}-{:02}-{:04}", int_in(r, 1, 99), int_in(r, 1, 9999));
        let phone = format!("{}-{}-{:04}", int_in(r, 201, 989), int_in(r, 200, 999), int_in(r, 0, 9999));
        let zip3 = self.pick_zip3();
        let r = &mut self.rng;
        let zip = format!("{zip3:03}{:02}", int_in(r, 0, 99));

        let birth_year = (1978.0 + 14.0 * normal(r)).round().clamp(1940.0, 2005.0) as i64;
        let age = (REFERENCE_YEAR - birth_year) as f64;
        let log_income = (60_000f64).ln() + 0.55 * normal(r) + 0.006 * (age - 40.0);
        let income = round_dp(log_income.exp().clamp(12_000.0, 500_000.0), 2);
        let credit_limit = round_dp((income * 0.25 * (0.3 * normal(r)).exp()).clamp(500.0, 150_000.0), -2);
        let utilization = round_dp((0.3 + 0.22 * normal(r) - 0.05 * (income / 60_000.0).ln()).clamp(0.0, 1.2), 4);
        let lambda = 0.8 * (1.2 * (utilization - 0.3) - 0.3 * (income / 60_000.0).ln()).exp();
        let late_payments = poisson(r, lambda, 12);
        let max_tenure = ((age as i64 - 18) * 12).clamp(1, 360) as u64;
        let tenure_months = int_in(r, 1, max_tenure) as i64;
        let p = default_probability(utilization, late_payments, income, tenure_months, birth_year);
        let defaulted = i64::from(uniform(r) < p);

        Customer {
            customer_id,
            full_name,
            email,
            ssn,
            phone,
            zip,
            birth_year,
            income,
            credit_limit,
            utilization,
            late_payments,
            tenure_months,
            defaulted,
        }
    }
}

impl Iterator for Generator {
    type Item = Customer;
    fn next(&mut self) -> Option<Customer> {
        Some(self.next_customer())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn schema() -> Arc<Schema> {
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    Arc::new(Schema::new(vec![
        f("customer_id", DataType::Utf8),
        f("full_name", DataType::Utf8),
        f("email", DataType::Utf8),
        f("ssn", DataType::Utf8),
        f("phone", DataType::Utf8),
        f("zip", DataType::Utf8),
        f("birth_year", DataType::Int64),
        f("income", DataType::Float64),
        f("credit_limit", DataType::Float64),
        f("utilization", DataType::Float64),
        f("late_payments", DataType::Int64),
        f("tenure_months", DataType::Int64),
        f("defaulted", DataType::Int64),
    ]))
}

fn arrow_batch(schema: &Arc<Schema>, rows: &[Customer]) -> Result<RecordBatch, ArrowError> {
    let s = |get: fn(&Customer) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(get))) };
    let i = |get: fn(&Customer) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(rows.iter().map(get))) };
    let f = |get: fn(&Customer) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(get))) };
    RecordBatch::try_new(
        schema.clone(),
        vec![
            s(|c| &c.customer_id),
            s(|c| &c.full_name),
            s(|c| &c.email),
            s(|c| &c.ssn),
            s(|c| &c.phone),
            s(|c| &c.zip),
            i(|c| c.birth_year),
            f(|c| c.income),
            f(|c| c.credit_limit),
            f(|c| c.utilization),
            i(|c| c.late_payments),
            i(|c| c.tenure_months),
            i(|c| c.defaulted),
        ],
    )
}

/// [`generate`] into `dir` (created if absent) as `bank.csv` and `bank.parquet`; returns
/// the two paths and the summary.
pub fn generate_into(rows: u64, seed: u64, dir: &Path) -> Result<(PathBuf, PathBuf, GenSummary), Error> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (csv, parquet) = (dir.join("bank.csv"), dir.join("bank.parquet"));
    let summary = generate(rows, seed, &csv, &parquet)?;
    Ok((csv, parquet, summary))
}

/// Generate `rows` customers from `seed` and write them to `csv` and `parquet` (same
/// content, same column order). Existing files at those paths are replaced.
pub fn generate(rows: u64, seed: u64, csv: &Path, parquet: &Path) -> Result<GenSummary, Error> {
    if rows == 0 || rows > MAX_ROWS {
        return Err(Error::Rows { got: rows, max: MAX_ROWS });
    }
    let csv_err = |source| Error::Csv { path: csv.to_path_buf(), source };
    let pq_err = |source| Error::Parquet { path: parquet.to_path_buf(), source };

    let mut csv_w = csv::Writer::from_writer(BufWriter::new(File::create(csv).map_err(io_err(csv))?));
    csv_w.write_record(COLUMNS).map_err(csv_err)?;

    let schema = schema();
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let pq_file = File::create(parquet).map_err(io_err(parquet))?;
    let mut pq_w = ArrowWriter::try_new(pq_file, schema.clone(), Some(props)).map_err(pq_err)?;

    let mut gen = Generator::new(seed);
    let mut defaulted = 0u64;
    let mut zip3s = BTreeSet::new();
    let mut block = Vec::with_capacity(BLOCK_ROWS.min(rows) as usize);
    let mut done = 0u64;
    while done < rows {
        let n = BLOCK_ROWS.min(rows - done);
        block.clear();
        block.extend((&mut gen).take(n as usize));
        for c in &block {
            defaulted += c.defaulted as u64;
            zip3s.insert(c.zip[..3].to_string());
            csv_w
                .write_record([
                    c.customer_id.as_str(),
                    &c.full_name,
                    &c.email,
                    &c.ssn,
                    &c.phone,
                    &c.zip,
                    &c.birth_year.to_string(),
                    &c.income.to_string(),
                    &c.credit_limit.to_string(),
                    &c.utilization.to_string(),
                    &c.late_payments.to_string(),
                    &c.tenure_months.to_string(),
                    &c.defaulted.to_string(),
                ])
                .map_err(csv_err)?;
        }
        pq_w.write(&arrow_batch(&schema, &block)?).map_err(pq_err)?;
        done += n;
    }
    let mut inner = csv_w.into_inner().map_err(|e| Error::Io { path: csv.to_path_buf(), source: e.into_error() })?;
    inner.flush().map_err(io_err(csv))?;
    drop(inner);
    pq_w.close().map_err(pq_err)?;

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(io_err(p));
    Ok(GenSummary {
        rows,
        seed,
        csv_bytes: size(csv)?,
        parquet_bytes: size(parquet)?,
        defaulted,
        zip3_groups: zip3s.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let a = generate(500, 7, &p("a.csv"), &p("a.parquet")).unwrap();
        let b = generate(500, 7, &p("b.csv"), &p("b.parquet")).unwrap();
        generate(500, 8, &p("c.csv"), &p("c.parquet")).unwrap();
        assert_eq!(a, b);
        let read = |n: &str| std::fs::read(p(n)).unwrap();
        assert_eq!(read("a.csv"), read("b.csv"));
        assert_eq!(read("a.parquet"), read("b.parquet"));
        assert_ne!(read("a.csv"), read("c.csv"));
    }

    #[test]
    fn values_are_in_range_and_ids_unique() {
        let rows: Vec<Customer> = Generator::new(1).take(20_000).collect();
        let ids: BTreeSet<&str> = rows.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids.len(), rows.len());
        for c in &rows {
            assert_eq!(c.customer_id.len(), 9);
            assert!(c.customer_id.starts_with('C'));
            assert_eq!(c.zip.len(), 5);
            assert!(c.zip.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(c.ssn.len(), 11);
            assert!(c.email.contains('@'));
            assert!((1940..=2005).contains(&c.birth_year));
            assert!((12_000.0..=500_000.0).contains(&c.income));
            assert!((0.0..=1.2).contains(&c.utilization));
            assert!((0..=12).contains(&c.late_payments));
            assert!((1..=360).contains(&c.tenure_months));
            assert!(c.defaulted == 0 || c.defaulted == 1);
        }
        let mean_late = rows.iter().map(|c| c.late_payments as f64).sum::<f64>() / rows.len() as f64;
        assert!((0.5..1.3).contains(&mean_late), "mean late payments {mean_late}");
        let rate = rows.iter().map(|c| c.defaulted as f64).sum::<f64>() / rows.len() as f64;
        assert!((0.05..0.5).contains(&rate), "default rate {rate}");
        // The label depends on the features: defaulters have higher utilization.
        let mean_u = |d: i64| {
            let v: Vec<f64> = rows.iter().filter(|c| c.defaulted == d).map(|c| c.utilization).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean_u(1) > mean_u(0) + 0.03);
    }

    #[test]
    fn zip3_popularity_is_skewed() {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for c in Generator::new(3).take(200_000) {
            *counts.entry(c.zip[..3].to_string()).or_default() += 1;
        }
        let max = *counts.values().max().unwrap();
        let min = *counts.values().min().unwrap();
        assert!(counts.len() > 250, "{} zip3 groups", counts.len());
        assert!(max > 20 * min, "max {max}, min {min}");
        assert!(min < 100, "smallest zip3 group has {min} customers");
    }

    #[test]
    fn zero_rows_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = generate(0, 1, &dir.path().join("a.csv"), &dir.path().join("a.parquet")).unwrap_err();
        assert!(matches!(e, Error::Rows { got: 0, .. }));
    }
}
