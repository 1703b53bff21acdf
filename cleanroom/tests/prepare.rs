//! End-to-end tests of the owner's preparation: generate → prepare → open_sealed.

mod common;

use owner_prep::datagen::{self, Customer, Generator};
use owner_prep::keystore::KeyStore;
use owner_prep::prepare::{
    open_sealed, prepare, ColumnTransform, KRemedy, OpenError, PrepareError, PrepareOptions, Rules, BANK_RULES,
    CHUNKS_DIR, MANIFEST_FILE,
};
use protocol::manifest::{Sensitivity, Transform};
use protocol::sealed::SealError;
use protocol::table::{ColumnData, RecordBatch};
use protocol::Digest;
use std::path::{Path, PathBuf};

struct Fixture {
    dir: tempfile::TempDir,
    csv: PathBuf,
    parquet: PathBuf,
    rows: Vec<Customer>,
}

fn fixture(rows: u64, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bank.csv");
    let parquet = dir.path().join("bank.parquet");
    datagen::generate(rows, seed, &csv, &parquet).unwrap();
    let rows = Generator::new(seed).take(rows as usize).collect();
    Fixture { dir, csv, parquet, rows }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn keystore(&self, name: &str) -> KeyStore {
        KeyStore::create_or_open(&self.path(name)).unwrap()
    }
}

/// The bank rules as shipped, with classes below k kept (these tables are too small for
/// k = 10 at zip3 × decade; the k-anonymity tests below use the shipped remedy).
fn opts(rows_per_chunk: u64) -> PrepareOptions {
    let mut rules = Rules::bank();
    rules.k_anonymity.remedy = KRemedy::Override { reason: "small test table".into() };
    PrepareOptions { rows_per_chunk, now_unix: 1_764_000_000, rules, ..PrepareOptions::default() }
}

/// The bank rules file with `extra` appended (more columns, other settings).
fn bank_rules_with(extra: &str) -> Rules {
    Rules::from_toml(&format!("{BANK_RULES}\n{extra}")).unwrap()
}

fn column<'a>(batches: &'a [RecordBatch], name: &str) -> Vec<&'a ColumnData> {
    batches.iter().map(|b| b.column(name).unwrap_or_else(|| panic!("no column {name}"))).collect()
}

fn all_f64(batches: &[RecordBatch], name: &str) -> Vec<f64> {
    column(batches, name)
        .into_iter()
        .flat_map(|c| match c {
            ColumnData::F64(v) => v.clone(),
            other => panic!("{name} is {}", other.type_name()),
        })
        .collect()
}

fn all_i64(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    column(batches, name)
        .into_iter()
        .flat_map(|c| match c {
            ColumnData::I64(v) => v.clone(),
            other => panic!("{name} is {}", other.type_name()),
        })
        .collect()
}

fn all_dict(batches: &[RecordBatch], name: &str) -> Vec<String> {
    column(batches, name)
        .into_iter()
        .flat_map(|c| match c {
            ColumnData::Dict { codes, values } => codes.iter().map(|&k| values[k as usize].clone()).collect::<Vec<_>>(),
            other => panic!("{name} is {}", other.type_name()),
        })
        .collect()
}

