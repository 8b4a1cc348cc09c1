//! Sealed bodies: data that travels beside the chain, encrypted to its readers, of
//! which the chain holds only a reference.
//!
//! The core defines the shapes and the one check that needs no key: that a delivered
//! [`SealedBody`] is the one a [`SealedRef`] on the chain names (id, ciphertext length
//! and hash). How a body is encrypted, to whom, and what it says is the application's
//! business (`health-workflow` seals with XChaCha20-Poly1305 and HPKE); no validation
//! rule of the ledger reads a body, so a chain verifies with every body deleted.
//!
//! A roster member may list an X25519 [`EncryptionPublicKey`] next to its signing key,
//! bound to it by a signature ([`MemberEncryption`]), which
//! [`Genesis::check`](crate::Genesis::check) verifies.
//!
//! ```
//! use ledger_core::sealed::{BodyId, SealedBody, SealedRef};
//! use ledger_core::Hash;
//!
//! let body = SealedBody {
//!     body_id: BodyId::from_byte_array([1; 16]),
//!     nonce: [0; 24],
//!     ciphertext: b"opaque".to_vec(),
//!     wraps: Vec::new(),
//! };
//! let reference = SealedRef {
//!     body_id: body.body_id,
//!     commitment: Hash::of(b"known only to readers"),
//!     ciphertext_hash: Hash::of(b"opaque"),
//!     ciphertext_len: 6,
//! };
//! assert_eq!(body.check(&reference), Ok(()));
//! let mut changed = body.clone();
//! changed.ciphertext[0] ^= 1;
//! assert!(changed.check(&reference).is_err());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::keys::{AccountId, Keypair, Signature, verify_signature};

/// Domain of the signature that binds an encryption key to a signing account.
pub const ENCRYPTION_KEY_DOMAIN: &[u8] = b"healthchain/encryption-key/v1";

/// Most wraps (readers) a sealed body may carry.
pub const MAX_WRAPS: usize = 64;

/// Largest ciphertext a sealed body may carry, in bytes.
pub const MAX_CIPHERTEXT_BYTES: usize = 64 * 1024;

/// The random id naming a sealed body.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BodyId([u8; 16]);

impl BodyId {
    /// The id with these bytes.
    pub const fn from_byte_array(bytes: [u8; 16]) -> Self {
        BodyId(bytes)
    }

    /// The bytes.
    pub const fn to_byte_array(self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for BodyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BodyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyId({self})")
    }
}

/// What the chain holds of a sealed body: enough to check a delivered body, nothing of
/// its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRef {
    /// The body's id.
    pub body_id: BodyId,
    /// A salted commitment to the clear body; only a reader, who learns the salt, can
    /// check it.
    pub commitment: Hash,
    /// SHA-256 of the ciphertext.
    pub ciphertext_hash: Hash,
    /// Length of the ciphertext in bytes.
    pub ciphertext_len: u32,
}

/// What a sealed body is about, as its policy labels it
/// ([`Policy::labelled_refs`](crate::Policy::labelled_refs)): an application-defined
/// subject (`health-workflow`: the patient's id) and category code, and the event that
/// names it (its author, and the application's code for its kind). A runtime keeps the
/// label beside the body, asks the policy whom it may serve it to
/// ([`Policy::body_access`](crate::Policy::body_access)), erases a subject's bodies
/// together, and can give a body to a reader it was not sealed to (a re-wrap needs the
/// event the body is bound to).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct BodyLabel {
    /// Who the body is about (all zeros: nobody in particular).
    pub subject: [u8; 16],
    /// The application's category code.
    pub category: u8,
    /// The author of the event that names the body.
    pub author: AccountId,
    /// The application's code for that event's kind.
    pub kind: u8,
}

impl BodyLabel {
    /// Bytes of [`BodyLabel::to_bytes`].
    pub const BYTES: usize = 16 + 1 + 32 + 1;

    /// The label as fixed bytes: subject, category, author, kind.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0u8; Self::BYTES];
        bytes[..16].copy_from_slice(&self.subject);
        bytes[16] = self.category;
        bytes[17..49].copy_from_slice(&self.author.0);
        bytes[49] = self.kind;
        bytes
    }

    /// The label of [`BodyLabel::to_bytes`].
    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> BodyLabel {
        let mut subject = [0u8; 16];
        subject.copy_from_slice(&bytes[..16]);
        let mut author = [0u8; 32];
        author.copy_from_slice(&bytes[17..49]);
        BodyLabel {
            subject,
            category: bytes[16],
            author: AccountId(author),
            kind: bytes[49],
        }
    }
}

/// Whether a body may be given to a reader now
/// ([`Policy::body_access`](crate::Policy::body_access)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyAccess {
    /// The reader may have it.
    Granted,
    /// The reader may not have it (no live consent).
    Denied,
    /// Its subject asked for erasure: nobody may have it, and no node keeps it.
    Erased,
}

