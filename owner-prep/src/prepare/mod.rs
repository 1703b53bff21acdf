//! The owner's offline preparation of a table (ARCHITECTURE.md, "Flow of one job" step 1).
//!
//! `prepare` streams a CSV or Parquet file through the owner's rules file
//! ([`Rules`], docs/prepare-rules.md): one rule per source column says its sensitivity
//! label, its transform, its roles and why. It scans kept columns for PII, tokenizes the
//! privacy unit with the owner's HMAC key (a key file or a PKCS#11 token), sorts rows by
//! that token with an external sort that spills to disk, enforces k-anonymity over the
//! declared quasi-identifiers, and seals the result:
//!
//! ```text
//! out_dir/manifest.json          protocol::manifest::Manifest (JSON)
//! out_dir/chunks/000000.sealed   CBOR SealedChunk, AES-256-GCM, bound to
//! out_dir/chunks/000001.sealed   (dataset digest, chunk index, final flag)
//! ...
//! ```
//!
//! Memory does not grow with the table: the source is read a record (CSV) or a row group
//! (Parquet) at a time, the sort keeps `segment_rows` rows in memory, and the later passes
//! re-read the sorted rows from disk. What does grow is bounded by distinct values, not
//! rows: the categories of text columns and the quasi-identifier classes.
//!
//! Everything is staged in `out_dir/.prepare-staging` and moved into place only when all
//! checks pass, so bad input leaves no partial output (and the staging folder, spilled
//! plaintext included, is deleted either way).

mod open;
mod rules;
mod snapshot;
mod source;
mod spill;
mod summary;
mod transform;

pub use open::{load_manifest, open_sealed, OpenError};
pub use pii::Kind as Detector;
pub use protocol::date::Date;
pub use rules::{
    ColumnRule, ColumnTransform, DatePart, Encoding, InputFormat, InputOptions, IntBinning, KAnonymityRule, KRemedy,
    NullPolicy, Rules, SealedType, ValueType, BANK_RULES, OTHER_CATEGORY, RULES_VERSION,
};
pub use snapshot::{compare as compare_snapshots, Drift, Regression};
pub use source::SourceFormat;
pub use summary::summary;
pub use transform::TokenKey;

use crate::keystore::{fresh_data_key, KeyStore, KeyStoreError, Tokenizer};
use protocol::manifest::{ColumnSpec, KAnonymityReport, LDiversity, Lineage, Manifest, PiiFinding, Sensitivity};
use protocol::sealed::{seal_chunk, DataKey};
use protocol::table::{Column, ColumnData, RecordBatch, Validity};
use protocol::Digest;
use source::{Source, Value};
use spill::{Row, SortedFile};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use transform::Sealed;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CHUNKS_DIR: &str = "chunks";
pub const MANIFEST_VERSION: u32 = 1;
pub const DEFAULT_ROWS_PER_CHUNK: u64 = 16_384;
/// Rows the external sort holds in memory before it spills a sorted segment.
pub const DEFAULT_SEGMENT_ROWS: usize = 65_536;
const STAGING_DIR: &str = ".prepare-staging";
/// Distinct values counted per class for l-diversity; more is reported as this many.
const L_DIVERSITY_CAP: usize = 64;

/// File name of chunk `index` inside `out_dir/chunks/`.
pub fn chunk_file_name(index: u64) -> String {
    format!("{index:06}.sealed")
}

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub rows_per_chunk: u64,
    /// Unix seconds recorded as the ingestion time (passed in; never read from a clock here).
    pub now_unix: u64,
    /// The owner's rules (the demo's bank rules by default).
    pub rules: Rules,
    /// Name recorded in the manifest; defaults to the rules' `dataset`, then the file stem.
    pub dataset_name: Option<String>,
    /// Replace an existing manifest and chunks in `out_dir` (otherwise an error).
    pub overwrite: bool,
    /// Rows the external sort keeps in memory.
    pub segment_rows: usize,
    /// The previous snapshot's manifest of the same dataset name (from the owner's log):
    /// drift is reported, a less protected column refused unless its rule says why.
    pub previous: Option<Manifest>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            rows_per_chunk: DEFAULT_ROWS_PER_CHUNK,
            now_unix: 0,
            rules: Rules::bank(),
            dataset_name: None,
            overwrite: false,
            segment_rows: DEFAULT_SEGMENT_ROWS,
            previous: None,
        }
    }
}

/// A source table opened for a scan (`--suggest-rules`): each row's values as text.
pub struct TextSource(Source);

impl TextSource {
    pub fn names(&self) -> &[String] {
        &self.0.names
    }
    pub fn is_parquet(&self) -> bool {
        self.0.format == SourceFormat::Parquet
    }
    /// The next row into `out`, `None` for a null; `false` at the end.
    pub fn next_text_row(&mut self, out: &mut Vec<Option<String>>) -> Result<bool, PrepareError> {
        let mut values = Vec::new();
        let more = self.0.next_row(&mut values)?;
        out.clear();
        out.extend(values.iter().map(|v| (*v != Value::Null).then(|| transform::as_text(v))));
        Ok(more)
    }
}

/// Open `input` for a streaming scan with the given dialect.
pub fn open_source(input: &Path, opts: &InputOptions) -> Result<TextSource, PrepareError> {
    Source::open(input, opts).map(TextSource)
}

