//! The canonical encoding: one fixed bincode 1.3.3 configuration.
//!
//! Everything that is hashed, signed, stored or sent goes through [`encode`] and
//! [`decode`]. The configuration is bincode's `DefaultOptions` with fixed-width
//! little-endian integers, a byte limit on every decode, and trailing bytes rejected,
//! so every value has exactly one encoding. Byte-exact golden vectors in
//! `tests/golden.rs` pin the format: a dependency bump that changes a single byte
//! fails them.
//!
//! This is the only module that names `bincode`.

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value was complete: more bytes might make it valid.
    #[error("input ended early: more bytes needed")]
    Incomplete,
    /// The value would need more than the allowed number of bytes.
    #[error("value exceeds the {limit}-byte limit")]
    TooLarge {
        /// The byte limit in force.
        limit: u64,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("invalid encoding: {reason}")]
    Invalid {
        /// What the decoder found wrong.
        reason: String,
    },
    /// A complete value was followed by extra bytes.
    #[error("trailing bytes after a complete value")]
    TrailingBytes,
}

/// Encodes `value` canonically.
///
/// Encoding into memory cannot fail for the types of this crate (they hold no maps
/// with unsized keys or unknown-length sequences), so this returns the bytes directly.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize(value)
        .expect("serialising into a Vec cannot fail for sized sequences and plain data")
}

/// Appends the canonical encoding of `value` to `out` (same bytes as [`encode`]), so a
/// caller encoding many values can reuse one buffer.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize_into(out, value)
        .expect("serialising into a Vec cannot fail for sized sequences and plain data")
}

/// Length in bytes of the canonical encoding of `value`, without allocating it.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let len = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialized_size(value)
        .expect("sizing plain data cannot fail");
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Decodes one value from `bytes`, reading at most `limit` bytes and rejecting any
/// bytes left over.
///
/// Never panics, whatever the input: declared lengths are checked against `limit`
/// before anything is allocated.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    let limit = limit as u64;
    if bytes.len() as u64 > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(limit)
        .reject_trailing_bytes()
        .deserialize(bytes)
        .map_err(|e| classify(*e, limit))
}

fn classify(error: bincode::ErrorKind, limit: u64) -> DecodeError {
    match error {
        bincode::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Incomplete
        }
        bincode::ErrorKind::SizeLimit => DecodeError::TooLarge { limit },
        bincode::ErrorKind::Custom(reason) if reason.contains("bytes remaining") => {
            DecodeError::TrailingBytes
        }
        other => DecodeError::Invalid {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(encode(&1u64), vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(&0x0102u16), vec![2, 1]);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes, 64), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn short_input_asks_for_more() {
        assert_eq!(decode::<u64>(&[1, 2, 3], 64), Err(DecodeError::Incomplete));
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating() {
        // A Vec<u8> claiming 2^60 elements, followed by nothing.
        let bytes = (1u64 << 60).to_le_bytes();
        let err = decode::<Vec<u8>>(&bytes, 1024).expect_err("must not decode");
        assert!(matches!(
            err,
            DecodeError::TooLarge { .. } | DecodeError::Incomplete
        ));
    }

    #[test]
    fn input_longer_than_limit_is_refused() {
        assert_eq!(
            decode::<Vec<u8>>(&[0; 100], 10),
            Err(DecodeError::TooLarge { limit: 10 })
        );
    }
}
