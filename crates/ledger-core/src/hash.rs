//! SHA-256 hashes and the distinct hash types built on them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
///
/// Displays as lowercase hex; `{:#}` (alternate) shows the first 12 hex digits, the
/// short form for humans.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Hash(#[serde(with = "crate::codec::words")] [u8; 32]);

impl Hash {
    /// The all-zero hash.
    pub const ZERO: Hash = Hash([0; 32]);

    /// The hash with these bytes (read from storage or the wire, say).
    pub const fn from_byte_array(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }

    /// The bytes.
    pub const fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    /// SHA-256 of the concatenation of `parts`, without copying them together.
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Number of leading zero bits, the proof-of-work measure.
    pub fn leading_zero_bits(&self) -> u32 {
        let mut bits = 0;
        for byte in self.0 {
            if byte == 0 {
                bits += 8;
            } else {
                return bits + byte.leading_zeros();
            }
        }
        bits
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Hash, HexError> {
        parse_hex(text).map(Hash)
    }
}

/// Why a hex string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// The string has the wrong number of digits.
    #[error("expected {expected} hex digits, found {found}")]
    Length {
        /// Digits required.
        expected: usize,
        /// Digits given.
        found: usize,
    },
    /// A character is not a hex digit.
    #[error("'{0}' is not a hex digit")]
    Digit(char),
}

/// Parses exactly `2 * N` hex digits into `N` bytes.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return Err(HexError::Length {
            expected: 2 * N,
            found: text.chars().count(),
        });
    }
    let mut out = [0u8; N];
    let digits = text.as_bytes();
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = hex_digit(digits[2 * i])?;
        let lo = hex_digit(digits[2 * i + 1])?;
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError::Digit(char::from(c))),
    }
}

/// Writes `bytes` as lowercase hex; with `{:#}` only the first six bytes.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let shown = if f.alternate() {
        &bytes[..bytes.len().min(6)]
    } else {
        bytes
    };
    for byte in shown {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self:#})")
    }
}

macro_rules! hash_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        pub struct $name(crate::hash::Hash);

        impl $name {
            /// Names this digest as this kind of hash.
            pub const fn from_hash(hash: crate::hash::Hash) -> Self {
                $name(hash)
            }

            /// The hash with these bytes (read from storage or the wire, say).
            pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
                $name(crate::hash::Hash::from_byte_array(bytes))
            }

            /// The bytes.
            pub const fn to_byte_array(self) -> [u8; 32] {
                self.0.to_byte_array()
            }

            /// The underlying digest.
            pub fn hash(&self) -> &crate::hash::Hash {
                &self.0
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Result<Self, crate::hash::HexError> {
                crate::hash::Hash::from_hex(text).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:#})"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::hash::HexError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::from_hex(text)
            }
        }
    };
}

hash_newtype!(
    /// The hash of a block header; the genesis hash names the network.
    BlockHash
);
hash_newtype!(
    /// The id of a transaction: the hash of its signed encoding.
    TxId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_length_says_how_many_digits_were_expected() {
        assert_eq!(
            parse_hex::<32>("abc"),
            Err(HexError::Length {
                expected: 64,
                found: 3
            })
        );
        assert_eq!(parse_hex::<2>("0a1F"), Ok([0x0a, 0x1f]));
        // Debug shows the short form, named.
        assert_eq!(format!("{:?}", Hash::of(b"abc")), "Hash(ba7816bf8f01)");
    }

    #[test]
    fn sha256_of_abc_matches_the_standard_vector() {
        assert_eq!(
            Hash::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::of_parts(&[b"a", b"bc"]), Hash::of(b"abc"));
    }

    #[test]
    fn hex_round_trips_and_short_form_is_twelve_digits() {
        let h = Hash::of(b"x");
        assert_eq!(Hash::from_hex(&h.to_string()), Ok(h));
        assert_eq!(format!("{h:#}").len(), 12);
        assert!(Hash::from_hex("zz").is_err());
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut bytes = [0u8; 32];
        bytes[1] = 0b0001_0000;
        assert_eq!(Hash(bytes).leading_zero_bits(), 11);
        assert_eq!(Hash::ZERO.leading_zero_bits(), 256);
    }
}