/// A long run's stages, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading, checking and tokenizing the source (`done`/`total` in bytes).
    Read,
    /// Merging the sorted segments and counting classes (`done`/`total` in rows).
    Sort,
    /// Encrypting and writing chunks (`done`/`total` in rows).
    Seal,
    /// `cleanroom upload`: sealed chunks sent to the host's blob store (`done`/`total` in bytes).
    Upload,
}

/// Receives progress; the CLI draws a bar on a terminal and plain lines otherwise.
pub trait Progress {
    fn update(&self, phase: Phase, done: u64, total: u64);
}

/// No progress display.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: Phase, _: u64, _: u64) {}
}

/// The owner's file-held tokenization key.
pub struct FileTokenKey {
    tokenizer: Tokenizer,
    key_id: String,
}

impl FileTokenKey {
    pub fn new(keystore: &KeyStore) -> Self {
        FileTokenKey { tokenizer: keystore.tokenization_key().tokenizer(), key_id: keystore.key_id() }
    }
}

impl TokenKey for FileTokenKey {
    fn key_id(&self) -> String {
        self.key_id.clone()
    }
    fn token(&self, identifier: &[u8]) -> Result<[u8; 32], String> {
        Ok(self.tokenizer.token(identifier))
    }
}

/// What `prepare` did. The counts are for the owner's eyes only (they stay in its
/// manifest, never in what providers or the host see).
#[derive(Debug, Clone)]
pub struct PrepareReport {
    /// Rows sealed.
    pub rows: u64,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Privacy units (distinct tokens) sealed.
    pub units: u64,
    pub chunks: u64,
    pub dataset_digest: Digest,
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    pub chunks_dir: PathBuf,
    /// SHA-256 of each chunk file's bytes (the host stores blobs by these).
    pub chunk_digests: Vec<Digest>,
    pub k_anonymity: Option<KAnonymityReport>,
    pub findings: Vec<PiiFinding>,
    /// Categories merged into `other`, per sealed column.
    pub merged_categories: BTreeMap<String, u64>,
    /// What changed since the previous snapshot, when there was one.
    pub drift: Option<Drift>,
    /// Nulls sealed as nulls, per nullable sealed column (`nulls = "keep"`).
    pub nulls_sealed: BTreeMap<String, u64>,
    /// Manifest plus chunk files.
    pub bytes_written: u64,
    /// True when the key store already held a key for this exact dataset digest (an
    /// identical earlier run) and it was reused, so earlier sealed copies stay readable.
    pub data_key_reused: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("CSV{}: {why}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Csv { line: Option<u64>, why: String },
    #[error("Parquet: {why}")]
    Parquet { why: String },
    #[error("column {column:?}: unsupported type {data_type}")]
    UnsupportedType { column: String, data_type: String },
    #[error("column {column:?} appears more than once in the input")]
    DuplicateColumn { column: String },
    #[error("unknown column {column:?}: the input has a column with no rule (add one, e.g. drop it)")]
    UnknownColumn { column: String },
    #[error("missing column {column:?}: a rule names it but the input does not have it")]
    MissingColumn { column: String },
    #[error("invalid rules: {0}")]
    InvalidRules(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error(
        "row {row}, column {column:?}: missing value (null); set nulls = \"keep\" in its rule to seal it as a null, \
         or nulls = \"drop_row\" to leave such rows out"
    )]
    Null { row: u64, column: String },
    #[error("row {row}, column {column:?}: {why}")]
    BadValue { row: u64, column: String, why: String },
    #[error("the input has no data rows")]
    Empty,
    #[error(
        "column {column:?} is kept in the sealed table but {matches} of {scanned} values look like {detector}; \
         drop or tokenize it, or say why it may stay with allow_pii = \"reason\" in its rule"
    )]
    PiiInKeptColumn { column: String, detector: &'static str, matches: u64, scanned: u64 },
    #[error(
        "k-anonymity: {classes_below} of {classes} classes over {quasi_identifiers:?} hold fewer than {k} people \
         (the smallest holds {k_min}); generalize further, or choose a remedy in [k_anonymity] (\"suppress\" or \"override\")"
    )]
    BelowK { quasi_identifiers: Vec<String>, k: u64, k_min: u64, classes: u64, classes_below: u64 },
    #[error(
        "column {column:?} is less protected than in the previous snapshot ({before} → {after}); \
         say why with allow_regression = \"reason\" in its rule, or keep the earlier treatment"
    )]
    Regression { column: String, before: String, after: String },
    #[error("tokenization key: {0}")]
    Hsm(String),
    #[error("spill file in {}: {source}", path.display())]
    Spill { path: PathBuf, source: std::io::Error },
    #[error("{} already holds a sealed dataset; refusing to overwrite it", path.display())]
    OutputExists { path: PathBuf },
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
}

/// Read `input`, apply `opts.rules` with the key store's tokenization key, seal the
/// result into `out_dir` and store the data key in `keystore` (which is saved).
pub fn prepare(
    input: &Path,
    keystore: &mut KeyStore,
    out_dir: &Path,
    opts: &PrepareOptions,
) -> Result<PrepareReport, PrepareError> {
    let tokens = FileTokenKey::new(keystore);
    prepare_with(input, &tokens, "file", keystore, out_dir, opts, &NoProgress)
}