fn all_tokens(batches: &[RecordBatch], name: &str) -> Vec<[u8; 32]> {
    column(batches, name)
        .into_iter()
        .flat_map(|c| match c {
            ColumnData::Token(v) => v.clone(),
            other => panic!("{name} is {}", other.type_name()),
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn round_trip_gives_expected_values() {
    let f = fixture(2_500, 11);
    let mut ks = f.keystore("owner.keys");
    let out = f.path("sealed");
    let report = prepare(&f.csv, &mut ks, &out, &opts(1_000)).unwrap();
    assert_eq!((report.rows, report.chunks), (2_500, 3));
    assert_eq!(report.chunk_digests.len(), 3);
    assert!(!report.data_key_reused);

    let key = KeyStore::open(&f.path("owner.keys")).unwrap().data_key(&report.dataset_digest).expect("key saved");
    let batches = open_sealed(&out, &key).unwrap();
    assert_eq!(batches.iter().map(|b| b.rows).collect::<Vec<_>>(), [1_000, 1_000, 500]);
    let names: Vec<&str> = batches[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_token",
            "zip3",
            "birth_decade",
            "income",
            "credit_limit",
            "utilization",
            "late_payments",
            "tenure_months",
            "defaulted"
        ]
    );

    // Sealed rows are sorted by privacy-unit token (so the enclave can bound units in one
    // streaming pass); compare against the source rows in that order.
    let tok = ks.tokenization_key().tokenizer();
    let mut order: Vec<usize> = (0..f.rows.len()).collect();
    order.sort_by_key(|&i| tok.token(f.rows[i].customer_id.as_bytes()));
    let sorted: Vec<_> = order.iter().map(|&i| f.rows[i].clone()).collect();
    let expect_tokens: Vec<[u8; 32]> = sorted.iter().map(|c| tok.token(c.customer_id.as_bytes())).collect();
    assert!(expect_tokens.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all_tokens(&batches, "customer_token"), expect_tokens);
    assert_eq!(all_dict(&batches, "zip3"), sorted.iter().map(|c| c.zip[..3].to_string()).collect::<Vec<_>>());
    assert_eq!(all_i64(&batches, "birth_decade"), sorted.iter().map(|c| c.birth_year / 10 * 10).collect::<Vec<_>>());
    assert_eq!(all_f64(&batches, "income"), sorted.iter().map(|c| c.income).collect::<Vec<_>>());
    assert_eq!(all_f64(&batches, "credit_limit"), sorted.iter().map(|c| c.credit_limit).collect::<Vec<_>>());
    assert_eq!(all_f64(&batches, "utilization"), sorted.iter().map(|c| c.utilization).collect::<Vec<_>>());
    assert_eq!(all_i64(&batches, "late_payments"), sorted.iter().map(|c| c.late_payments).collect::<Vec<_>>());
    assert_eq!(all_i64(&batches, "tenure_months"), sorted.iter().map(|c| c.tenure_months).collect::<Vec<_>>());
    assert_eq!(all_i64(&batches, "defaulted"), sorted.iter().map(|c| c.defaulted).collect::<Vec<_>>());
}

#[test]
fn manifest_describes_columns_lineage_and_k_anonymity() {
    let f = fixture(3_000, 12);
    let mut ks = f.keystore("owner.keys");
    let out = f.path("sealed");
    let r = prepare(&f.csv, &mut ks, &out, &opts(16_384)).unwrap();
    let m = owner_prep::prepare::load_manifest(&out).unwrap();
    assert_eq!(m, r.manifest);
    assert_eq!(m.digest(), r.manifest_digest);
    assert_eq!(m.dataset_name, "bank");
    assert_eq!(m.privacy_unit, "customer_token");
    assert_eq!(m.lineage.source_file, "bank.csv", "a file name, not a host path");
    assert_eq!(m.lineage.source_format, "csv");
    assert_eq!(m.lineage.source_digest, Digest::of(&std::fs::read(&f.csv).unwrap()));
    assert_eq!(m.lineage.ingested_at, 1_764_000_000);
    assert_eq!((m.rows, m.chunks, m.rows_per_chunk), (3_000, 1, 16_384));
    let spec = |n: &str| m.columns.iter().find(|c| c.source_name == n).unwrap();
    assert_eq!(spec("customer_id").transform, Transform::Tokenized { key_id: ks.key_id() });
    assert_eq!(spec("customer_id").label, Sensitivity::DirectIdentifier);
    assert_eq!(spec("email").transform, Transform::Dropped);
    assert_eq!(spec("email").sealed_name, None);
    assert_eq!(spec("zip").transform, Transform::Generalized { rule: "prefix:3".into() });
    assert_eq!(spec("zip").sealed_type.as_deref(), Some("dict"));
    assert_eq!(spec("birth_year").transform, Transform::Generalized { rule: "bin:10".into() });
    assert_eq!(spec("income").label, Sensitivity::Sensitive);
    assert_eq!(m.sealed_schema().len(), 9);

    let k = r.k_anonymity.unwrap();
    assert_eq!(k.quasi_identifiers, ["zip3", "birth_decade"]);
    assert_eq!(k.k_target, 10);
    assert!(k.classes > 100 && k.k_min >= 1 && k.classes_below_target > 0, "{k:?}");
    assert!(k.rows_below_target < 3_000);

    // The direct identifiers were scanned and their PII reported (expected; they are dropped).
    let found = |c: &str, d: &str| m.pii_findings.iter().any(|p| p.column == c && p.detector == d);
    assert!(found("email", "email") && found("ssn", "ssn") && found("phone", "phone"), "{:?}", m.pii_findings);
    // Outside the direct identifiers only the postcodes are found, in the column whose
    // rule generalizes them to three digits (the remedy, so not refused).
    let others: Vec<_> = m.pii_findings.iter().filter(|p| p.declared_label != Sensitivity::DirectIdentifier).collect();
    assert!(others.iter().all(|p| (p.column.as_str(), p.detector.as_str()) == ("zip", "postcode")), "{others:?}");

    // The key file sits outside the output, and the output holds nothing but these files.
    let files = files_under(&out);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|p| p.ends_with(MANIFEST_FILE)));
    assert!(files.iter().any(|p| p.ends_with(format!("{CHUNKS_DIR}/000000.sealed"))));
}

