//! The sealed-chunk format: AES-256-GCM record batches bound to their dataset.
//!
//! Each chunk is encrypted under the dataset's data key with
//! * nonce = `final_flag (4 bytes BE) || chunk_index (8 bytes BE)`, unique per chunk because
//!   the index is, and safe because a data key seals exactly one dataset;
//! * AAD = `"cleanroom/sealed-chunk/v1" || dataset_digest || chunk_index || final_flag`.
//!
//! So a chunk decrypts only at its own position in its own dataset: reordering, splicing
//! chunks from another dataset sealed under the same key, flipping a bit, or moving the
//! final flag all fail authentication. Truncation is caught because the stream must end
//! with a chunk whose final flag is authenticated as set.

use crate::{Bytes, DecodeError, Digest};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

const AAD_LABEL: &[u8] = b"cleanroom/sealed-chunk/v2";

/// A 256-bit data key. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey(pub [u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// On the wire (inside the attested channel only) a data key is a 32-byte CBOR byte
/// string. Decoding copies it straight into the key; an owned buffer handed over by the
/// decoder is wiped. Any other length does not decode.
impl Serialize for DataKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for DataKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = DataKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a 32-byte data key")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<DataKey, E> {
                let mut k = DataKey([0; 32]);
                if v.len() != 32 {
                    return Err(E::invalid_length(v.len(), &self));
                }
                k.0.copy_from_slice(v);
                Ok(k)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, mut v: Vec<u8>) -> Result<DataKey, E> {
                let k = self.visit_bytes(&v);
                v.zeroize();
                k
            }
        }
        d.deserialize_bytes(KeyVisitor)
    }
}

/// One sealed chunk as stored by the host. Index and final flag travel in clear
/// because the nonce is derived from them; they are authenticated through the AAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedChunk {
    pub index: u64,
    pub last: bool,
    pub ciphertext: Bytes,
}

/// The untrusted list of chunk blobs that make up a sealed dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedIndex {
    pub dataset_digest: Digest,
    /// Content hashes of the chunk blobs, in order.
    pub chunks: Vec<Digest>,
    /// Most rows in one chunk (the manifest's public figure). The enclave sizes the job's
    /// deadline from `chunks.len() × rows_per_chunk` and fails a job whose decrypted chunk
    /// holds more.
    pub rows_per_chunk: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    #[error("chunk {index}: authentication failed (tampered, reordered, spliced from another dataset, or wrong key)")]
    Authentication { index: u64 },
    #[error("chunk {got} arrived where chunk {expected} was expected")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("stream continued after the final chunk {final_index}")]
    AfterFinal { final_index: u64 },
    #[error("dataset ended after {chunks} chunks without an authenticated final chunk (truncated)")]
    Truncated { chunks: u64 },
    #[error("chunk {index}: plaintext is not a valid record batch: {why}")]
    BadPlaintext { index: u64, why: String },
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&u32::from(last).to_be_bytes());
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(dataset: &Digest, index: u64, last: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 32 + 9);
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(dataset.as_bytes());
    a.extend_from_slice(&index.to_be_bytes());
    a.push(u8::from(last));
    a
}

fn key(k: &DataKey) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k.0).expect("32-byte AES-256 key"))
}

/// Smallest padded plaintext length for a table whose largest encoded chunk is
/// `max_encoded` bytes: a power of two, at least 4 KiB, with room for the length prefix.
/// Every chunk of a table is padded to it, so a chunk's size says nothing about its rows,
/// its dictionaries or its values, and the table's only visible size is its chunk count.
pub fn padded_len_for(max_encoded: usize) -> usize {
    max_encoded.saturating_add(4).max(4096).next_power_of_two()
}

/// `u32le(len) ‖ encoded ‖ zeros` of exactly `padded_len` bytes; `None` if it does not fit.
pub fn pad(encoded: &[u8], padded_len: usize) -> Option<Vec<u8>> {
    let len = u32::try_from(encoded.len()).ok()?;
    if encoded.len().checked_add(4)? > padded_len {
        return None;
    }
    let mut out = vec![0u8; padded_len];
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..4 + encoded.len()].copy_from_slice(encoded);
    Some(out)
}