/// A body's data key, wrapped to one reader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrap {
    /// The reader's signing account.
    pub reader: AccountId,
    /// The encapsulated key of the wrap.
    pub encapped: [u8; 32],
    /// The wrapped data key.
    pub wrapped_key: Vec<u8>,
}

/// A sealed body as a vault keeps it and nodes deliver it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBody {
    /// The body id, as in the reference.
    pub body_id: BodyId,
    /// The nonce of the body's encryption.
    pub nonce: [u8; 24],
    /// The encrypted body.
    pub ciphertext: Vec<u8>,
    /// The data key, wrapped to each reader.
    pub wraps: Vec<Wrap>,
}

/// A delivered body is not the one its reference names, or breaks a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyMismatch {
    /// The body ids differ.
    #[error("the body id is not the one on the chain")]
    BodyId,
    /// The ciphertext length differs, or is above [`MAX_CIPHERTEXT_BYTES`].
    #[error("the ciphertext length is not the one on the chain, or above the limit")]
    Length,
    /// The ciphertext hash differs.
    #[error("the ciphertext hash is not the one on the chain")]
    CiphertextHash,
    /// More wraps than [`MAX_WRAPS`], or two for one reader.
    #[error("the body carries too many wraps, or two for one reader")]
    Wraps,
}

impl SealedBody {
    /// Whether this is the body `reference` names (id, ciphertext length and hash),
    /// with a ciphertext of at most [`MAX_CIPHERTEXT_BYTES`] and at most [`MAX_WRAPS`]
    /// wraps, one per reader: what a vault checks before it keeps a delivered body,
    /// without reading it.
    pub fn check(&self, reference: &SealedRef) -> Result<(), BodyMismatch> {
        if self.body_id != reference.body_id {
            return Err(BodyMismatch::BodyId);
        }
        if self.ciphertext.len() > MAX_CIPHERTEXT_BYTES
            || u32::try_from(self.ciphertext.len()).ok() != Some(reference.ciphertext_len)
        {
            return Err(BodyMismatch::Length);
        }
        if Hash::of(&self.ciphertext) != reference.ciphertext_hash {
            return Err(BodyMismatch::CiphertextHash);
        }
        if self.wraps.len() > MAX_WRAPS
            || self
                .wraps
                .iter()
                .enumerate()
                .any(|(i, w)| self.wraps[..i].iter().any(|v| v.reader == w.reader))
        {
            return Err(BodyMismatch::Wraps);
        }
        Ok(())
    }

    /// Whether `account` is among the readers.
    pub fn is_sealed_to(&self, account: &AccountId) -> bool {
        self.wraps.iter().any(|w| w.reader == *account)
    }

    /// The readers, in the order of their wraps.
    pub fn readers(&self) -> impl Iterator<Item = &AccountId> {
        self.wraps.iter().map(|w| &w.reader)
    }
}

/// An X25519 public encryption key, separate from the member's ed25519 signing key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncryptionPublicKey(#[serde(with = "crate::codec::words")] [u8; 32]);

impl EncryptionPublicKey {
    /// The key with these bytes.
    pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
        EncryptionPublicKey(bytes)
    }

    /// The bytes.
    pub const fn to_byte_array(self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Display for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionPublicKey({self})")
    }
}

/// A member's encryption key as the roster lists it, with the signature by the
/// member's signing key that binds the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEncryption {
    /// The encryption key.
    pub key: EncryptionPublicKey,
    /// The signing key's signature over [`MemberEncryption::message`].
    pub binding: Signature,
}

impl MemberEncryption {
    /// What `account` signs to bind `key` to itself: the domain, the account, the key.
    ///
    /// The network is not part of it, so a member can bind its key when it creates it
    /// (`healthchain keygen`), before any genesis exists; the binding says only "this
    /// encryption key is mine", which is as true on any network.
    pub fn message(account: &AccountId, key: &EncryptionPublicKey) -> Vec<u8> {
        let mut message = Vec::with_capacity(ENCRYPTION_KEY_DOMAIN.len() + 64);
        message.extend_from_slice(ENCRYPTION_KEY_DOMAIN);
        message.extend_from_slice(account.as_bytes());
        message.extend_from_slice(&key.0);
        message
    }

    /// `key`, bound to `signer`'s account.
    pub fn bind(signer: &Keypair, key: EncryptionPublicKey) -> Self {
        let binding = signer.sign(&Self::message(&signer.account(), &key));
        MemberEncryption { key, binding }
    }

    /// Whether the binding is `account`'s signature over this key.
    pub fn is_bound_to(&self, account: &AccountId) -> bool {
        verify_signature(account, &Self::message(account, &self.key), &self.binding)
    }

    /// The key and its binding as 96 bytes: what `healthchain keygen` prints in hex.
    pub fn to_bytes(&self) -> [u8; 96] {
        let mut bytes = [0u8; 96];
        bytes[..32].copy_from_slice(&self.key.0);
        bytes[32..].copy_from_slice(self.binding.as_bytes());
        bytes
    }