/// [`prepare`] with any tokenization key (`key_home` says where it lives, e.g.
/// `pkcs11:<token label>`) and a progress display.
pub fn prepare_with(
    input: &Path,
    tokens: &dyn TokenKey,
    key_home: &str,
    keystore: &mut KeyStore,
    out_dir: &Path,
    opts: &PrepareOptions,
    progress: &dyn Progress,
) -> Result<PrepareReport, PrepareError> {
    if opts.rows_per_chunk == 0 {
        return Err(PrepareError::InvalidOptions("rows_per_chunk must be at least 1".into()));
    }
    if opts.segment_rows == 0 {
        return Err(PrepareError::InvalidOptions("segment_rows must be at least 1".into()));
    }
    let manifest_path = out_dir.join(MANIFEST_FILE);
    let chunks_dir = out_dir.join(CHUNKS_DIR);
    if !opts.overwrite {
        for p in [&manifest_path, &chunks_dir] {
            if p.exists() {
                return Err(PrepareError::OutputExists { path: p.clone() });
            }
        }
    }
    let staging = Staging::create(out_dir)?;
    let staged = run(input, tokens, key_home, &staging.dir, opts, progress)?;

    // Key: reuse the key of an identical earlier dataset, else a fresh one. Persist it
    // before writing ciphertext, so sealed output never exists without its key.
    let (data_key, data_key_reused) = match keystore.data_key(&staged.manifest.dataset_digest) {
        Some(k) => (k, true),
        None => (fresh_data_key()?, false),
    };
    let staged_chunks = staging.dir.join(CHUNKS_DIR);
    fs::create_dir_all(&staged_chunks).map_err(io(&staged_chunks))?;
    let (chunk_digests, mut bytes_written) = seal_chunks(&staged, &data_key, &staged_chunks, progress)?;
    keystore.store_data_key(staged.manifest.dataset_digest, data_key)?;
    keystore.save()?;

    let json = staged.manifest.to_json();
    let staged_manifest = staging.dir.join(MANIFEST_FILE);
    fs::write(&staged_manifest, json.as_bytes()).map_err(io(&staged_manifest))?;
    bytes_written += json.len() as u64;
    if chunks_dir.exists() {
        fs::remove_dir_all(&chunks_dir).map_err(io(&chunks_dir))?;
    }
    fs::rename(&staged_chunks, &chunks_dir).map_err(io(&chunks_dir))?;
    fs::rename(&staged_manifest, &manifest_path).map_err(io(&manifest_path))?;
    staging.commit();

    let manifest = staged.manifest;
    Ok(PrepareReport {
        rows: manifest.rows,
        rows_read: staged.rows_read,
        units: staged.units,
        chunks: manifest.chunks,
        dataset_digest: manifest.dataset_digest,
        manifest_digest: manifest.digest(),
        manifest_path,
        chunks_dir,
        chunk_digests,
        k_anonymity: manifest.k_anonymity.clone(),
        findings: manifest.pii_findings.clone(),
        merged_categories: staged.merged,
        drift: staged.drift,
        nulls_sealed: staged.nulls_sealed,
        bytes_written,
        data_key_reused,
        manifest,
    })
}

/// The dataset's name in the manifest: the option, else the rules' `dataset`, else the
/// input file's stem. Snapshots of one dataset share it.
pub fn dataset_name(input: &Path, opts: &PrepareOptions) -> String {
    opts.dataset_name.clone().or_else(|| opts.rules.dataset.clone()).unwrap_or_else(|| {
        input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into())
    })
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io { path: path.to_path_buf(), source }
}

fn spill(path: &Path) -> impl Fn(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Spill { path: path.to_path_buf(), source }
}

/// The staging folder: removed on drop unless committed, and the output folder with it
/// when `prepare` created that folder and leaves nothing in it.
struct Staging {
    dir: PathBuf,
    out_dir: PathBuf,
    created_out_dir: bool,
}

impl Staging {
    fn create(out_dir: &Path) -> Result<Staging, PrepareError> {
        let created_out_dir = !out_dir.exists();
        fs::create_dir_all(out_dir).map_err(io(out_dir))?;
        let dir = out_dir.join(STAGING_DIR);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(dir.join("sort")).map_err(io(&dir))?;
        Ok(Staging { dir, out_dir: out_dir.to_path_buf(), created_out_dir })
    }

    fn commit(mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        self.created_out_dir = false;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        if self.created_out_dir {
            let _ = fs::remove_dir(&self.out_dir); // only if empty
        }
    }
}

/// Everything decided before the key is chosen: the manifest (with the dataset digest)
/// and the padded plaintext chunks in a staging file.
struct Staged {
    manifest: Manifest,
    rows_read: u64,
    units: u64,
    merged: BTreeMap<String, u64>,
    drift: Option<Drift>,
    nulls_sealed: BTreeMap<String, u64>,
    plain_chunks: PathBuf,
    padded_len: usize,
}

/// The sealed columns in manifest order: where each value comes from.
enum Slot {
    Token,
    /// Index into `Row::values`.
    Value(usize),
}