/// The encoded batch inside a padded plaintext; the padding must be all zeros.
fn unpad(plain: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let body = plain.get(4..4usize.checked_add(len)?)?;
    plain[4 + len..].iter().all(|&b| b == 0).then_some(body)
}

/// Seal one (padded, see [`pad`]) plaintext chunk.
pub fn seal_chunk(k: &DataKey, dataset: &Digest, index: u64, last: bool, plaintext: &[u8]) -> SealedChunk {
    let mut buf = plaintext.to_vec();
    key(k)
        .seal_in_place_append_tag(nonce(index, last), Aad::from(aad(dataset, index, last)), &mut buf)
        .expect("AES-GCM sealing of an in-memory buffer");
    SealedChunk { index, last, ciphertext: Bytes(buf) }
}

/// Open one chunk in place, returning the plaintext slice.
pub fn open_chunk<'a>(k: &DataKey, dataset: &Digest, chunk: &'a mut SealedChunk) -> Result<&'a [u8], SealError> {
    let index = chunk.index;
    key(k)
        .open_in_place(nonce(index, chunk.last), Aad::from(aad(dataset, index, chunk.last)), &mut chunk.ciphertext.0)
        .map(|p| &*p)
        .map_err(|_| SealError::Authentication { index })
}

/// Pure state machine for reading a sealed stream in order. Feed chunks as they arrive;
/// call [`Opener::finish`] when the source is exhausted.
pub struct Opener {
    key: DataKey,
    dataset: Digest,
    next: u64,
    ended: bool,
    plaintext_digest: ring::digest::Context,
}

