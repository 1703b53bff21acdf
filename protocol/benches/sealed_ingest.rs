//! Sealed-ingest throughput: authenticate, decrypt and decode record batches, against
//! raw AES-256-GCM decryption of the same bytes as the baseline. Prints JSON lines.

use cleanroom_protocol::sealed::{open_chunk, pad, padded_len_for, seal_chunk, DataKey, Opener};
use cleanroom_protocol::table::{Column, ColumnData, RecordBatch};
use cleanroom_protocol::Digest;
use std::time::Instant;

fn batch(rows: usize, salt: usize) -> RecordBatch {
    let f = |k: usize| (0..rows).map(|i| ((i * 31 + k + salt) % 1000) as f64 * 1.5).collect::<Vec<_>>();
    RecordBatch::new(vec![
        Column { name: "unit".into(), data: ColumnData::Token((0..rows).map(|i| [(i % 251) as u8; 32]).collect()) },
        Column { name: "income".into(), data: ColumnData::F64(f(1)) },
        Column { name: "utilization".into(), data: ColumnData::F64(f(2)) },
        Column { name: "late".into(), data: ColumnData::I64((0..rows as i64).collect()) },
        Column {
            name: "zip3".into(),
            data: ColumnData::Dict {
                codes: (0..rows as u32).map(|i| i % 300).collect(),
                values: (0..300).map(|i| format!("{i:03}")).collect(),
            },
        },
    ])
    .expect("batch")
}

fn main() {
    let key = DataKey([9; 32]);
    let ds = Digest::of(b"bench");
    let (rows, chunks) = (16_384, 32);
    let sealed: Vec<_> = (0..chunks)
        .map(|i| {
            let enc = batch(rows, i).encode();
            let padded = pad(&enc, padded_len_for(enc.len())).expect("fits");
            seal_chunk(&key, &ds, i as u64, i + 1 == chunks, &padded)
        })
        .collect();
    let bytes: usize = sealed.iter().map(|c| c.ciphertext.0.len()).sum();
    let mb = bytes as f64 / 1e6;

    let mut best_raw = f64::MAX;
    let mut best_ingest = f64::MAX;
    for _ in 0..5 {
        let copy = sealed.clone();
        let t = Instant::now();
        for mut c in copy {
            std::hint::black_box(open_chunk(&key, &ds, &mut c).expect("open").len());
        }
        best_raw = best_raw.min(t.elapsed().as_secs_f64());

        let copy = sealed.clone();
        let t = Instant::now();
        let mut o = Opener::new(key.clone(), ds);
        for c in copy {
            std::hint::black_box(o.open_next(c).expect("open").rows);
        }
        o.finish().expect("complete");
        best_ingest = best_ingest.min(t.elapsed().as_secs_f64());
    }
    let raw = mb / best_raw;
    let ingest = mb / best_ingest;
    println!(
        "{{\"bench\":\"aes_gcm_open_raw_mb_s\",\"value\":{raw:.1},\"unit\":\"MB/s\",\"baseline\":null,\"ratio\":null}}"
    );
    println!(
        "{{\"bench\":\"sealed_ingest_mb_s\",\"value\":{ingest:.1},\"unit\":\"MB/s\",\"baseline\":\"aes_gcm_open_raw_mb_s\",\"ratio\":{:.3}}}",
        ingest / raw
    );
}