fn run(
    input: &Path,
    tokens: &dyn TokenKey,
    key_home: &str,
    staging: &Path,
    opts: &PrepareOptions,
    progress: &dyn Progress,
) -> Result<Staged, PrepareError> {
    let rules = &opts.rules;
    let unit = rules::validate(&rules.columns)?;
    let source_digest = source::file_digest(input)?;
    let mut src = Source::open(input, &rules.input)?;
    for name in &src.names {
        if !rules.columns.iter().any(|r| &r.source == name) {
            return Err(PrepareError::UnknownColumn { column: name.clone() });
        }
    }
    let col_of: Vec<usize> = rules
        .columns
        .iter()
        .map(|r| {
            src.names
                .iter()
                .position(|n| *n == r.source)
                .ok_or_else(|| PrepareError::MissingColumn { column: r.source.clone() })
        })
        .collect::<Result<_, _>>()?;
    // Values carried per row, in rule order (the token travels beside them).
    let valued: Vec<usize> =
        (0..rules.columns.len()).filter(|&i| i != unit && rules.columns[i].sealed_name().is_some()).collect();
    let slots: Vec<Slot> = (0..rules.columns.len())
        .filter(|&i| rules.columns[i].sealed_name().is_some())
        .map(
            |i| if i == unit { Slot::Token } else { Slot::Value(valued.iter().position(|&v| v == i).expect("listed")) },
        )
        .collect();
    let kept: Vec<usize> = (0..rules.columns.len()).filter(|&i| rules.columns[i].keeps_values()).collect();

    // Pass 1: read, check, scan, transform, tokenize; push into the external sort.
    let sort_dir = staging.join("sort");
    let mut sorter = extsort::ExternalSorter::new()
        .with_segment_size(opts.segment_rows)
        .with_sort_dir(sort_dir.clone())
        .pushed_by_key(Row::sort_key);
    let mut pii_hits: Vec<[u64; Detector::ALL.len()]> = vec![[0; Detector::ALL.len()]; rules.columns.len()];
    let refusable: Vec<bool> = rules
        .columns
        .iter()
        .map(|r| {
            matches!(r.transform, ColumnTransform::Keep { .. } | ColumnTransform::Prefix { .. })
                && r.allow_pii.is_none()
        })
        .collect();
    let hints: Vec<pii::ColumnHint> = rules.columns.iter().map(|r| pii::ColumnHint::from_name(&r.source)).collect();
    // A column sealed as a number cannot carry text: only values that are not numbers are
    // scanned there (so a ten-digit amount is not taken for a phone number, while an
    // address pasted into it is caught).
    let numeric: Vec<bool> = rules
        .columns
        .iter()
        .map(|r| r.keeps_values() && matches!(r.sealed_type(), Some(SealedType::F64 | SealedType::I64)))
        .collect();
    let mut scanned = vec![0u64; rules.columns.len()];
    let (mut rows_read, mut rows_dropped_null) = (0u64, 0u64);
    let mut values = Vec::new();
    'rows: while src.next_row(&mut values)? {
        rows_read += 1;
        let r = src.row;
        for (i, rule) in rules.columns.iter().enumerate() {
            if rule.sealed_name().is_some() && values[col_of[i]] == Value::Null {
                match rule.nulls {
                    NullPolicy::Refuse => return Err(PrepareError::Null { row: r, column: rule.source.clone() }),
                    NullPolicy::DropRow => {
                        rows_dropped_null += 1;
                        continue 'rows;
                    }
                    // Sealed as a null below (the rules refuse it on the privacy unit).
                    NullPolicy::Keep => {}
                }
            }
        }
        // Every column is scanned: findings in dropped or tokenized columns are reported
        // (expected there), in kept ones refused unless the rules allow them.
        for i in 0..rules.columns.len() {
            // Columns whose findings can refuse the seal are scanned in full; the others
            // (dropped, tokenized, generalized) only for the report, sampled like a draft.
            if !refusable[i]
                && rows_read > crate::suggest::FULL_SCAN_ROWS
                && !rows_read.is_multiple_of(crate::suggest::SAMPLE_STRIDE)
            {
                continue;
            }
            let v = &values[col_of[i]];
            scanned[i] += 1;
            let text: std::borrow::Cow<'_, str> = match v {
                Value::Text(t) if !(numeric[i] && t.trim().parse::<f64>().is_ok()) => t.as_str().into(),
                Value::Text(_) | Value::Null => continue,
                _ if numeric[i] => continue,
                other => transform::as_text(other).into(),
            };
            for kind in pii::scan_in_column(&hints[i], &text).iter() {
                pii_hits[i][kind as usize] += 1;
            }
        }
        let token = match transform::apply(&rules.columns[unit], &values[col_of[unit]], r, tokens)? {
            Sealed::Token(t) => t,
            _ => unreachable!("tokenize yields a token"),
        };
        let mut out = Vec::with_capacity(valued.len());
        for &i in &valued {
            let rule = &rules.columns[i];
            let v = match transform::apply_or_null(rule, &values[col_of[i]], r, tokens) {
                Ok(v) => v,
                // A value that is PII is reported as such, not as a type error.
                Err(e) => return Err(pii_refusal(rule, &pii_hits[i], scanned[i]).unwrap_or(e)),
            };
            if let (Some(domain), Sealed::I64(x)) = (&rule.label_domain, &v) {
                if !domain.contains(x) {
                    return Err(transform::bad(
                        r,
                        &rule.source,
                        format!("label outside its declared domain {domain:?}"),
                    ));
                }
            }
            out.push(v);
        }
        sorter.push(Row { token, row: r, values: out }).map_err(spill(&sort_dir))?;
        if rows_read.is_multiple_of(16_384) {
            progress.update(Phase::Read, src.bytes_read(), src.total_bytes);
        }
    }
    progress.update(Phase::Read, src.total_bytes, src.total_bytes);
    let mut findings = Vec::new();
    for &i in &kept {
        if let Some(e) = pii_refusal(&rules.columns[i], &pii_hits[i], scanned[i]) {
            return Err(e);
        }
    }
    for (i, rule) in rules.columns.iter().enumerate() {
        for (d, &n) in Detector::ALL.iter().zip(&pii_hits[i]) {
            if n > 0 {
                findings.push(PiiFinding {
                    column: rule.source.clone(),
                    detector: d.name().to_string(),
                    matches: n,
                    sampled: scanned[i],
                    declared_label: rule.label,
                });
            }
        }
    }
    let kept_rows = rows_read - rows_dropped_null;
    if kept_rows == 0 {
        return Err(PrepareError::Empty);
    }

    // Pass 2: merge the sorted segments into one sorted file; count the units behind
    // each category of every text column (for rare-category merging).
    let sorted_path = staging.join("sorted.rows");
    let text_cols: Vec<usize> =
        (0..valued.len()).filter(|&p| rules.columns[valued[p]].sealed_type() == Some(SealedType::Dict)).collect();
    let mut category_units: Vec<HashMap<String, u64>> = vec![HashMap::new(); valued.len()];
    let mut units = 0u64;
    {
        let sorted = sorter.done().map_err(spill(&sort_dir))?;
        let mut current: Option<[u8; 32]> = None;
        let mut seen: HashSet<(usize, String)> = HashSet::new();
        let mut done_rows = 0u64;
        SortedFile::write(&sorted_path, sorted, |row| {
            if current != Some(row.token) {
                current = Some(row.token);
                units += 1;
                seen.clear();
            }
            for &p in &text_cols {
                if let Sealed::Text(s) = &row.values[p] {
                    if seen.insert((p, s.clone())) {
                        *category_units[p].entry(s.clone()).or_default() += 1;
                    }
                }
            }
            done_rows += 1;
            if done_rows.is_multiple_of(65_536) {
                progress.update(Phase::Sort, done_rows, kept_rows);
            }
        })
        .map_err(spill(&sorted_path))?;
    }
    let _ = fs::remove_dir_all(&sort_dir);

    // Rare categories → `other`; the final dictionary of every text column.
    let mut merge: Vec<HashSet<String>> = vec![HashSet::new(); valued.len()];
    let mut dictionaries: Vec<Vec<String>> = vec![Vec::new(); valued.len()];
    let mut merged = BTreeMap::new();
    for &p in &text_cols {
        let rule = &rules.columns[valued[p]];
        if let Some(k) = rule.merge_rare_below {
            merge[p] = category_units[p].iter().filter(|(_, &n)| n < k).map(|(c, _)| c.clone()).collect();
            merged.insert(rule.into.clone(), merge[p].len() as u64);
        }
        let mut dict: Vec<String> = category_units[p].keys().filter(|c| !merge[p].contains(*c)).cloned().collect();
        if !merge[p].is_empty() && !dict.iter().any(|c| c == OTHER_CATEGORY) {
            dict.push(OTHER_CATEGORY.to_string());
        }
        dict.sort();
        dictionaries[p] = dict;
    }
    drop(category_units);
    let apply_merge = |p: usize, v: &Sealed| -> Sealed {
        match v {
            Sealed::Text(s) if merge[p].contains(s) => Sealed::Text(OTHER_CATEGORY.to_string()),
            other => other.clone(),
        }
    };

    // Pass 3: k-anonymity (in people) over the quasi-identifiers after merging, and
    // l-diversity of the sensitive columns within classes.
    let qi: Vec<usize> =
        (0..valued.len()).filter(|&p| rules.columns[valued[p]].label == Sensitivity::QuasiIdentifier).collect();
    let sensitive: Vec<usize> =
        (0..valued.len()).filter(|&p| rules.columns[valued[p]].label == Sensitivity::Sensitive).collect();
    let class_key = |row: &Row| -> Vec<u8> {
        let mut key = Vec::new();
        for &p in &qi {
            value_bytes(&apply_merge(p, &row.values[p]), &mut key);
        }
        key
    };
    let mut suppressed: HashSet<Vec<u8>> = HashSet::new();
    let k_anonymity = if qi.is_empty() {
        None
    } else {
        let mut classes: HashMap<Vec<u8>, ClassStats> = HashMap::new();
        let mut current: Option<[u8; 32]> = None;
        let mut unit_classes: HashSet<Vec<u8>> = HashSet::new();
        for row in SortedFile::read(&sorted_path).map_err(spill(&sorted_path))? {
            let row = row.map_err(spill(&sorted_path))?;
            if current != Some(row.token) {
                current = Some(row.token);
                unit_classes.clear();
            }
            let key = class_key(&row);
            let stats = classes.entry(key.clone()).or_insert_with(|| ClassStats::new(sensitive.len()));
            stats.rows += 1;
            if unit_classes.insert(key) {
                stats.units += 1;
            }
            for (slot, &p) in stats.distinct.iter_mut().zip(&sensitive) {
                let mut b = Vec::new();
                value_bytes(&row.values[p], &mut b);
                // Distinct values are only counted here (on the owner's machine), so a fast
                // non-cryptographic hash will do; a collision can only under-count l.
                let h =
                    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3));
                if slot.len() < L_DIVERSITY_CAP && !slot.contains(&h) {
                    slot.push(h);
                }
            }
        }
        let k = rules.k_anonymity.k;
        let below: Vec<(&Vec<u8>, &ClassStats)> = classes.iter().filter(|(_, s)| s.units < k).collect();
        let names: Vec<String> = qi.iter().map(|&p| rules.columns[valued[p]].into.clone()).collect();
        let k_min = classes.values().map(|s| s.units).min().unwrap_or(0);
        let (remedy, rows_suppressed) = match &rules.k_anonymity.remedy {
            KRemedy::Refuse if !below.is_empty() => {
                return Err(PrepareError::BelowK {
                    quasi_identifiers: names,
                    k,
                    k_min,
                    classes: classes.len() as u64,
                    classes_below: below.len() as u64,
                })
            }
            KRemedy::Refuse => ("refuse".to_string(), 0),
            KRemedy::Suppress => {
                suppressed = below.iter().map(|(key, _)| (*key).clone()).collect();
                ("suppress".to_string(), below.iter().map(|(_, s)| s.rows).sum())
            }
            KRemedy::Override { reason } => (format!("override: {reason}"), 0),
        };
        if rows_suppressed == kept_rows {
            return Err(PrepareError::BelowK {
                quasi_identifiers: names,
                k,
                k_min,
                classes: classes.len() as u64,
                classes_below: below.len() as u64,
            });
        }
        let remaining = || classes.iter().filter(|(key, _)| !suppressed.contains(*key)).map(|(_, s)| s);
        let l_diversity = sensitive
            .iter()
            .enumerate()
            .map(|(j, &p)| LDiversity {
                column: rules.columns[valued[p]].into.clone(),
                l_min: remaining().map(|s| s.distinct[j].len() as u64).min().unwrap_or(0),
                classes_with_one_value: remaining().filter(|s| s.distinct[j].len() == 1).count() as u64,
            })
            .collect();
        Some(KAnonymityReport {
            quasi_identifiers: names,
            k_min,
            classes: classes.len() as u64,
            k_target: k,
            classes_below_target: below.len() as u64,
            rows_below_target: below.iter().map(|(_, s)| s.rows).sum(),
            units_below_target: Some(below.iter().map(|(_, s)| s.units).sum()),
            remedy: Some(remedy),
            rows_suppressed,
            l_diversity,
        })
    };

    // Pass 4: chunks (suppressed rows left out, rare categories merged), encoded into a
    // staging file; every chunk is then padded to one length (a power of two), so the
    // host learns the chunk count and that length, not the rows or values inside.
    let plain_chunks = staging.join("chunks.plain");
    let per = usize::try_from(opts.rows_per_chunk).unwrap_or(usize::MAX);
    let mut builder = ChunkBuilder::new(&slots, &valued, rules, &dictionaries, per.min(1 << 20));
    let mut sealed_rows = 0u64;
    let mut sealed_units = 0u64;
    let mut max_len = 0usize;
    let mut chunks = 0u64;
    {
        let mut w = BufWriter::new(fs::File::create(&plain_chunks).map_err(spill(&plain_chunks))?);
        let flush = |b: &mut ChunkBuilder,
                     w: &mut BufWriter<fs::File>,
                     max_len: &mut usize,
                     chunks: &mut u64|
         -> Result<(), PrepareError> {
            let bytes = b.take()?.encode();
            *max_len = (*max_len).max(bytes.len());
            *chunks += 1;
            w.write_all(&(bytes.len() as u64).to_le_bytes())
                .and_then(|_| w.write_all(&bytes))
                .map_err(spill(&plain_chunks))
        };
        let mut current: Option<[u8; 32]> = None;
        for row in SortedFile::read(&sorted_path).map_err(spill(&sorted_path))? {
            let row = row.map_err(spill(&sorted_path))?;
            if !suppressed.is_empty() && suppressed.contains(&class_key(&row)) {
                continue;
            }
            if current != Some(row.token) {
                current = Some(row.token);
                sealed_units += 1;
            }
            builder.push(&row, &apply_merge);
            sealed_rows += 1;
            if builder.rows == per {
                flush(&mut builder, &mut w, &mut max_len, &mut chunks)?;
            }
        }
        if builder.rows > 0 || chunks == 0 {
            flush(&mut builder, &mut w, &mut max_len, &mut chunks)?;
        }
        w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).map_err(spill(&plain_chunks))?;
    }
    let _ = fs::remove_file(&sorted_path);
    let padded_len = protocol::sealed::padded_len_for(max_len);
    let mut digest_ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for chunk in PlainChunks::open(&plain_chunks)? {
        let padded = protocol::sealed::pad(&chunk?, padded_len)
            .ok_or_else(|| PrepareError::InvalidOptions("a chunk does not fit its padded length".into()))?;
        digest_ctx.update(&padded);
    }
    let dataset_digest = Digest(digest_ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"));

    let key_id = tokens.key_id();
    let columns = rules
        .columns
        .iter()
        .map(|r| ColumnSpec {
            source_name: r.source.clone(),
            sealed_name: r.sealed_name().map(str::to_string),
            sealed_type: r.sealed_type().map(|t| t.name().to_string()),
            label: r.label,
            transform: r.manifest_transform(&key_id),
            roles: r.roles.clone(),
            label_domain: r.label_domain.clone(),
            reason: Some(r.reason.clone()),
            allow_pii: r.allow_pii.clone(),
            allow_regression: r.allow_regression.clone(),
            nullable: r.nullable(),
        })
        .collect();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        dataset_name: dataset_name(input, opts),
        columns,
        privacy_unit: rules.columns[unit].into.clone(),
        lineage: Lineage {
            source_file: input.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            source_format: src.format.name().to_string(),
            source_digest,
            ingested_at: opts.now_unix,
            rules_digest: Some(rules.digest),
            token_key: Some(format!("{key_id} ({key_home})")),
        },
        rows: sealed_rows,
        chunks,
        rows_per_chunk: opts.rows_per_chunk,
        dataset_digest,
        k_anonymity,
        pii_findings: findings,
        sorted_by_unit: true,
        rows_dropped_null,
        retention_until: rules.retention_until.map(|d| d.to_string()),
    };
    let drift = opts.previous.as_ref().map(|prev| snapshot::compare(prev, &manifest));
    if let Some(r) = drift.iter().flat_map(|d| &d.regressions).find(|r| r.allowed.is_none()) {
        return Err(PrepareError::Regression {
            column: r.column.clone(),
            before: r.before.clone(),
            after: r.after.clone(),
        });
    }
    let nulls_sealed = builder.nulls_sealed();
    Ok(Staged { manifest, rows_read, units: sealed_units, merged, drift, nulls_sealed, plain_chunks, padded_len })
}

