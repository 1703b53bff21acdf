//! What a shard sends its coordinator, and its fixed-size encoding.
//!
//! A [`Partial`] carries exact, un-noised aggregates: it only ever travels inside the
//! attested TLS channel between two enclaves. Even there, the host sees the length and the
//! timing of the ciphertext, so every report (a partial or a failure) is encoded into
//! exactly the job's `report_size` bytes: a 4-byte big-endian length, the CBOR, then zeros.
//! A report that does not fit is not sent; the shard reports a failure instead (of the
//! same size), and the job fails. The zeros are checked on receipt: nothing rides in them.

use crate::assign::UnitRange;
use protocol::table::TOKEN_LEN;
use protocol::Digest;
use release::ExactAggregates;
use serde::{Deserialize, Serialize};

/// One shard's exact aggregates, with everything they claim to be about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// [`crate::JobBinding::digest`] of the run these aggregates are for.
    pub job: Digest,
    pub shard: u16,
    /// The range the shard says it read; must be the one assigned to it.
    pub range: UnitRange,
    /// Units it read in its range (absorbed or absent); must match the aggregates.
    pub units: u64,
    /// The smallest and largest unit tokens it read (none when it read no unit).
    pub first_unit: Option<[u8; TOKEN_LEN]>,
    pub last_unit: Option<[u8; TOKEN_LEN]>,
    pub aggregates: ExactAggregates,
}

/// A shard's one message about a job: its partial, or that it failed (it says no more:
/// why is the owner's to read in the shard's sealed diagnostics, never the host's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    Partial(Box<Partial>),
    Failed { job: Digest, shard: u16 },
}

/// Smallest report size a job may ask for: a failure always fits.
pub const MIN_REPORT_SIZE: u32 = 256;
/// Largest: one frame of the transport, with room for its own envelope.
pub const MAX_REPORT_SIZE: u32 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PadError {
    #[error("report size {0} is outside {MIN_REPORT_SIZE}..={MAX_REPORT_SIZE}")]
    BadSize(u32),
    #[error("the report needs {needed} bytes, more than the job's fixed {size}")]
    TooLarge { needed: usize, size: u32 },
    #[error("a report must be exactly {size} bytes, this one is {found}")]
    WrongLength { size: u32, found: usize },
    #[error("the report's length prefix is beyond its size")]
    BadPrefix,
    #[error("the report's padding is not all zeros")]
    Padding,
    #[error("the report does not decode: {0}")]
    Decode(String),
}

fn check_size(size: u32) -> Result<usize, PadError> {
    if !(MIN_REPORT_SIZE..=MAX_REPORT_SIZE).contains(&size) {
        return Err(PadError::BadSize(size));
    }
    Ok(size as usize)
}

impl Report {
    /// Exactly `size` bytes.
    pub fn to_padded(&self, size: u32) -> Result<Vec<u8>, PadError> {
        let n = check_size(size)?;
        let body = protocol::to_cbor(self);
        if body.len() > n - 4 {
            return Err(PadError::TooLarge { needed: body.len() + 4, size });
        }
        let mut out = Vec::with_capacity(n);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.resize(n, 0);
        Ok(out)
    }

    pub fn from_padded(bytes: &[u8], size: u32) -> Result<Report, PadError> {
        let n = check_size(size)?;
        if bytes.len() != n {
            return Err(PadError::WrongLength { size, found: bytes.len() });
        }
        let (len, rest) = bytes.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (body, padding) = rest.split_at_checked(len).ok_or(PadError::BadPrefix)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(PadError::Padding);
        }
        protocol::from_cbor(body).map_err(|e| PadError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Report {
        Report::Failed { job: Digest::of(b"j"), shard: 2 }
    }

    #[test]
    fn every_report_has_exactly_the_fixed_size_and_round_trips() {
        for size in [MIN_REPORT_SIZE, 4096, 1 << 16] {
            let b = failed().to_padded(size).unwrap();
            assert_eq!(b.len(), size as usize);
            assert_eq!(Report::from_padded(&b, size).unwrap(), failed());
        }
    }

    #[test]
    fn malformed_padding_is_refused() {
        let mut b = failed().to_padded(512).unwrap();
        assert_eq!(Report::from_padded(&b[..511], 512), Err(PadError::WrongLength { size: 512, found: 511 }));
        *b.last_mut().unwrap() = 1;
        assert_eq!(Report::from_padded(&b, 512), Err(PadError::Padding));
        let mut b = failed().to_padded(512).unwrap();
        b[..4].copy_from_slice(&600u32.to_be_bytes());
        assert_eq!(Report::from_padded(&b, 512), Err(PadError::BadPrefix));
        let mut b = failed().to_padded(512).unwrap();
        b[..4].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(Report::from_padded(&b, 512), Err(PadError::Padding | PadError::Decode(_))));
        assert_eq!(failed().to_padded(10), Err(PadError::BadSize(10)));
    }
}
