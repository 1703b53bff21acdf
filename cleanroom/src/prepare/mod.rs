//! The owner's offline preparation of a table (ARCHITECTURE.md, "Flow of one job" step 1).
//!
//! `prepare` reads a CSV or Parquet file, applies one [`ColumnRule`] per column
//! (tokenize the privacy-unit identifier with the owner's HMAC key, drop the other
//! direct identifiers, generalize quasi-identifiers, keep sensitive attributes), scans
//! for undeclared PII, reports k-anonymity, and seals the result:
//!
//! ```text
//! out_dir/manifest.json          protocol::manifest::Manifest (JSON)
//! out_dir/chunks/000000.sealed   CBOR SealedChunk, AES-256-GCM, bound to
//! out_dir/chunks/000001.sealed   (dataset digest, chunk index, final flag)
//! ...
//! ```
//!
//! The dataset digest is SHA-256 over the concatenated encoded plaintext chunks, exactly
//! what [`protocol::sealed::Opener::finish`] recomputes. The data key goes into the
//! owner's key store, never into `out_dir`. Everything is validated before anything is
//! written, so bad input leaves no partial output.

mod pii;
mod rules;
mod source;
mod transform;

pub use pii::Detector;
pub use rules::{ColumnRule, ColumnTransform};
pub use source::SourceFormat;

use crate::keystore::{fresh_data_key, KeyStore, KeyStoreError};
use protocol::manifest::{ColumnSpec, KAnonymityReport, Lineage, Manifest, PiiFinding, Sensitivity};
use protocol::sealed::{seal_chunk, DataKey, Opener, SealError};
use protocol::table::{Column, ColumnData, RecordBatch};
use protocol::Digest;
use std::fs;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const CHUNKS_DIR: &str = "chunks";
pub const MANIFEST_VERSION: u32 = 1;
pub const DEFAULT_ROWS_PER_CHUNK: u64 = 16_384;
pub const DEFAULT_K_TARGET: u64 = 10;

/// File name of chunk `index` inside `out_dir/chunks/`.
pub fn chunk_file_name(index: u64) -> String {
    format!("{index:06}.sealed")
}

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub rows_per_chunk: u64,
    /// Unix seconds recorded as the ingestion time (passed in; never read from a clock here).
    pub now_unix: u64,
    /// k-anonymity target for the report.
    pub k_target: u64,
    /// One rule per source column.
    pub rules: Vec<ColumnRule>,
    /// Name recorded in the manifest; defaults to the input file's stem.
    pub dataset_name: Option<String>,
    /// Seal even if a kept (not dropped or tokenized) column contains PII-looking values.
    pub allow_pii_in_kept_columns: bool,
    /// Replace an existing manifest and chunks in `out_dir` (otherwise an error).
    pub overwrite: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            rows_per_chunk: DEFAULT_ROWS_PER_CHUNK,
            now_unix: 0,
            k_target: DEFAULT_K_TARGET,
            rules: ColumnRule::bank_defaults(),
            dataset_name: None,
            allow_pii_in_kept_columns: false,
            overwrite: false,
        }
    }
}

/// What `prepare` did.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub rows: u64,
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
    /// Manifest plus chunk files.
    pub bytes_written: u64,
    /// True when the key store already held a key for this exact dataset digest (an
    /// identical earlier run) and it was reused, so earlier sealed copies stay readable.
    pub data_key_reused: bool,
}