/// The refusal for PII found in a kept column, unless the rule allows it.
fn pii_refusal(rule: &ColumnRule, hits: &[u64], scanned: u64) -> Option<PrepareError> {
    if rule.allow_pii.is_some() {
        return None;
    }
    // What passes source text through decides what is refused: a kept column any
    // identifying value, a prefix a direct identifier (part of an email still points at
    // one person; three digits of a postcode are the usual remedy). Bins, dates truncated
    // to a year or month, ages and recodes are the remedy themselves. Free text is
    // reported, never refused: it is a reason to look, not an identifier.
    let refused = |d: Detector| match rule.transform {
        ColumnTransform::Keep { .. } => d.is_identifying(),
        ColumnTransform::Prefix { .. } => d.is_direct_identifier(),
        _ => false,
    };
    Detector::ALL.iter().zip(hits).find(|(d, &n)| n > 0 && refused(**d)).map(|(d, &n)| PrepareError::PiiInKeptColumn {
        column: rule.source.clone(),
        detector: d.name(),
        matches: n,
        scanned,
    })
}

struct ClassStats {
    rows: u64,
    units: u64,
    /// Per sensitive column, hashes of up to `L_DIVERSITY_CAP` distinct values.
    distinct: Vec<Vec<u64>>,
}

impl ClassStats {
    fn new(sensitive: usize) -> Self {
        ClassStats { rows: 0, units: 0, distinct: vec![Vec::new(); sensitive] }
    }
}