#[test]
fn sealed_output_never_contains_raw_identifiers() {
    let f = fixture(400, 13);
    let mut ks = f.keystore("owner.keys");
    let out = f.path("sealed");
    let r = prepare(&f.parquet, &mut ks, &out, &opts(128)).unwrap();
    let mut stored = Vec::new();
    for p in files_under(&out) {
        stored.extend(std::fs::read(p).unwrap());
    }
    assert_eq!(stored.len() as u64, r.bytes_written);
    // What the sealed table holds once opened: the manifest (stored in clear) and every
    // string and token of every column. No identifier may be in the manifest, be a token,
    // or be part of a string value.
    let key = KeyStore::open(&f.path("owner.keys")).unwrap().data_key(&r.dataset_digest).expect("key saved");
    let manifest = std::fs::read(out.join(MANIFEST_FILE)).unwrap();
    let mut values = std::collections::HashSet::new();
    let mut strings = Vec::new();
    for b in open_sealed(&out, &key).unwrap() {
        for c in &b.columns {
            match &c.data {
                // Kept numeric columns (income, tenure): a number equal to some zip code is
                // not that zip code.
                ColumnData::F64(_) | ColumnData::I64(_) => {}
                ColumnData::Dict { values: d, .. } => strings.extend(d.iter().cloned()),
                ColumnData::Token(t) => values.extend(t.iter().map(hex::encode)),
            }
        }
    }
    let within = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let manifest_text = String::from_utf8_lossy(&manifest).into_owned();
    let manifest_words: std::collections::HashSet<&str> =
        manifest_text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    for c in &f.rows {
        for v in [&c.customer_id, &c.email, &c.ssn, &c.phone, &c.full_name, &c.zip] {
            // The manifest holds hex digests and counts, in which a 5-digit zip turns up by
            // chance: short needles must not be a whole word of it, long ones not anywhere.
            let in_manifest =
                if v.len() >= 8 { within(&manifest, v.as_bytes()) } else { manifest_words.contains(v.as_str()) };
            assert!(!in_manifest, "the manifest contains a raw identifier {v:?}");
            assert!(!values.contains(v.as_str()), "a sealed column holds the raw identifier {v:?}");
            assert!(!strings.iter().any(|s| s.contains(v.as_str())), "a sealed string holds the raw identifier {v:?}");
            // Nothing is stored in clear either. Only needles of 8 bytes or more: a 5-digit
            // zip code turns up by chance in a megabyte of ciphertext.
            if v.len() >= 8 {
                assert!(!within(&stored, v.as_bytes()), "the stored files contain a raw identifier {v:?}");
            }
        }
    }
    // Negative control: the check finds the identifiers where they are.
    let src = std::fs::read(&f.csv).unwrap();
    assert!(within(&src, f.rows[0].email.as_bytes()) && within(&src, f.rows[0].zip.as_bytes()));
}

#[test]
fn csv_and_parquet_give_the_same_dataset() {
    let f = fixture(1_500, 14);
    let mut ks = f.keystore("owner.keys");
    let a = prepare(&f.csv, &mut ks, &f.path("from_csv"), &opts(500)).unwrap();
    let b = prepare(&f.parquet, &mut ks, &f.path("from_parquet"), &opts(500)).unwrap();
    assert_eq!(a.dataset_digest, b.dataset_digest);
    assert_eq!(b.manifest.lineage.source_format, "parquet");
    assert_ne!(a.manifest.lineage.source_digest, b.manifest.lineage.source_digest);
    // Same plaintext ⇒ the stored key is reused, so both copies stay readable.
    assert!(b.data_key_reused);
    let key = ks.data_key(&a.dataset_digest).unwrap();
    assert_eq!(open_sealed(&f.path("from_csv"), &key).unwrap(), open_sealed(&f.path("from_parquet"), &key).unwrap());
}

#[test]
fn tokenization_depends_on_the_owner_key() {
    let f = fixture(300, 15);
    let mut ks1 = f.keystore("one.keys");
    let mut ks2 = f.keystore("two.keys");
    let a = prepare(&f.csv, &mut ks1, &f.path("a"), &opts(1_000)).unwrap();
    let a2 = prepare(&f.csv, &mut ks1, &f.path("a2"), &opts(1_000)).unwrap();
    let b = prepare(&f.csv, &mut ks2, &f.path("b"), &opts(1_000)).unwrap();
    assert_eq!(a.dataset_digest, a2.dataset_digest, "same key, same tokens");
    assert_ne!(a.dataset_digest, b.dataset_digest, "different key, different tokens");
    let ta =
        all_tokens(&open_sealed(&f.path("a"), &ks1.data_key(&a.dataset_digest).unwrap()).unwrap(), "customer_token");
    let tb =
        all_tokens(&open_sealed(&f.path("b"), &ks2.data_key(&b.dataset_digest).unwrap()).unwrap(), "customer_token");
    assert!(ta.iter().zip(&tb).all(|(x, y)| x != y));
    // Another owner's data key does not open this dataset.
    let wrong = ks2.data_key(&b.dataset_digest).unwrap();
    assert!(matches!(open_sealed(&f.path("a"), &wrong), Err(OpenError::Seal { .. })));
}

fn chunk_path(out: &Path, i: u64) -> PathBuf {
    out.join(CHUNKS_DIR).join(owner_prep::prepare::chunk_file_name(i))
}