    /// Reads back [`MemberEncryption::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 96]) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[32..]);
        MemberEncryption {
            key: EncryptionPublicKey(key),
            binding: Signature(signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> (SealedBody, SealedRef) {
        let body = SealedBody {
            body_id: BodyId([7; 16]),
            nonce: [1; 24],
            ciphertext: vec![9; 40],
            wraps: vec![Wrap {
                reader: AccountId([3; 32]),
                encapped: [4; 32],
                wrapped_key: vec![5; 48],
            }],
        };
        let reference = SealedRef {
            body_id: body.body_id,
            commitment: Hash::of(b"c"),
            ciphertext_hash: Hash::of(&body.ciphertext),
            ciphertext_len: 40,
        };
        (body, reference)
    }

    #[test]
    fn a_body_matches_only_its_own_reference() {
        let (body, reference) = body();
        assert_eq!(body.check(&reference), Ok(()));
        let mut other = reference;
        other.body_id = BodyId([8; 16]);
        assert_eq!(body.check(&other), Err(BodyMismatch::BodyId));
        let mut other = reference;
        other.ciphertext_len = 41;
        assert_eq!(body.check(&other), Err(BodyMismatch::Length));
        let mut changed = body.clone();
        changed.ciphertext[39] ^= 0x80;
        assert_eq!(changed.check(&reference), Err(BodyMismatch::CiphertextHash));
        let mut twice = body.clone();
        twice.wraps.push(twice.wraps[0].clone());
        assert_eq!(twice.check(&reference), Err(BodyMismatch::Wraps));
        let mut many = body.clone();
        many.wraps = (0..=MAX_WRAPS)
            .map(|i| Wrap {
                reader: AccountId([i as u8; 32]),
                encapped: [0; 32],
                wrapped_key: Vec::new(),
            })
            .collect();
        assert_eq!(many.check(&reference), Err(BodyMismatch::Wraps));
        many.wraps.pop();
        assert_eq!(many.wraps.len(), MAX_WRAPS);
        assert_eq!(
            many.check(&reference),
            Ok(()),
            "the limit itself is allowed"
        );
        // A reference may name a ciphertext of any length; a body above the limit (64
        // KiB, part of what nodes accept from each other) is refused all the same, and
        // one at the limit kept.
        assert_eq!(MAX_CIPHERTEXT_BYTES, 65_536);
        for (len, expected) in [
            (MAX_CIPHERTEXT_BYTES, Ok(())),
            (MAX_CIPHERTEXT_BYTES + 1, Err(BodyMismatch::Length)),
        ] {
            let mut big = body.clone();
            big.ciphertext = vec![1; len];
            let reference = SealedRef {
                ciphertext_hash: Hash::of(&big.ciphertext),
                ciphertext_len: u32::try_from(len).expect("fits"),
                ..reference
            };
            assert_eq!(big.check(&reference), expected, "{len} bytes");
        }
        assert!(body.is_sealed_to(&AccountId([3; 32])));
        assert!(!body.is_sealed_to(&AccountId([4; 32])));
    }

    #[test]
    fn ids_and_keys_print_as_hex_and_keep_their_bytes() {
        let id = BodyId::from_byte_array([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(format!("{id:?}"), format!("BodyId({})", "ab".repeat(16)));
        assert_eq!(id.to_byte_array(), [0xab; 16]);
        let key = EncryptionPublicKey::from_byte_array([0x0c; 32]);
        assert_eq!(key.to_string(), "0c".repeat(32));
        assert_eq!(
            format!("{key:?}"),
            format!("EncryptionPublicKey({})", "0c".repeat(32))
        );
        assert_eq!(key.to_byte_array(), [0x0c; 32]);
        let (mut body, _) = body();
        body.wraps.push(Wrap {
            reader: AccountId([8; 32]),
            encapped: [0; 32],
            wrapped_key: Vec::new(),
        });
        let readers: Vec<AccountId> = body.readers().copied().collect();
        assert_eq!(readers, [AccountId([3; 32]), AccountId([8; 32])]);
    }

    #[test]
    fn an_encryption_key_is_bound_to_one_account() {
        let alice = Keypair::from_seed([1; 32]);
        let bob = Keypair::from_seed([2; 32]);
        let key = EncryptionPublicKey([6; 32]);
        let bound = MemberEncryption::bind(&alice, key);
        assert!(bound.is_bound_to(&alice.account()));
        assert!(!bound.is_bound_to(&bob.account()));
        let mut swapped = bound;
        swapped.key = EncryptionPublicKey([7; 32]);
        assert!(!swapped.is_bound_to(&alice.account()));
        assert_eq!(MemberEncryption::from_bytes(&bound.to_bytes()), bound);
    }
}