/// An unambiguous byte form of a value, for class keys.
fn value_bytes(v: &Sealed, out: &mut Vec<u8>) {
    match v {
        Sealed::F64(x) => {
            out.push(0);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Sealed::I64(x) => {
            out.push(1);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Sealed::Text(s) => {
            out.push(2);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Sealed::Token(t) => {
            out.push(3);
            out.extend_from_slice(t);
        }
        // A null quasi-identifier is a value of its own: it can single people out too.
        Sealed::Null => out.push(4),
    }
}

/// Accumulates one chunk's rows column by column.
struct ChunkBuilder<'a> {
    slots: &'a [Slot],
    names: Vec<String>,
    types: Vec<SealedType>,
    /// Per sealed column: whether it may hold nulls. Such a column carries a validity in
    /// every chunk, nulls or not, so the schema alone decides the encoding's shape.
    nullable: Vec<bool>,
    dictionaries: Vec<(&'a [String], HashMap<&'a str, u32>)>,
    columns: Vec<ColumnData>,
    validity: Vec<Option<Validity>>,
    /// Nulls sealed so far per sealed column (the owner's report).
    nulls: Vec<u64>,
    rows: usize,
    capacity: usize,
}

impl<'a> ChunkBuilder<'a> {
    fn new(
        slots: &'a [Slot],
        valued: &[usize],
        rules: &Rules,
        dictionaries: &'a [Vec<String>],
        capacity: usize,
    ) -> Self {
        let sealed: Vec<&ColumnRule> = rules.columns.iter().filter(|r| r.sealed_name().is_some()).collect();
        let names = sealed.iter().map(|r| r.into.clone()).collect();
        let types = sealed.iter().map(|r| r.sealed_type().expect("sealed")).collect();
        let nullable: Vec<bool> = sealed.iter().map(|r| r.nullable()).collect();
        let dictionaries = (0..valued.len())
            .map(|p| {
                let d = dictionaries[p].as_slice();
                (d, d.iter().enumerate().map(|(i, v)| (v.as_str(), i as u32)).collect())
            })
            .collect();
        let mut b = ChunkBuilder {
            slots,
            names,
            types,
            nulls: vec![0; nullable.len()],
            nullable,
            dictionaries,
            columns: Vec::new(),
            validity: Vec::new(),
            rows: 0,
            capacity,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        let n = self.capacity;
        self.columns = self
            .types
            .iter()
            .map(|t| match t {
                SealedType::F64 => ColumnData::F64(Vec::with_capacity(n)),
                SealedType::I64 => ColumnData::I64(Vec::with_capacity(n)),
                SealedType::Dict => ColumnData::Dict { codes: Vec::with_capacity(n), values: Vec::new() },
                SealedType::Token => ColumnData::Token(Vec::with_capacity(n)),
            })
            .collect();
        self.validity = self.nullable.iter().map(|&n| n.then(Validity::default)).collect();
        self.rows = 0;
    }

    fn nulls_sealed(&self) -> BTreeMap<String, u64> {
        self.names
            .iter()
            .zip(&self.nullable)
            .zip(&self.nulls)
            .filter(|((_, n), _)| **n)
            .map(|((c, _), &k)| (c.clone(), k))
            .collect()
    }

    fn push(&mut self, row: &Row, merge: &dyn Fn(usize, &Sealed) -> Sealed) {
        for (((c, slot), validity), nulls) in
            self.columns.iter_mut().zip(self.slots).zip(&mut self.validity).zip(&mut self.nulls)
        {
            let value = match slot {
                Slot::Token => Sealed::Token(row.token),
                Slot::Value(p) => merge(*p, &row.values[*p]),
            };
            if let Some(v) = validity {
                v.push(value != Sealed::Null);
            }
            match (c, value) {
                (ColumnData::Token(v), Sealed::Token(t)) => v.push(t),
                (ColumnData::F64(v), Sealed::F64(x)) => v.push(x),
                (ColumnData::I64(v), Sealed::I64(x)) => v.push(x),
                (ColumnData::Dict { codes, .. }, Sealed::Text(s)) => {
                    let Slot::Value(p) = slot else { unreachable!("a text value comes from a value slot") };
                    codes.push(*self.dictionaries[*p].1.get(s.as_str()).expect("dictionary covers every category"))
                }
                // The canonical value: nothing but the validity says "null".
                (c, Sealed::Null) => {
                    assert!(validity.is_some(), "only a nullable column holds a null");
                    *nulls += 1;
                    match c {
                        ColumnData::F64(v) => v.push(0.0),
                        ColumnData::I64(v) => v.push(0),
                        ColumnData::Dict { codes, .. } => codes.push(0),
                        ColumnData::Token(_) => unreachable!("the privacy unit is never null"),
                    }
                }
                _ => unreachable!("sealed values match their rule's type"),
            }
        }
        self.rows += 1;
    }

    fn take(&mut self) -> Result<RecordBatch, PrepareError> {
        let mut columns = std::mem::take(&mut self.columns);
        for (c, slot) in columns.iter_mut().zip(self.slots) {
            if let (ColumnData::Dict { values, .. }, Slot::Value(p)) = (c, slot) {
                *values = self.dictionaries[*p].0.to_vec();
            }
        }
        let validity = self
            .names
            .iter()
            .zip(std::mem::take(&mut self.validity))
            .filter_map(|(name, v)| Some((name.clone(), v?)))
            .collect();
        let batch = RecordBatch::with_validity(
            self.names.iter().cloned().zip(columns).map(|(name, data)| Column { name, data }).collect(),
            validity,
        )
        .map_err(|e| PrepareError::InvalidOptions(format!("building a record batch: {e}")));
        self.reset();
        batch
    }
}

/// Length-prefixed encoded chunks in the staging folder.
struct PlainChunks {
    r: BufReader<fs::File>,
    path: PathBuf,
}

impl PlainChunks {
    fn open(path: &Path) -> Result<PlainChunks, PrepareError> {
        Ok(PlainChunks { r: BufReader::new(fs::File::open(path).map_err(spill(path))?), path: path.to_path_buf() })
    }
}

impl Iterator for PlainChunks {
    type Item = Result<Vec<u8>, PrepareError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut len = [0u8; 8];
        match self.r.read_exact(&mut len) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(spill(&self.path)(e))),
            Ok(()) => {}
        }
        let mut buf = vec![0u8; u64::from_le_bytes(len) as usize];
        Some(self.r.read_exact(&mut buf).map(|_| buf).map_err(spill(&self.path)))
    }
}