#[test]
fn tampered_chunks_fail_with_clear_errors() {
    let f = fixture(900, 16);
    let mut ks = f.keystore("owner.keys");
    let out = f.path("sealed");
    let r = prepare(&f.csv, &mut ks, &out, &opts(300)).unwrap();
    let key = ks.data_key(&r.dataset_digest).unwrap();
    open_sealed(&out, &key).unwrap();

    // One flipped byte near the end of chunk 1 (inside the ciphertext).
    let p1 = chunk_path(&out, 1);
    let orig = std::fs::read(&p1).unwrap();
    let mut bad = orig.clone();
    let n = bad.len();
    bad[n - 20] ^= 0x01;
    std::fs::write(&p1, &bad).unwrap();
    let e = open_sealed(&out, &key).unwrap_err();
    assert!(matches!(e, OpenError::Seal { source: SealError::Authentication { index: 1 }, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("000001.sealed") && msg.contains("authentication failed"), "{msg}");
    std::fs::write(&p1, &orig).unwrap();

    // Two chunks swapped.
    let p0 = chunk_path(&out, 0);
    let c0 = std::fs::read(&p0).unwrap();
    std::fs::write(&p0, &orig).unwrap();
    std::fs::write(&p1, &c0).unwrap();
    let e = open_sealed(&out, &key).unwrap_err();
    assert!(matches!(e, OpenError::Seal { source: SealError::OutOfOrder { expected: 0, got: 1 }, .. }), "{e}");
    std::fs::write(&p0, &c0).unwrap();
    std::fs::write(&p1, &orig).unwrap();

    // The final chunk dropped.
    std::fs::remove_file(chunk_path(&out, 2)).unwrap();
    let e = open_sealed(&out, &key).unwrap_err();
    assert!(matches!(e, OpenError::Incomplete { source: SealError::Truncated { chunks: 2 }, .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    // Garbage instead of a chunk.
    std::fs::write(chunk_path(&out, 2), b"not cbor").unwrap();
    let e = open_sealed(&out, &key).unwrap_err();
    assert!(matches!(e, OpenError::Chunk { .. }), "{e}");
}

/// Rewrite the generated CSV: `edit(header_fields, row_index, fields)`.
fn edit_csv(f: &Fixture, name: &str, edit: impl Fn(usize, &mut Vec<String>)) -> PathBuf {
    let text = std::fs::read_to_string(&f.csv).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
        edit(i, &mut fields);
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let p = f.path(name);
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn pii_pasted_into_a_kept_column_is_refused_unless_allowed() {
    let f = fixture(200, 17);
    let mut ks = f.keystore("owner.keys");
    let input = edit_csv(&f, "notes.csv", |i, fields| {
        fields.push(match i {
            0 => "notes".into(),
            57 => "call back: jane.roe@example.com".into(),
            _ => "ok".into(),
        })
    });
    let notes = "[[column]]\nname = \"notes\"\nlabel = \"sensitive\"\ntransform = { kind = \"keep\", type = \"text\" }\nreason = \"agent notes\"\n";
    let mut o = opts(1_000);
    o.rules.columns = bank_rules_with(notes).columns;
    let e = prepare(&input, &mut ks, &f.path("out"), &o).unwrap_err();
    match &e {
        PrepareError::PiiInKeptColumn { column, detector, matches, scanned } => {
            assert_eq!((column.as_str(), *detector, *matches, *scanned), ("notes", "email", 1, 200));
        }
        other => panic!("{other}"),
    }
    assert!(!e.to_string().contains("jane"), "the error must not echo the value");
    assert!(!f.path("out").exists(), "nothing written on refusal");
    assert!(ks.datasets().is_empty());

    o.rules.columns = bank_rules_with(&format!("{notes}allow_pii = \"reviewed: one pasted address\"\n")).columns;
    let r = prepare(&input, &mut ks, &f.path("out"), &o).unwrap();
    let spec = r.manifest.columns.iter().find(|c| c.source_name == "notes").unwrap();
    assert_eq!(spec.allow_pii.as_deref(), Some("reviewed: one pasted address"), "the override is in the manifest");
    let finding = r.findings.iter().find(|p| p.column == "notes").unwrap();
    assert_eq!(
        (finding.detector.as_str(), finding.matches, finding.declared_label),
        ("email", 1, Sensitivity::Sensitive)
    );

    // An email pasted into a numeric column is reported as PII, not as a type error.
    let input = edit_csv(&f, "income.csv", |i, fields| {
        if i == 3 {
            fields[7] = "jane.roe@example.com".into();
        }
    });
    let e = prepare(&input, &mut ks, &f.path("out2"), &opts(1_000)).unwrap_err();
    assert!(matches!(&e, PrepareError::PiiInKeptColumn { column, .. } if column == "income"), "{e}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let f = fixture(50, 18);
    let mut ks = f.keystore("owner.keys");
    let run = |ks: &mut KeyStore, input: &Path, o: &PrepareOptions| prepare(input, ks, &f.path("out"), o).unwrap_err();

    let extra = edit_csv(&f, "extra.csv", |i, fields| fields.push(if i == 0 { "mystery".into() } else { "1".into() }));
    let e = run(&mut ks, &extra, &opts(100));
    assert!(matches!(&e, PrepareError::UnknownColumn { column } if column == "mystery"), "{e}");

    let missing = edit_csv(&f, "missing.csv", |_, fields| {
        fields.remove(4);
    });
    let e = run(&mut ks, &missing, &opts(100));
    assert!(matches!(&e, PrepareError::MissingColumn { column } if column == "phone"), "{e}");

    let wrong_type = edit_csv(&f, "type.csv", |i, fields| {
        if i == 5 {
            fields[10] = "many".into();
        }
    });
    let e = run(&mut ks, &wrong_type, &opts(100));
    assert_eq!(e.to_string(), "row 5, column \"late_payments\": expected an integer, got text of 4 characters");

    let ragged = edit_csv(&f, "ragged.csv", |i, fields| {
        if i == 9 {
            fields.pop();
        }
    });
    let e = run(&mut ks, &ragged, &opts(100));
    assert!(matches!(e, PrepareError::Csv { line: Some(10), .. }), "{e}");
    assert!(e.to_string().contains("12 fields where the header has 13"), "{e}");

    let short_zip = edit_csv(&f, "zip.csv", |i, fields| {
        if i == 2 {
            fields[5] = "9".into();
        }
    });
    let e = run(&mut ks, &short_zip, &opts(100));
    assert!(e.to_string().starts_with("row 2, column \"zip\""), "{e}");

    let empty_id = edit_csv(&f, "id.csv", |i, fields| {
        if i == 1 {
            fields[0] = String::new();
        }
    });
    let e = run(&mut ks, &empty_id, &opts(100));
    // An empty field is a null (the rules' input.null_values), refused in the unit column.
    assert!(e.to_string().starts_with("row 1, column \"customer_id\": missing value (null)"), "{e}");

    let header_only = edit_csv(&f, "empty.csv", |_, _| {});
    std::fs::write(&header_only, datagen::COLUMNS.join(",") + "\n").unwrap();
    assert!(matches!(run(&mut ks, &header_only, &opts(100)), PrepareError::Empty));

    let fake_pq = f.path("fake.parquet");
    std::fs::write(&fake_pq, b"customer_id\nC1\n").unwrap();
    assert!(matches!(run(&mut ks, &fake_pq, &opts(100)), PrepareError::Parquet { .. }));

    let e = run(&mut ks, &f.path("nope.csv"), &opts(100));
    assert!(matches!(e, PrepareError::Io { .. }), "{e}");

    let mut no_unit = opts(100);
    no_unit.rules.columns[0].transform = ColumnTransform::Drop;
    assert!(matches!(run(&mut ks, &f.csv, &no_unit), PrepareError::InvalidRules(_)));
    let kept_ssn = BANK_RULES.replace(
        "name = \"ssn\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"drop\" }",
        "name = \"ssn\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"keep\", type = \"text\" }",
    );
    let e = Rules::from_toml(&kept_ssn).unwrap_err();
    assert!(e.to_string().contains("\"ssn\": a direct identifier"), "{e}");
    assert!(matches!(run(&mut ks, &f.csv, &opts(0)), PrepareError::InvalidOptions(_)));

    assert!(!f.path("out").exists());
    assert!(ks.datasets().is_empty());
}

#[test]
fn existing_output_is_not_overwritten_by_default() {
    let f = fixture(100, 19);
    let mut ks = f.keystore("owner.keys");
    let out = f.path("sealed");
    let first = prepare(&f.csv, &mut ks, &out, &opts(30)).unwrap();
    assert_eq!(first.chunks, 4);
    let e = prepare(&f.csv, &mut ks, &out, &opts(30)).unwrap_err();
    assert!(matches!(e, PrepareError::OutputExists { .. }), "{e}");
    // With overwrite, a differently chunked dataset replaces it completely.
    let mut o = opts(60);
    o.overwrite = true;
    let second = prepare(&f.csv, &mut ks, &out, &o).unwrap();
    assert_eq!(second.chunks, 2);
    assert_ne!(second.dataset_digest, first.dataset_digest);
    let batches = open_sealed(&out, &ks.data_key(&second.dataset_digest).unwrap()).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(ks.datasets().len(), 2);
}

/// Timing at demo scale. Run with
/// `cargo test -p cleanroom --release --test prepare -- --ignored --nocapture`.
#[test]
#[ignore]
fn demo_scale_timing() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, pq) = (dir.path().join("bank.csv"), dir.path().join("bank.parquet"));
    let t = std::time::Instant::now();
    let g = datagen::generate(datagen::DEFAULT_ROWS, 42, &csv, &pq).unwrap();
    let gen_s = t.elapsed().as_secs_f64();
    let mut ks = KeyStore::create_or_open(&dir.path().join("owner.keys")).unwrap();
    let t = std::time::Instant::now();
    let r = prepare(&csv, &mut ks, &dir.path().join("csv_out"), &opts(16_384)).unwrap();
    let prep_csv_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let r2 = prepare(&pq, &mut ks, &dir.path().join("pq_out"), &opts(16_384)).unwrap();
    let prep_pq_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let b = open_sealed(&dir.path().join("csv_out"), &ks.data_key(&r.dataset_digest).unwrap()).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    assert_eq!(r.dataset_digest, r2.dataset_digest);
    assert_eq!(b.iter().map(|b| b.rows as u64).sum::<u64>(), datagen::DEFAULT_ROWS);
    eprintln!("{g:?}");
    eprintln!("k-anonymity: {:?}", r.k_anonymity);
    eprintln!(
        "generate {gen_s:.2}s, prepare csv {prep_csv_s:.2}s, prepare parquet {prep_pq_s:.2}s, open_sealed {open_s:.2}s, \
         {} chunks, {} bytes",
        r.chunks, r.bytes_written
    );
}

#[test]
fn suggested_rules_flag_pii_and_cannot_be_sealed_unreviewed() {
    let f = fixture(2_000, 21);
    let today = owner_prep::prepare::Date::new(2026, 12, 6).unwrap();
    let s = owner_prep::suggest::suggest_rules(&f.csv, &owner_prep::prepare::InputOptions::default(), today).unwrap();
    assert_eq!((s.rows_seen, s.rows_scanned), (2_000, 2_000));
    assert_eq!(s.unit.as_deref(), Some("customer_id"));
    let block = |col: &str| {
        let start = s.toml.find(&format!("name = \"{col}\"")).unwrap();
        let before = &s.toml[..start];
        let from = before.rfind("[[column]]").unwrap();
        let end = s.toml[start..].find("[[column]]").map_or(s.toml.len(), |e| start + e);
        s.toml[from..end].to_string()
    };
    for (col, kind) in [("email", "email"), ("ssn", "ssn"), ("phone", "phone"), ("full_name", "person_name")] {
        let b = block(col);
        assert!(b.contains(&format!("# found: {kind}")), "{col}: {b}");
        assert!(b.contains("label = \"direct_identifier\"") && b.contains("kind = \"drop\""), "{col}: {b}");
    }
    assert!(block("zip").contains("kind = \"prefix\""), "{}", block("zip"));
    assert!(block("customer_id").contains("roles = [\"privacy_unit\"]"));
    // Unreviewed, the draft is refused: every reason is empty.
    let e = Rules::from_toml(&s.toml).unwrap_err().to_string();
    assert!(e.contains("reason is empty"), "{e}");
    // Reviewed (here: every reason filled in), it seals.
    let reviewed = s
        .toml
        .replace("reason = \"\"", "reason = \"reviewed\"")
        .replace("remedy = \"refuse\"", "remedy = \"suppress\"");
    let mut o = opts(1_000);
    o.rules = Rules::from_toml(&reviewed).unwrap();
    let mut ks = f.keystore("owner.keys");
    let r = prepare(&f.csv, &mut ks, &f.path("out"), &o).unwrap();
    assert!(r.rows > 0);
    assert_eq!(r.manifest.lineage.rules_digest, Some(Digest::of(reviewed.as_bytes())));
}

/// Rules for the k-anonymity tests: the bank rules with `remedy` and an extra text column.
fn k_rules(remedy: &str) -> Rules {
    Rules::from_toml(&common::bank_rules_with_remedy(remedy)).unwrap()
}

#[test]
fn k_anonymity_is_enforced_by_the_rules_remedy() {
    let f = fixture(3_000, 22);
    let mut ks = f.keystore("owner.keys");
    // Refuse: nothing is written, the error names the quasi-identifiers and the gap.
    let mut o = opts(1_000);
    o.rules = k_rules("remedy = \"refuse\"");
    let e = prepare(&f.csv, &mut ks, &f.path("refused"), &o).unwrap_err();
    assert!(matches!(e, PrepareError::BelowK { k: 10, .. }), "{e}");
    assert!(e.to_string().contains("[\"zip3\", \"birth_decade\"]"), "{e}");
    assert!(!f.path("refused").exists() && ks.datasets().is_empty());

    // Suppress: every class left holds at least k people, the rest are counted.
    o.rules = k_rules("remedy = \"suppress\"");
    let r = prepare(&f.csv, &mut ks, &f.path("suppressed"), &o).unwrap();
    let k = r.k_anonymity.clone().unwrap();
    assert!(k.rows_suppressed > 0 && r.rows + k.rows_suppressed == 3_000, "{k:?}");
    assert_eq!(k.remedy.as_deref(), Some("suppress"));
    let key = ks.data_key(&r.dataset_digest).unwrap();
    let batches = open_sealed(&f.path("suppressed"), &key).unwrap();
    let zips = all_dict(&batches, "zip3");
    let decades = all_i64(&batches, "birth_decade");
    let tokens = all_tokens(&batches, "customer_token");
    let mut classes: std::collections::HashMap<(String, i64), std::collections::HashSet<[u8; 32]>> = Default::default();
    for i in 0..zips.len() {
        classes.entry((zips[i].clone(), decades[i])).or_default().insert(tokens[i]);
    }
    let smallest = classes.values().map(|s| s.len()).min().unwrap();
    assert!(smallest >= 10, "a sealed class holds {smallest} people");
    assert!(k.l_diversity.iter().any(|l| l.column == "income" && l.l_min >= 1), "{:?}", k.l_diversity);

    // Override: sealed as is, the reason in the manifest.
    o.rules = k_rules("remedy = \"override\"\nreason = \"regional analysis needs every branch\"");
    let r = prepare(&f.csv, &mut ks, &f.path("overridden"), &o).unwrap();
    assert_eq!(r.rows, 3_000);
    let m = owner_prep::prepare::load_manifest(&f.path("overridden")).unwrap();
    assert_eq!(m.k_anonymity.unwrap().remedy.as_deref(), Some("override: regional analysis needs every branch"));
}

#[test]
fn rare_categories_labels_and_nulls_follow_the_rules() {
    let f = fixture(1_000, 23);
    let mut ks = f.keystore("owner.keys");
    // A branch column where branch "tiny" has 3 customers; a label with an out-of-domain value; a null.
    let input = edit_csv(&f, "extra.csv", |i, fields| {
        fields.push(match i {
            0 => "branch".into(),
            1..=3 => "tiny".into(),
            _ if i % 2 == 0 => "north".into(),
            _ => "south".into(),
        })
    });
    let branch = "[[column]]\nname = \"branch\"\nlabel = \"quasi_identifier\"\ntransform = { kind = \"keep\", type = \"text\" }\nmerge_rare_below = 5\nroles = [\"group_key\"]\nreason = \"branch\"\n";
    let mut o = opts(500);
    o.rules.columns = bank_rules_with(branch).columns;
    let r = prepare(&input, &mut ks, &f.path("merged"), &o).unwrap();
    assert_eq!(r.merged_categories.get("branch"), Some(&1));
    let batches = open_sealed(&f.path("merged"), &ks.data_key(&r.dataset_digest).unwrap()).unwrap();
    let values: std::collections::BTreeSet<String> = all_dict(&batches, "branch").into_iter().collect();
    assert_eq!(values.into_iter().collect::<Vec<_>>(), ["north", "other", "south"]);

    let bad_label = edit_csv(&f, "label.csv", |i, fields| {
        if i == 4 {
            fields[12] = "2".into();
        }
    });
    let e = prepare(&bad_label, &mut ks, &f.path("label"), &opts(500)).unwrap_err().to_string();
    assert_eq!(e, "row 4, column \"defaulted\": label outside its declared domain [0, 1]");
    assert!(!f.path("label").exists());

    let null_income = edit_csv(&f, "null.csv", |i, fields| {
        if i == 6 || i == 8 {
            fields[7] = "NA".into();
        }
    });
    let e = prepare(&null_income, &mut ks, &f.path("null"), &opts(500)).unwrap_err();
    assert!(matches!(&e, PrepareError::Null { row: 6, column } if column == "income"), "{e}");
    let mut o = opts(500);
    o.rules.columns.iter_mut().find(|c| c.source == "income").unwrap().nulls = owner_prep::prepare::NullPolicy::DropRow;
    let r = prepare(&null_income, &mut ks, &f.path("null"), &o).unwrap();
    assert_eq!((r.rows, r.manifest.rows_dropped_null), (998, 2));
}

#[test]
fn a_new_snapshot_reports_drift_and_refuses_a_less_protected_column_unless_explained() {
    let f = fixture(400, 24);
    let mut ks = f.keystore("owner.keys");
    let first = prepare(&f.csv, &mut ks, &f.path("month1"), &opts(500)).unwrap();
    assert!(first.drift.is_none());

    // Month two: zip kept whole instead of its first three digits.
    let weaker = BANK_RULES.replace(
        "transform = { kind = \"prefix\", chars = 3 }\ninto = \"zip3\"",
        "transform = { kind = \"keep\", type = \"text\" }\ninto = \"zip3\"\nallow_pii = \"postcodes reviewed\"",
    );
    assert_ne!(weaker, BANK_RULES);
    let mut o = opts(500);
    o.rules.columns = Rules::from_toml(&weaker).unwrap().columns;
    o.previous = Some(first.manifest.clone());
    let e = prepare(&f.csv, &mut ks, &f.path("month2"), &o).unwrap_err();
    assert!(matches!(&e, PrepareError::Regression { column, .. } if column == "zip"), "{e}");
    assert!(!f.path("month2").exists(), "nothing written");

    // Explained, it seals; the drift report names the regression with its reason.
    let explained = weaker.replace(
        "allow_pii = \"postcodes reviewed\"",
        "allow_pii = \"postcodes reviewed\"\nallow_regression = \"branch planning needs five digits\"",
    );
    o.rules.columns = Rules::from_toml(&explained).unwrap().columns;
    let r = prepare(&f.csv, &mut ks, &f.path("month2"), &o).unwrap();
    let d = r.drift.unwrap();
    assert_eq!(d.previous, first.manifest_digest);
    assert_eq!(d.regressions.len(), 1);
    assert_eq!(d.regressions[0].allowed.as_deref(), Some("branch planning needs five digits"));
    assert!(d.added.is_empty() && d.removed.is_empty() && d.retyped.is_empty(), "{d:?}");
}

#[test]
fn the_retention_date_reaches_the_policy_and_the_owner_refuses_an_expired_dataset() {
    let f = fixture(100, 25);
    let mut ks = f.keystore("owner.keys");
    let mut o = opts(500);
    o.rules.retention_until = owner_prep::prepare::Date::new(2024, 6, 30);
    let r = prepare(&f.csv, &mut ks, &f.path("sealed"), &o).unwrap();
    assert_eq!(r.manifest.retention_until.as_deref(), Some("2024-06-30"));
    let params = cleanroom::owner_policy::PolicyParams::default();
    let policy =
        cleanroom::owner_policy::build(&r.manifest, ks.signing_key().public_key(), vec![], vec![], &[], &params)
            .unwrap();
    // The first instant after 2024-06-30, UTC.
    assert_eq!(policy.dataset_expires_at, Some(1_719_792_000));
    assert!(cleanroom::owner::check_retention(&policy, 1_719_791_999).is_ok());
    let e = cleanroom::owner::check_retention(&policy, 1_719_792_000).unwrap_err();
    assert!(e.to_string().contains("past its retention date"), "{e}");
}

#[test]
fn nulls_keep_seals_nulls_as_nulls() {
    let f = fixture(600, 31);
    let mut ks = f.keystore("owner.keys");
    // (CSV field, data row) of each null: income (f64) twice, late_payments (i64), zip
    // (a prefix: dict, a group key and a quasi-identifier) and defaulted (the label). A
    // `note` column is null in every row: sealed with an empty dictionary.
    let nulls = [(7, 6), (7, 8), (10, 7), (5, 9), (12, 10)];
    let input = edit_csv(&f, "nulls.csv", |i, fields| {
        for &(c, r) in &nulls {
            if i == r {
                fields[c] = if c == 5 { String::new() } else { "NA".into() };
            }
        }
        fields.push(if i == 0 { "note".into() } else { "NULL".into() });
    });
    let note = "[[column]]\nname = \"note\"\nlabel = \"public\"\ntransform = { kind = \"keep\", type = \"text\" }\nreason = \"free text\"\nnulls = \"keep\"\n";
    let mut o = opts(250);
    o.rules.columns = bank_rules_with(note).columns;
    let keep = ["income", "late_payments", "zip", "defaulted"];
    for c in o.rules.columns.iter_mut().filter(|c| keep.contains(&c.source.as_str())) {
        c.nulls = owner_prep::prepare::NullPolicy::Keep;
    }
    let r = prepare(&input, &mut ks, &f.path("out"), &o).unwrap();
    assert_eq!((r.rows, r.manifest.rows_dropped_null), (600, 0), "nothing is dropped");
    let counts: Vec<(&str, u64)> = r.nulls_sealed.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    assert_eq!(counts, [("defaulted", 1), ("income", 2), ("late_payments", 1), ("note", 600), ("zip3", 1)]);
    // The manifests say which columns may hold nulls; the public one never how many.
    let nullable = ["zip3", "income", "late_payments", "defaulted", "note"];
    assert_eq!(r.manifest.nullable_columns(), nullable);
    let public = r.manifest.public();
    let public_nullable: Vec<&str> = public.columns.iter().filter(|c| c.nullable).map(|c| c.name.as_str()).collect();
    assert_eq!(public_nullable, nullable);
    let json = public.to_json();
    assert!(json.contains("\"nullable\": true") && !json.contains("nulls"), "{json}");
    assert_eq!(protocol::manifest::PublicManifest::from_json(&json).unwrap(), public);

    let batches = open_sealed(&f.path("out"), &ks.data_key(&r.dataset_digest).unwrap()).unwrap();
    assert_eq!(batches.len(), 3);
    // Every chunk carries the validity of every nullable column, nulls or not.
    for b in &batches {
        let with: Vec<&str> = b.validity.keys().map(String::as_str).collect();
        assert_eq!(with, ["defaulted", "income", "late_payments", "note", "zip3"]);
    }
    let valid = |name: &str| -> Vec<bool> {
        batches.iter().flat_map(|b| b.validity(name).expect("validity").as_slice().to_vec()).collect()
    };
    // Sealed rows are sorted by token: sealed position of each source row.
    let tok = ks.tokenization_key().tokenizer();
    let mut order: Vec<usize> = (0..f.rows.len()).collect();
    order.sort_by_key(|&i| tok.token(f.rows[i].customer_id.as_bytes()));
    let sealed_at = |data_row: usize| order.iter().position(|&i| i == data_row - 1).unwrap();
    let expect = |field: usize| -> Vec<bool> {
        let null: Vec<usize> = nulls.iter().filter(|(c, _)| *c == field).map(|&(_, r)| sealed_at(r)).collect();
        (0..600).map(|i| !null.contains(&i)).collect()
    };
    assert_eq!(valid("income"), expect(7));
    assert_eq!(valid("late_payments"), expect(10));
    assert_eq!(valid("zip3"), expect(5));
    assert_eq!(valid("defaulted"), expect(12));
    assert!(valid("note").iter().all(|v| !v));
    // A null's slot holds the canonical value; every other row its source value.
    let sorted: Vec<&Customer> = order.iter().map(|&i| &f.rows[i]).collect();
    let income = all_f64(&batches, "income");
    for (i, c) in sorted.iter().enumerate() {
        let want = if valid("income")[i] { c.income } else { 0.0 };
        assert_eq!(income[i].to_bits(), want.to_bits(), "sealed row {i}");
    }
    assert_eq!(all_i64(&batches, "late_payments")[sealed_at(7)], 0);
    assert_eq!(all_i64(&batches, "defaulted")[sealed_at(10)], 0);
    let zip = column(&batches, "zip3");
    let (chunk, row) = (sealed_at(9) / 250, sealed_at(9) % 250);
    assert!(matches!(zip[chunk], ColumnData::Dict { codes, .. } if codes[row] == 0));
    for c in column(&batches, "note") {
        assert_eq!(c, &ColumnData::Dict { codes: vec![0; c.len()], values: vec![] });
    }
    // Columns not kept as nullable have no validity.
    assert!(batches.iter().all(|b| b.validity("utilization").is_none() && b.validity("customer_token").is_none()));
    // The owner's summary counts them.
    let text = owner_prep::prepare::summary(&r, &f.path("out"));
    assert!(text.contains("income: 2 nulls sealed as nulls"), "{text}");
}

#[test]
fn a_chunk_whose_validity_disagrees_with_the_manifest_is_refused() {
    let f = fixture(300, 32);
    let mut ks = f.keystore("owner.keys");
    let mut o = opts(300);
    o.rules.columns.iter_mut().find(|c| c.source == "income").unwrap().nulls = owner_prep::prepare::NullPolicy::Keep;
    let r = prepare(&f.csv, &mut ks, &f.path("out"), &o).unwrap();
    let key = ks.data_key(&r.dataset_digest).unwrap();
    // No null in the table, yet the column carries its (all-valid) validity.
    let batches = open_sealed(&f.path("out"), &key).unwrap();
    assert_eq!(batches[0].validity("income").map(|v| v.null_count()), Some(0));
    // A manifest edited to drop the flag no longer matches the chunks.
    let path = f.path("out").join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"nullable\": true", "\"nullable\": false")).unwrap();
    let e = open_sealed(&f.path("out"), &key).unwrap_err();
    assert!(matches!(&e, OpenError::Mismatch(m) if m.contains("validity")), "{e}");
}
