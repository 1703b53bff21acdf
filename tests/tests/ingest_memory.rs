//! Sealed ingest streams: the enclave's peak memory does not grow with the table.
//!
//! Two tables, one sixteen times the other, each run through a real enclave-app; the
//! enclave's peak resident set (VmHWM) must differ by less than 20%. The owner seals rows
//! sorted by privacy unit, so the enclave bounds one unit at a time and holds one chunk
//! and the aggregates, never the table.

use cleanroom_e2e::*;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("enclave status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn run_job(rows: u64) -> (u64, u64) {
    // credit-lr needs about 3,400 fuel per one-row unit; a tight fuel keeps the job's
    // worst-case deadline (which the reply waits for) short.
    let w = World::start(WorldOptions { rows, rows_per_chunk: 4096, fuel_per_unit: 5_000, ..Default::default() });
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    let r = read_result(&result);
    // The result holds no exact row count; the noisy histogram shows the whole table was
    // read (every customer is in one decile bin; noise of scale ~3 per bin).
    let counted: f64 = r.outputs[1].values.iter().map(|v| v.value).sum();
    assert!((counted - rows as f64).abs() < 0.01 * rows as f64 + 100.0, "deciles sum to {counted} for {rows} rows");
    let sealed: u64 =
        std::fs::read_dir(w.sealed.join("chunks")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    (peak_rss_kib(w.enclave_pid()), sealed)
}

#[test]
fn enclave_peak_memory_does_not_grow_with_the_table() {
    // Whole chunks (4,096 rows each), so that the sealed bytes grow exactly with the rows:
    // a partial last chunk is padded to a full one.
    let (small_rss, small_bytes) = run_job(3 * 4096);
    let (large_rss, large_bytes) = run_job(48 * 4096);
    eprintln!(
        "enclave peak RSS: {small_rss} KiB for {small_bytes} sealed bytes, {large_rss} KiB for {large_bytes} sealed bytes"
    );
    assert!(large_bytes > 15 * small_bytes);
    assert!(
        (large_rss as f64) < 1.2 * small_rss as f64,
        "peak RSS grew from {small_rss} KiB to {large_rss} KiB for a 16x larger table"
    );
}
