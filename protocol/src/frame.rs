//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of CBOR.
//!
//! The decoder is a pure state machine over bytes the caller already read, so it is
//! the same for vsock, TCP, Unix sockets and TLS. A declared length above the limit is
//! an error before a single payload byte is buffered: a peer cannot make us allocate.

/// Hard upper bound on any frame. Blobs larger than this are split by the sender.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {declared} bytes exceeds the {max}-byte limit")]
    TooLarge { declared: usize, max: usize },
}

/// Encode one frame.
pub fn encode(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    if payload.len() > max {
        return Err(FrameError::TooLarge { declared: payload.len(), max });
    }
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Incremental frame decoder.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
}

impl Decoder {
    pub fn new(max: usize) -> Self {
        Decoder { buf: Vec::new(), max }
    }

    /// Append bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Take the next complete frame, if any. An oversized declaration is an error and
    /// the connection must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let declared = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if declared > self.max {
            return Err(FrameError::TooLarge { declared, max: self.max });
        }
        if self.buf.len() < 4 + declared {
            return Ok(None);
        }
        let frame = self.buf[4..4 + declared].to_vec();
        self.buf.drain(..4 + declared);
        Ok(Some(frame))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// How many payload bytes a frame header declares, checked against `max`.
pub fn declared_len(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let declared = u32::from_be_bytes(header) as usize;
    if declared > max {
        return Err(FrameError::TooLarge { declared, max });
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_delivery() {
        let f = encode(b"hello", 100).unwrap();
        let mut d = Decoder::new(100);
        for b in f.iter().chain(encode(b"", 100).unwrap().iter()) {
            d.push(&[*b]);
        }
        assert_eq!(d.next_frame().unwrap(), Some(b"hello".to_vec()));
        assert_eq!(d.next_frame().unwrap(), Some(vec![]));
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn oversized_declaration_rejected_before_buffering() {
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0, 11]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { declared: 11, max: 10 }));
        assert!(encode(&[0; 11], 10).is_err());
        assert!(declared_len([0xff; 4], MAX_FRAME).is_err());
    }
}