#[derive(Debug, thiserror::Error)]
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
    #[error("invalid column rules: {0}")]
    InvalidRules(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("row {row}, column {column:?}: missing value (null)")]
    Null { row: u64, column: String },
    #[error("row {row}, column {column:?}: {why}")]
    BadValue { row: u64, column: String, why: String },
    #[error("the input has no data rows")]
    Empty,
    #[error(
        "column {column:?} is kept in the sealed table but {matches} of {scanned} values look like {detector}; \
         drop or tokenize it, or opt out explicitly"
    )]
    PiiInKeptColumn { column: String, detector: &'static str, matches: u64, scanned: u64 },
    #[error("{} already holds a sealed dataset; refusing to overwrite it", path.display())]
    OutputExists { path: PathBuf },
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: malformed manifest: {why}", path.display())]
    Manifest { path: PathBuf, why: String },
    #[error("{}: not a sealed chunk: {why}", path.display())]
    Chunk { path: PathBuf, why: String },
    #[error("{}: unexpected file in the chunks directory", path.display())]
    UnexpectedFile { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Seal { path: PathBuf, source: SealError },
    #[error("{}: {source}", dir.display())]
    Incomplete { dir: PathBuf, source: SealError },
    #[error("sealed data does not match the manifest: {0}")]
    Mismatch(String),
}

/// Read `input`, apply `opts.rules`, seal the result into `out_dir` and store the data
/// key in `keystore` (which is saved).
pub fn prepare(
    input: &Path,
    keystore: &mut KeyStore,
    out_dir: &Path,
    opts: &PrepareOptions,
) -> Result<PrepareReport, PrepareError> {
    if opts.rows_per_chunk == 0 {
        return Err(PrepareError::InvalidOptions("rows_per_chunk must be at least 1".into()));
    }
    let unit = rules::validate(&opts.rules)?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    let chunks_dir = out_dir.join(CHUNKS_DIR);
    if !opts.overwrite {
        for p in [&manifest_path, &chunks_dir] {
            if p.exists() {
                return Err(PrepareError::OutputExists { path: p.clone() });
            }
        }
    }

    // 1. Read and match columns to rules.
    let table = source::read(input)?;
    for name in &table.names {
        if !opts.rules.iter().any(|r| &r.source == name) {
            return Err(PrepareError::UnknownColumn { column: name.clone() });
        }
    }
    let raw_of = |rule: &ColumnRule| {
        let i = table.names.iter().position(|n| *n == rule.source);
        i.map(|i| &table.columns[i]).ok_or_else(|| PrepareError::MissingColumn { column: rule.source.clone() })
    };
    let raws = opts.rules.iter().map(raw_of).collect::<Result<Vec<_>, _>>()?;
    if table.rows == 0 {
        return Err(PrepareError::Empty);
    }

    // 2. PII scan (before conversion, so a pasted email is reported as PII, not as a type error).
    let mut findings = Vec::new();
    for (rule, raw) in opts.rules.iter().zip(&raws) {
        let text = transform::as_text(raw);
        let mut counts = [0u64; 4];
        for v in text.iter() {
            for (c, hit) in counts.iter_mut().zip(pii::scan(v)) {
                *c += u64::from(hit);
            }
        }
        for (d, &n) in Detector::ALL.iter().zip(&counts) {
            if n == 0 {
                continue;
            }
            if rule.keeps_values() && !opts.allow_pii_in_kept_columns {
                return Err(PrepareError::PiiInKeptColumn {
                    column: rule.source.clone(),
                    detector: d.name(),
                    matches: n,
                    scanned: text.len() as u64,
                });
            }
            findings.push(PiiFinding {
                column: rule.source.clone(),
                detector: d.name().to_string(),
                matches: n,
                sampled: text.len() as u64,
                declared_label: rule.label,
            });
        }
    }

    // 3. Transform.
    let tokenizer = keystore.tokenization_key().tokenizer();
    let key_id = keystore.key_id();
    let mut sealed: Vec<Column> = Vec::new();
    let mut specs = Vec::new();
    for (rule, raw) in opts.rules.iter().zip(&raws) {
        specs.push(ColumnSpec {
            source_name: rule.source.clone(),
            sealed_name: rule.sealed_name().map(str::to_string),
            sealed_type: rule.sealed_type().map(str::to_string),
            label: rule.label,
            transform: rule.manifest_transform(&key_id),
        });
        if let Some(name) = rule.sealed_name() {
            sealed.push(Column { name: name.to_string(), data: transform::apply(rule, raw, &tokenizer)? });
        }
    }
    drop(raws);
    drop(table.columns);

    // Sort rows by privacy unit: the enclave can then bound each unit's contribution in
    // one streaming pass, and the sealed order says nothing about the source order.
    let unit_name = opts.rules[unit].sealed_name().expect("tokenized columns are sealed");
    if let Some(ColumnData::Token(tokens)) = sealed.iter().find(|c| c.name == unit_name).map(|c| &c.data) {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by(|&a, &b| tokens[a].cmp(&tokens[b]));
        for c in &mut sealed {
            c.data = permute(&c.data, &order);
        }
    }

    // 4. k-anonymity over the sealed quasi-identifiers.
    let qi: Vec<(&str, &ColumnData)> = opts
        .rules
        .iter()
        .filter(|r| r.label == Sensitivity::QuasiIdentifier)
        .filter_map(|r| r.sealed_name())
        .filter_map(|n| sealed.iter().find(|c| c.name == n).map(|c| (n, &c.data)))
        .collect();
    let k_anonymity = (!qi.is_empty()).then(|| {
        let names: Vec<String> = qi.iter().map(|(n, _)| n.to_string()).collect();
        let cols: Vec<&ColumnData> = qi.iter().map(|(_, c)| *c).collect();
        transform::k_anonymity(&names, &cols, table.rows, opts.k_target)
    });

    // 5. Chunk, encode, digest.
    let rows = table.rows;
    let per = usize::try_from(opts.rows_per_chunk).unwrap_or(usize::MAX);
    let mut plaintexts = Vec::new();
    let mut digest_ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut start = 0;
    while start < rows {
        let end = rows.min(start.saturating_add(per));
        let batch = RecordBatch::new(sealed.iter().map(|c| slice(c, start, end)).collect())
            .map_err(|e| PrepareError::InvalidRules(format!("building a record batch: {e}")))?;
        plaintexts.push(batch.encode());
        start = end;
    }
    drop(sealed);
    // Every chunk is padded to one length, so the host learns the chunk count and that
    // length (a power of two), not the rows, dictionaries or values inside.
    let padded_len = protocol::sealed::padded_len_for(plaintexts.iter().map(Vec::len).max().unwrap_or(0));
    for p in plaintexts.iter_mut() {
        *p = protocol::sealed::pad(p, padded_len)
            .ok_or_else(|| PrepareError::InvalidRules("a chunk does not fit its padded length".into()))?;
        digest_ctx.update(p);
    }
    let dataset_digest = Digest(digest_ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes"));
    let chunks = plaintexts.len() as u64;

    let manifest = Manifest {
        sorted_by_unit: true,
        version: MANIFEST_VERSION,
        dataset_name: opts.dataset_name.clone().unwrap_or_else(|| {
            input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into())
        }),
        columns: specs,
        privacy_unit: opts.rules[unit].sealed_name().expect("tokenized columns are sealed").to_string(),
        lineage: Lineage {
            source_file: input.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            source_format: table.format.name().to_string(),
            source_digest: table.digest,
            ingested_at: opts.now_unix,
        },
        rows: rows as u64,
        chunks,
        rows_per_chunk: opts.rows_per_chunk,
        dataset_digest,
        k_anonymity: k_anonymity.clone(),
        pii_findings: findings.clone(),
    };

    // 6. Key: reuse the key of an identical earlier dataset, else a fresh one. Persist it
    //    before writing ciphertext, so sealed output never exists without its key.
    let (data_key, data_key_reused) = match keystore.data_key(&dataset_digest) {
        Some(k) => (k, true),
        None => (fresh_data_key()?, false),
    };
    keystore.store_data_key(dataset_digest, data_key.clone())?;
    keystore.save()?;

    // 7. Seal and write (staged, then moved into place).
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PrepareError::Io { path, source }
    };
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let staging = out_dir.join(".prepare-staging");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let staged_chunks = staging.join(CHUNKS_DIR);
    fs::create_dir_all(&staged_chunks).map_err(io(&staged_chunks))?;
    let mut bytes_written = 0u64;
    let mut chunk_digests = Vec::with_capacity(plaintexts.len());
    for (i, plain) in plaintexts.iter().enumerate() {
        let index = i as u64;
        let chunk = seal_chunk(&data_key, &dataset_digest, index, index + 1 == chunks, plain);
        let blob = protocol::to_cbor(&chunk);
        let path = staged_chunks.join(chunk_file_name(index));
        fs::write(&path, &blob).map_err(io(&path))?;
        bytes_written += blob.len() as u64;
        chunk_digests.push(Digest::of(&blob));
    }
    let json = manifest.to_json();
    let staged_manifest = staging.join(MANIFEST_FILE);
    fs::write(&staged_manifest, json.as_bytes()).map_err(io(&staged_manifest))?;
    bytes_written += json.len() as u64;
    if chunks_dir.exists() {
        fs::remove_dir_all(&chunks_dir).map_err(io(&chunks_dir))?;
    }
    fs::rename(&staged_chunks, &chunks_dir).map_err(io(&chunks_dir))?;
    fs::rename(&staged_manifest, &manifest_path).map_err(io(&manifest_path))?;
    fs::remove_dir(&staging).map_err(io(&staging))?;

    Ok(PrepareReport {
        rows: rows as u64,
        chunks,
        dataset_digest,
        manifest_digest: manifest.digest(),
        manifest,
        manifest_path,
        chunks_dir,
        chunk_digests,
        k_anonymity,
        findings,
        bytes_written,
        data_key_reused,
    })
}