/// Pass 5: pad, seal and write each chunk; returns the chunk files' digests and bytes.
fn seal_chunks(
    staged: &Staged,
    key: &DataKey,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<(Vec<Digest>, u64), PrepareError> {
    let chunks = staged.manifest.chunks;
    let mut digests = Vec::with_capacity(chunks as usize);
    let mut bytes = 0u64;
    for (i, plain) in PlainChunks::open(&staged.plain_chunks)?.enumerate() {
        let index = i as u64;
        let padded = protocol::sealed::pad(&plain?, staged.padded_len)
            .ok_or_else(|| PrepareError::InvalidOptions("a chunk does not fit its padded length".into()))?;
        let chunk = seal_chunk(key, &staged.manifest.dataset_digest, index, index + 1 == chunks, &padded);
        let blob = protocol::to_cbor(&chunk);
        let path = dir.join(chunk_file_name(index));
        fs::write(&path, &blob).map_err(io(&path))?;
        bytes += blob.len() as u64;
        digests.push(Digest::of(&blob));
        progress.update(
            Phase::Seal,
            ((index + 1) * staged.manifest.rows_per_chunk).min(staged.manifest.rows),
            staged.manifest.rows,
        );
    }
    Ok((digests, bytes))
}

#[cfg(test)]
mod roles_tests {
    use super::*;
    use protocol::policy::ColumnRole;

    #[test]
    fn bank_rules_give_the_policy_roles() {
        let r = Rules::bank();
        let zip = r.columns.iter().find(|c| c.source == "zip").unwrap();
        assert_eq!(zip.roles, [ColumnRole::Input, ColumnRole::GroupBy]);
    }
}
