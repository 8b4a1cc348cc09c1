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

/// The serde form of the fixed-size byte arrays (hashes, account ids, signatures): a
/// tuple of little-endian `u64` words, used with `#[serde(with = "codec::words")]`.
///
/// Under the canonical configuration (fixed-width little-endian integers, tuples
/// without a length) this is byte for byte the encoding of the array itself, which the
/// golden vectors pin; it only lets the codec move eight bytes per call instead of
/// one, which is most of the cost of decoding a transaction. Other serde formats see
/// the words, and read back what they wrote.
pub(crate) mod words {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeTuple, Serializer};

    const WORD: usize = 8;

    /// Serialises `bytes` (`N` a multiple of 8) as `N / 8` little-endian words.
    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(N / WORD)?;
        for word in bytes.as_chunks::<WORD>().0 {
            tuple.serialize_element(&u64::from_le_bytes(*word))?;
        }
        tuple.end()
    }

    /// Reads back what [`serialize`] wrote.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        struct Words<const N: usize>(PhantomData<[u8; N]>);
        impl<'de, const N: usize> Visitor<'de> for Words<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut bytes = [0u8; N];
                for (i, word) in bytes.as_chunks_mut::<WORD>().0.iter_mut().enumerate() {
                    let value: u64 = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                    *word = value.to_le_bytes();
                }
                Ok(bytes)
            }
        }
        deserializer.deserialize_tuple(N / WORD, Words::<N>(PhantomData))
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
    fn words_encode_exactly_like_the_byte_arrays() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        struct Words(#[serde(with = "words")] [u8; 32]);
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let encoded = encode(&bytes);
        assert_eq!(encode(&Words(bytes)), encoded);
        assert_eq!(decode::<Words>(&encoded, 64), Ok(Words(bytes)));
        assert_eq!(
            decode::<Words>(&encoded[..31], 64),
            Err(DecodeError::Incomplete)
        );
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