impl Opener {
    pub fn new(key: DataKey, dataset: Digest) -> Self {
        Opener {
            key,
            dataset,
            next: 0,
            ended: false,
            plaintext_digest: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// Authenticate and decode the next chunk.
    pub fn open_next(&mut self, mut chunk: SealedChunk) -> Result<crate::table::RecordBatch, SealError> {
        if self.ended {
            return Err(SealError::AfterFinal { final_index: self.next - 1 });
        }
        if chunk.index != self.next {
            return Err(SealError::OutOfOrder { expected: self.next, got: chunk.index });
        }
        let last = chunk.last;
        let index = chunk.index;
        let plain = open_chunk(&self.key, &self.dataset, &mut chunk)?;
        self.plaintext_digest.update(plain);
        let body = unpad(plain).ok_or_else(|| SealError::BadPlaintext { index, why: "bad padding".into() })?;
        let batch = crate::table::RecordBatch::decode(body)
            .map_err(|e| SealError::BadPlaintext { index, why: e.to_string() })?;
        self.next += 1;
        self.ended = last;
        Ok(batch)
    }

    /// The stream is over: it must have ended with an authenticated final chunk.
    /// Returns the SHA-256 of the concatenated plaintext chunks.
    pub fn finish(self) -> Result<Digest, SealError> {
        if !self.ended {
            return Err(SealError::Truncated { chunks: self.next });
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(self.plaintext_digest.finish().as_ref());
        Ok(Digest(out))
    }
}

/// Decode a chunk blob received from the host.
pub fn decode_chunk(blob: &[u8]) -> Result<SealedChunk, DecodeError> {
    crate::from_cbor(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_travels_as_32_bytes_and_never_prints() {
        let k = DataKey([7; 32]);
        let cbor = crate::to_cbor(&k);
        assert_eq!(cbor.len(), 34, "a CBOR byte string of 32");
        assert_eq!(crate::from_cbor::<DataKey>(&cbor).unwrap(), k);
        assert!(crate::from_cbor::<DataKey>(&crate::to_cbor(&Bytes(vec![7; 31]))).is_err());
        assert!(crate::from_cbor::<DataKey>(&crate::to_cbor(&Bytes(vec![7; 33]))).is_err());
        assert_eq!(format!("{k:?}"), "DataKey(<redacted>)");
    }
    use crate::table::{Column, ColumnData, RecordBatch};

    fn batch(v: f64) -> RecordBatch {
        RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(vec![v]) }]).unwrap()
    }

    fn sealed(key: &DataKey, ds: &Digest, n: u64) -> Vec<SealedChunk> {
        (0..n)
            .map(|i| {
                let enc = batch(i as f64).encode();
                seal_chunk(key, ds, i, i + 1 == n, &pad(&enc, padded_len_for(enc.len())).unwrap())
            })
            .collect()
    }

    fn read_all(key: &DataKey, ds: &Digest, chunks: Vec<SealedChunk>) -> Result<Vec<RecordBatch>, SealError> {
        let mut o = Opener::new(key.clone(), *ds);
        let mut out = vec![];
        for c in chunks {
            out.push(o.open_next(c)?);
        }
        o.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let (k, d) = (DataKey([1; 32]), Digest::of(b"ds"));
        let got = read_all(&k, &d, sealed(&k, &d, 3)).unwrap();
        assert_eq!(got, vec![batch(0.0), batch(1.0), batch(2.0)]);
    }

    #[test]
    fn flipped_byte_fails() {
        let (k, d) = (DataKey([1; 32]), Digest::of(b"ds"));
        let mut c = sealed(&k, &d, 3);
        c[1].ciphertext.0[3] ^= 1;
        assert_eq!(read_all(&k, &d, c), Err(SealError::Authentication { index: 1 }));
    }

    #[test]
    fn swapped_chunks_fail() {
        let (k, d) = (DataKey([1; 32]), Digest::of(b"ds"));
        let mut c = sealed(&k, &d, 3);
        c.swap(0, 1);
        assert_eq!(read_all(&k, &d, c.clone()), Err(SealError::OutOfOrder { expected: 0, got: 1 }));
        // Relabelling the index to hide the swap breaks authentication instead.
        c[0].index = 0;
        assert_eq!(read_all(&k, &d, c), Err(SealError::Authentication { index: 0 }));
    }

    #[test]
    fn dropped_final_chunk_is_truncation() {
        let (k, d) = (DataKey([1; 32]), Digest::of(b"ds"));
        let mut c = sealed(&k, &d, 3);
        c.pop();
        assert_eq!(read_all(&k, &d, c.clone()), Err(SealError::Truncated { chunks: 2 }));
        // Forging the final flag on the new last chunk is caught by the AAD.
        c[1].last = true;
        assert_eq!(read_all(&k, &d, c), Err(SealError::Authentication { index: 1 }));
    }

    #[test]
    fn splice_from_other_dataset_fails() {
        let k = DataKey([1; 32]);
        let (d1, d2) = (Digest::of(b"one"), Digest::of(b"two"));
        let mut c = sealed(&k, &d1, 2);
        c[1] = sealed(&k, &d2, 2).remove(1);
        assert_eq!(read_all(&k, &d1, c), Err(SealError::Authentication { index: 1 }));
    }

    #[test]
    fn repeated_chunk_and_data_after_final_fail() {
        let (k, d) = (DataKey([1; 32]), Digest::of(b"ds"));
        let mut c = sealed(&k, &d, 2);
        c.insert(1, c[0].clone());
        assert_eq!(read_all(&k, &d, c), Err(SealError::OutOfOrder { expected: 1, got: 0 }));
        let mut c = sealed(&k, &d, 2);
        c.push(c[1].clone());
        assert_eq!(read_all(&k, &d, c), Err(SealError::AfterFinal { final_index: 1 }));
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", DataKey([0xab; 32])), "DataKey(<redacted>)");
    }

    #[test]
    fn padding_hides_a_chunk_s_content_size() {
        let small = batch(1.0).encode();
        let mut big = small.clone();
        big.extend_from_slice(&[0xff; 100]);
        let n = padded_len_for(big.len());
        assert_eq!(pad(&small, n).unwrap().len(), pad(&big, n).unwrap().len());
        assert_eq!(unpad(&pad(&small, n).unwrap()), Some(&small[..]));
        assert!(pad(&big, big.len()).is_none(), "no room for the prefix");
        let mut bad = pad(&small, n).unwrap();
        *bad.last_mut().unwrap() = 1;
        assert_eq!(unpad(&bad), None, "non-zero padding is refused");
        assert_eq!(padded_len_for(0), 4096);
        assert_eq!(padded_len_for(5000), 8192);
    }
}
