//! `make bench-large` (opt-in; not in `make test` or `make bench`): a whole job over a
//! large sealed table, generated and streamed, never stored.
//!
//! For each size in `BENCH_LARGE_GB` (`make bench-large` sets `1 8`; sizes in units of
//! 10^9 sealed bytes; without it the bench does nothing) this
//! process (the owner and the host) generates a credit table row by row, pads and seals it
//! chunk by chunk with the real sealing code (`protocol::sealed`), and writes each sealed
//! chunk, CBOR-encoded as the host stores it, into a pipe. A child process (the enclave's
//! side, `--consume`) reads the pipe and runs the job's pipeline from the enclave's own
//! library parts, as `enclave_app::service` does after the spend: decode the chunk blob,
//! authenticate and decrypt it in order (`Opener`), group rows into privacy units
//! (`UnitAssembler`), score each unit in a fresh sandbox instance with the policy's
//! default fuel and memory (`UnitRunner`, credit-lr), aggregate (`Accumulator`), check the
//! dataset digest and release with DP noise. Nothing touches the disk.
//!
//! Not included: the TLS channel, the host proxy's blob API and the job's fetch schedule
//! (the enclave fetches chunk `i` at a fixed instant; here the pipe's back-pressure paces
//! the producer). `tests/tests/ingest_memory.rs` covers the real enclave-app process at a
//! small size.
//!
//! Figures, one JSON object per line: the sealed bytes streamed, the consumer's peak
//! resident set (`VmHWM`) at each size (`ratio` = the first size's peak / this one's, so
//! ≥ 0.83 is "within 20%"), and the whole job's rows per second per core (rows / the
//! consumer's user + system CPU time) and per second of wall-clock time.

#[path = "../tests/common/mod.rs"]
mod common;

