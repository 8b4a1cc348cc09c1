//! Accounts, key pairs and signatures (ed25519).
//!
//! # The signature rule
//!
//! One rule decides every signature on every path (mempool, orphan pool, block
//! validation, bulk import, sync and `verify --floor`): ZIP-215, the cofactored ed25519
//! verification equation `[8][s]B = [8]R + [8][k]A` of
//! [ZIP 215](https://zips.z.cash/zip-0215), through `ed25519-zebra`. Under it a
//! signature is valid alone exactly when it is valid in any batch, so the verdict can
//! never depend on which signatures happen to share a batch, on how many threads split
//! the work, or on what a cache already holds. The cofactorless "strict" rule used
//! before gave different verdicts alone and in a batch for signatures with small-order
//! components, which let a crafted block split honest nodes.
//!
//! On top of ZIP-215 one deterministic filter applies to keys: an account whose bytes
//! are not a curve point, or are a point of small order (a "weak" key, for which
//! signatures can be forged without a secret), signs nothing ([`AccountId::is_usable`]).

use std::fmt;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::{SigningKey, VerificationKey};
use serde::{Deserialize, Serialize};

use crate::hash::{HexError, parse_hex, write_hex};

/// An account: the 32-byte ed25519 public key that signs for it.
///
/// Not every 32-byte string is a valid key; an account such as the reserve can be a
/// "nothing up my sleeve" value that no one can sign for (see [`AccountId::unspendable`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct AccountId(#[serde(with = "crate::codec::words")] pub [u8; 32]);

impl AccountId {
    /// An account derived from `label` by hashing, for which no one knows a signing key:
    /// it can receive and (through consensus rules only) pay, but never sign.
    pub fn unspendable(label: &str) -> AccountId {
        AccountId(
            crate::Hash::of_parts(&[b"healthchain/unspendable/", label.as_bytes()]).to_byte_array(),
        )
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<AccountId, HexError> {
        parse_hex(text).map(AccountId)
    }

    /// Whether these bytes are a usable ed25519 public key: a curve point that is not of
    /// small order. Signatures by any other account are invalid.
    pub fn is_usable(&self) -> bool {
        self.verification_key().is_some()
    }

    /// Decompresses the key for verification, or `None` if these bytes are not a usable
    /// ed25519 public key (not a curve point, or a weak small-order point).
    pub(crate) fn verification_key(&self) -> Option<VerificationKey> {
        let point = CompressedEdwardsY(self.0).decompress()?;
        if point.is_small_order() {
            return None;
        }
        VerificationKey::try_from(self.0).ok()
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self:#})")
    }
}

impl std::str::FromStr for AccountId {
    type Err = HexError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AccountId::from_hex(text)
    }
}

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "crate::codec::words")] pub [u8; 64]);

impl Signature {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    pub(crate) fn to_ed25519(self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.0)
    }
}

impl Default for Signature {
    fn default() -> Self {
        Signature([0; 64])
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self:#})")
    }
}

/// A signing key together with its account.
///
/// The secret never appears in `Debug` output, and is wiped from memory on drop.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    account: AccountId,
}

impl Keypair {
    /// The key pair whose secret key is `seed` (32 bytes of secret randomness).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let signing = SigningKey::from(seed);
        let account = AccountId(signing.verification_key().into());
        Keypair { signing, account }
    }

    /// A fresh key pair from a cryptographically secure random source the caller supplies.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Keypair {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Keypair::from_seed(seed)
    }

    /// The secret seed, for storing the key (encrypt it before writing it anywhere).
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The account this key signs for.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl Drop for Keypair {
    /// The secret does not outlive the key pair in memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.signing);
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Verifies one signature under the network's one rule: ZIP-215, the cofactored ed25519
/// equation `[8][s]B = [8]R + [8][k]A` (through `ed25519-zebra`), under which a
/// signature valid alone is valid in a batch of any size and vice versa, so no batch,
/// thread count or cache can change a verdict. An account that is not a curve point, or
/// is a point of small order, signs nothing ([`AccountId::is_usable`]).
pub fn verify_signature(account: &AccountId, message: &[u8], signature: &Signature) -> bool {
    account
        .verification_key()
        .is_some_and(|key| verify_with(&key, message, signature))
}

/// [`verify_signature`] with the key already decompressed.
pub(crate) fn verify_with(key: &VerificationKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(&signature.to_ed25519(), message).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let keys = Keypair::from_seed([7; 32]);
        let sig = keys.sign(b"hello");
        assert!(verify_signature(&keys.account(), b"hello", &sig));
        assert!(!verify_signature(&keys.account(), b"hellO", &sig));
        assert!(!verify_signature(
            &AccountId::unspendable("x"),
            b"hello",
            &sig
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let keys = Keypair::from_seed([9; 32]);
        assert!(!format!("{keys:?}").contains("signing"));
    }

    #[test]
    fn an_account_prints_as_hex_and_parses_back() {
        let account = Keypair::from_seed([5; 32]).account();
        let text = account.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(AccountId::from_hex(&text), Ok(account));
        assert_eq!(text.parse::<AccountId>(), Ok(account));
        assert!(AccountId::from_hex(&text[..62]).is_err());
        assert!(AccountId::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_signature_shows_its_own_bytes() {
        let sig = Keypair::from_seed([6; 32]).sign(b"shown");
        let bytes = *sig.as_bytes();
        assert_eq!(bytes, sig.0);
        assert_ne!(bytes, [0; 64]);
        let text = sig.to_string();
        assert_eq!(text.len(), 128);
        let debug = format!("{sig:?}");
        assert!(debug.starts_with("Signature(") && text.starts_with(&debug[10..debug.len() - 1]));
        assert!(format!("{:?}", Keypair::from_seed([6; 32])).contains("Keypair"));
    }

    #[test]
    fn signature_encodes_as_64_raw_bytes() {
        let sig = Signature([3; 64]);
        let bytes = crate::codec::encode(&sig);
        assert_eq!(bytes, vec![3; 64]);
        assert_eq!(crate::codec::decode::<Signature>(&bytes, 64), Ok(sig));
    }
}