fn slice(c: &Column, start: usize, end: usize) -> Column {
    let data = match &c.data {
        ColumnData::F64(v) => ColumnData::F64(v[start..end].to_vec()),
        ColumnData::I64(v) => ColumnData::I64(v[start..end].to_vec()),
        ColumnData::Token(v) => ColumnData::Token(v[start..end].to_vec()),
        ColumnData::Dict { codes, values } => {
            ColumnData::Dict { codes: codes[start..end].to_vec(), values: values.clone() }
        }
    };
    Column { name: c.name.clone(), data }
}

/// Read `out_dir/manifest.json`.
pub fn load_manifest(out_dir: &Path) -> Result<Manifest, OpenError> {
    let path = out_dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(|source| OpenError::Io { path: path.clone(), source })?;
    Manifest::from_json(&text).map_err(|e| OpenError::Manifest { path, why: e.to_string() })
}

/// Owner-side decryption of a prepared dataset: authenticate every chunk in order under
/// `key`, check the stream ends with its final chunk and matches the manifest, and return
/// the plaintext batches.
pub fn open_sealed(out_dir: &Path, key: &DataKey) -> Result<Vec<RecordBatch>, OpenError> {
    let manifest = load_manifest(out_dir)?;
    let dir = out_dir.join(CHUNKS_DIR);
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|source| OpenError::Io { path: dir.clone(), source })? {
        let entry = entry.map_err(|source| OpenError::Io { path: dir.clone(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let index = name.strip_suffix(".sealed").and_then(|s| s.parse::<u64>().ok());
        match index {
            Some(i) if chunk_file_name(i) == name => names.push((i, entry.path())),
            _ => return Err(OpenError::UnexpectedFile { path: entry.path() }),
        }
    }
    names.sort();
    let mut opener = Opener::new(key.clone(), manifest.dataset_digest);
    let mut batches = Vec::with_capacity(names.len());
    for (_, path) in &names {
        let blob = fs::read(path).map_err(|source| OpenError::Io { path: path.clone(), source })?;
        let chunk = protocol::sealed::decode_chunk(&blob)
            .map_err(|e| OpenError::Chunk { path: path.clone(), why: e.to_string() })?;
        let batch = opener.open_next(chunk).map_err(|source| OpenError::Seal { path: path.clone(), source })?;
        batches.push(batch);
    }
    let digest = opener.finish().map_err(|source| OpenError::Incomplete { dir: dir.clone(), source })?;
    if digest != manifest.dataset_digest {
        return Err(OpenError::Mismatch(format!(
            "plaintext digest {digest} differs from the manifest's {}",
            manifest.dataset_digest
        )));
    }
    let rows: u64 = batches.iter().map(|b| b.rows as u64).sum();
    if rows != manifest.rows || batches.len() as u64 != manifest.chunks {
        return Err(OpenError::Mismatch(format!(
            "{rows} rows in {} chunks, manifest says {} rows in {} chunks",
            batches.len(),
            manifest.rows,
            manifest.chunks
        )));
    }
    let schema = manifest.sealed_schema();
    for (i, b) in batches.iter().enumerate() {
        let got: Vec<(String, String)> =
            b.columns.iter().map(|c| (c.name.clone(), c.data.type_name().to_string())).collect();
        if got != schema {
            return Err(OpenError::Mismatch(format!("chunk {i} has columns {got:?}, manifest says {schema:?}")));
        }
    }
    Ok(batches)
}

/// Reorder a column's values: `out[i] = data[order[i]]`.
fn permute(data: &ColumnData, order: &[usize]) -> ColumnData {
    match data {
        ColumnData::F64(v) => ColumnData::F64(order.iter().map(|&i| v[i]).collect()),
        ColumnData::I64(v) => ColumnData::I64(order.iter().map(|&i| v[i]).collect()),
        ColumnData::Dict { codes, values } => {
            ColumnData::Dict { codes: order.iter().map(|&i| codes[i]).collect(), values: values.clone() }
        }
        ColumnData::Token(v) => ColumnData::Token(order.iter().map(|&i| v[i]).collect()),
    }
}