use cleanroom_sandbox::{Sandbox, SandboxConfig};
use protocol::job::{OutputSpec, QuerySpec};
use protocol::policy::{defaults, ColumnPolicy, ColumnRole, Policy};
use protocol::sealed::{decode_chunk, pad, padded_len_for, seal_chunk, DataKey, Opener};
use protocol::table::{Column, ColumnData, RecordBatch, TOKEN_LEN};
use protocol::Digest;
use release::{Accumulator, UnitAssembler};
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cleanroom prepare`'s default chunk size.
const ROWS_PER_CHUNK: usize = 16_384;
/// Rows per privacy unit: 1 to this many (every row is kept: the policy's bound is this).
const MAX_ROWS_PER_UNIT: u32 = 4;
const INPUTS: [&str; 5] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade"];
const ZIP3: usize = 100;

fn line(bench: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
    let (b, r) = match baseline {
        Some((name, ratio)) => (format!("\"{name}\""), format!("{ratio}")),
        None => ("null".into(), "null".into()),
    };
    println!("{{\"bench\": \"{bench}\", \"value\": {value}, \"unit\": \"{unit}\", \"baseline\": {b}, \"ratio\": {r}}}");
}

fn policy(dataset: Digest) -> Policy {
    let col = ColumnPolicy::new;
    let mut columns = vec![col("unit", "token", vec![])];
    columns.extend(INPUTS[..2].iter().map(|n| col(n, "f64", vec![ColumnRole::Input])));
    columns.extend(INPUTS[2..].iter().map(|n| col(n, "i64", vec![ColumnRole::Input])));
    columns.push(col("zip3", "dict", vec![ColumnRole::GroupBy]));
    columns.push(col("defaulted", "i64", vec![ColumnRole::Label]));
    Policy { max_rows_per_unit: MAX_ROWS_PER_UNIT, ..Policy::new(vec![0; 32], dataset, "unit", columns) }
}

fn spec(dataset: Digest) -> QuerySpec {
    QuerySpec {
        job_id: "large".into(),
        collaborator: "bench".into(),
        dataset_digest: dataset,
        module_hash: Digest::default(),
        inputs: INPUTS.iter().map(|s| s.to_string()).collect(),
        outputs: vec![
            OutputSpec::mean("mean_by_zip3", "zip3", 0.0, 1.0, "0.3"),
            OutputSpec::histogram("deciles", (0..=10).map(|i| i as f64 / 10.0).collect(), "0.3"),
            OutputSpec::auc("auc", "defaulted", 20, "0.3"),
        ],
        delta: None,
        deadline_ms: defaults::MAX_DEADLINE_MS,
        training: None,
    }
}

const KEY: [u8; 32] = [0x5a; 32];

/// The table, chunk by chunk: units in token order, 1 to `MAX_ROWS_PER_UNIT` rows each,
/// a unit's rows possibly split across two chunks (as `prepare` writes them).
struct Table {
    rng: common::Rng,
    unit: u64,
    left_in_unit: u32,
}

impl Table {
    fn new() -> Self {
        Table { rng: common::Rng::new(0x1a56e), unit: 0, left_in_unit: 0 }
    }

    fn chunk(&mut self) -> RecordBatch {
        let n = ROWS_PER_CHUNK;
        let (mut tok, mut inc, mut util) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut late, mut ten, mut dec) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut zip, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            if self.left_in_unit == 0 {
                self.unit += 1;
                self.left_in_unit = 1 + self.rng.below(MAX_ROWS_PER_UNIT as u64) as u32;
            }
            self.left_in_unit -= 1;
            let mut t = [0u8; TOKEN_LEN];
            t[..8].copy_from_slice(&self.unit.to_be_bytes());
            tok.push(t);
            let r = &mut self.rng;
            let u = r.unit();
            inc.push(15_000.0 + 200_000.0 * r.unit());
            util.push(u);
            late.push(r.below(8) as i64);
            ten.push(r.below(360) as i64);
            dec.push(1940 + 10 * r.below(7) as i64);
            zip.push(r.below(ZIP3 as u64) as u32);
            y.push(i64::from(r.unit() < 0.1 + 0.3 * u));
        }
        let col = |name: &str, data| Column { name: name.into(), data };
        RecordBatch::new(vec![
            col("unit", ColumnData::Token(tok)),
            col("income", ColumnData::F64(inc)),
            col("utilization", ColumnData::F64(util)),
            col("late_payments", ColumnData::I64(late)),
            col("tenure_months", ColumnData::I64(ten)),
            col("birth_decade", ColumnData::I64(dec)),
            col(
                "zip3",
                ColumnData::Dict { codes: zip, values: (0..ZIP3).map(|i| format!("{:03}", 100 + i)).collect() },
            ),
            col("defaulted", ColumnData::I64(y)),
        ])
        .expect("chunk")
    }
}

/// The table's shape for about `target_bytes` of sealed chunk blobs: (chunks, padded
/// plaintext length), and its dataset digest, the SHA-256 of the padded plaintext chunks
/// (what `prepare` computes, and the enclave checks, before and after sealing). A first
/// pass over the generated table that keeps nothing.
fn shape(target_bytes: u64) -> (u64, usize, Digest) {
    let first = Table::new().chunk().encode();
    // Every chunk is padded to one length; the generator's chunks differ by a few bytes of
    // varint, so 1/16 more than the first is room enough (`pad` would refuse otherwise).
    let padded = padded_len_for(first.len() + first.len() / 16);
    let blob_len = protocol::to_cbor(&seal_chunk(&DataKey(KEY), &Digest::default(), 0, false, &vec![0; padded]));
    let chunks = target_bytes.div_ceil(blob_len.len() as u64).max(1);
    let mut table = Table::new();
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    for _ in 0..chunks {
        hash.update(&pad(&table.chunk().encode(), padded).expect("a chunk fits the padded length"));
    }
    (chunks, padded, Digest(hash.finish().as_ref().try_into().expect("32 bytes")))
}

/// Producer: seal the table into `out`, one length-prefixed CBOR chunk blob at a time,
/// as the host would serve them. Returns (rows, sealed bytes written).
fn produce(chunks: u64, padded: usize, dataset: Digest, out: impl Write) -> (u64, u64) {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let key = DataKey(KEY);
    let mut table = Table::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    for i in 0..chunks {
        let batch = table.chunk();
        rows += batch.rows as u64;
        let plain = pad(&batch.encode(), padded).expect("a chunk fits the padded length");
        let blob = protocol::to_cbor(&seal_chunk(&key, &dataset, i, i + 1 == chunks, &plain));
        out.write_all(&(blob.len() as u32).to_le_bytes()).expect("pipe");
        out.write_all(&blob).expect("pipe");
        bytes += blob.len() as u64;
    }
    out.flush().expect("pipe");
    (rows, bytes)
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let l = status.lines().find(|l| l.starts_with(field)).expect("field");
    l.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB value")
}

/// User + system CPU seconds of this process (all threads).
fn cpu_seconds(clk_tck: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the comm.
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / clk_tck
}

/// Consumer: the enclave's side of the job, reading chunk blobs from stdin. Prints one
/// line: `rows units absent_units sealed_bytes wall_s cpu_s vm_hwm_kib`.
fn consume(clk_tck: f64, dataset: Digest) {
    let started = Instant::now();
    let cpu0 = cpu_seconds(clk_tck);
    let (policy, spec) = (policy(dataset), spec(dataset));
    policy.validate().expect("policy");
    let sb = Sandbox::new(SandboxConfig {
        memory_limit_bytes: defaults::MEMORY_LIMIT_BYTES,
        time_limit: Duration::from_secs(24 * 3600),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let module = sb.admit(&common::credit_lr_wasm()).expect("credit-lr");
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    let mut runner = sb.unit_runner(&module, &spec.inputs, defaults::FUEL_PER_UNIT, deadline).expect("runner");
    let mut acc = Accumulator::new(&spec, &policy, module.output_names()).expect("accumulator");
    let mut units = UnitAssembler::new("unit", UnitAssembler::needed_columns(&spec), policy.max_rows_per_unit, [7; 32]);
    let mut opener = Opener::new(DataKey(KEY), dataset);
    let (mut rows, mut n_units, mut absent, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut score = |unit: RecordBatch, acc: &mut Accumulator| {
        n_units += 1;
        let ok = match runner.score(&unit) {
            Ok(scores) => acc.add_unit(&unit, &scores),
            Err(_) => false,
        };
        absent += u64::from(!ok);
    };
    let mut input = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut pending = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read: {e}"),
        }
        let mut blob = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut blob).expect("chunk blob");
        bytes += blob.len() as u64;
        let batch = opener.open_next(decode_chunk(&blob).expect("chunk")).expect("authentic chunk");
        drop(blob);
        rows += batch.rows as u64;
        units.push(&batch, |u| pending.push(u)).expect("sorted units");
        drop(batch);
        for u in pending.drain(..) {
            score(u, &mut acc);
        }
    }
    if let Some(u) = units.finish() {
        score(u, &mut acc);
    }
    assert_eq!(opener.finish().expect("complete stream"), dataset, "decrypted content is the dataset");
    let release = acc.finish_dp(&mut dp::seeded_rng([9; 32])).expect("release");
    std::hint::black_box(&release);
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(clk_tck) - cpu0;
    println!("{rows} {n_units} {absent} {bytes} {wall} {cpu} {}", proc_status("VmHWM:"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clk_tck: f64 = std::env::var("CLK_TCK").ok().and_then(|s| s.parse().ok()).unwrap_or(100.0);
    if let Some(at) = args.iter().position(|a| a == "--consume") {
        let hex = args.get(at + 1).expect("--consume DATASET_DIGEST");
        let bytes: Vec<u8> =
            (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digest")).collect();
        consume(clk_tck, Digest(bytes.try_into().expect("32 bytes")));
        return;
    }
    // Opt-in: a plain `cargo bench -p cleanroom-sandbox` must not stream gigabytes.
    let Ok(sizes) = std::env::var("BENCH_LARGE_GB") else {
        eprintln!("large_tables: set BENCH_LARGE_GB (e.g. \"1 8\"), or run `make bench-large`");
        return;
    };
    let sizes: Vec<f64> = sizes.split_whitespace().map(|s| s.parse().expect("BENCH_LARGE_GB: sizes in GB")).collect();
    // The module once, for every child (built now if `CLEANROOM_CREDIT_LR_WASM` is unset).
    let wasm = tempfile_path("credit_lr.wasm");
    std::fs::write(&wasm, common::credit_lr_wasm()).expect("write module");
    let tck = Command::new("getconf").arg("CLK_TCK").output().ok();
    let tck = tck.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse::<f64>().ok());
    let mut first_rss: Option<(String, f64)> = None;
    for gb in sizes {
        let name = format!("{gb}gb").replace('.', "_");
        let (chunks, padded, dataset) = shape((gb * 1e9) as u64);
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .arg("--consume")
            .arg(dataset.to_hex())
            .env("CLEANROOM_CREDIT_LR_WASM", &wasm)
            .env("CLK_TCK", tck.unwrap_or(100.0).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("consumer");
        let stdin = child.stdin.take().expect("stdin");
        let (rows, bytes) = produce(chunks, padded, dataset, stdin);
        let out = child.wait_with_output().expect("consumer");
        assert!(out.status.success(), "consumer failed: {:?}", out.status);
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let f: Vec<f64> = text.split_whitespace().map(|v| v.parse().expect("number")).collect();
        let [c_rows, units, absent, c_bytes, wall, cpu, hwm_kib] = f[..] else { panic!("consumer said {text:?}") };
        assert_eq!((c_rows as u64, c_bytes as u64), (rows, bytes), "the consumer read the whole stream");
        assert_eq!(absent, 0.0, "every unit scored");
        eprintln!("{gb} GB: {chunks} chunks, {rows} rows, {units} units, {wall:.1} s wall, {cpu:.1} s CPU");
        line(&format!("large_sealed_bytes_{name}"), bytes as f64, "bytes", None);
        let rss = hwm_kib / 1024.0;
        let rss_name = format!("large_ingest_peak_rss_{name}_mib");
        match &first_rss {
            None => {
                line(&rss_name, rss, "MiB", None);
                first_rss = Some((rss_name, rss));
            }
            Some((base, base_rss)) => line(&rss_name, rss, "MiB", Some((base, base_rss / rss))),
        }
        line(&format!("large_job_rows_per_s_per_core_{name}"), rows as f64 / cpu, "rows/s", None);
        line(&format!("large_job_rows_per_s_wall_{name}"), rows as f64 / wall, "rows/s", None);
    }
    let _ = std::fs::remove_file(&wasm);
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cleanroom-bench-large-{}-{name}", std::process::id()))
}
