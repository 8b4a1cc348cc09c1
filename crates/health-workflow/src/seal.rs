//! Sealing a clinical body to the members who may read it.
//!
//! A body (what a person wrote: a name, notes, results, medication) is encrypted once
//! under a fresh random data key with XChaCha20-Poly1305, bound by associated data to
//! its event: the network, the author, the patient, the event kind and the body id. The
//! data key is wrapped to each reader with HPKE (RFC 9180: X25519, HKDF-SHA256,
//! ChaCha20-Poly1305, base mode), to the reader's own X25519 encryption key, never to
//! its ed25519 signing key.
//!
//! What may go on a public chain is the [`SealedRef`]: the body id, a salted commitment
//! `SHA-256(domain ‖ salt ‖ body)`, and the ciphertext's hash and length. The salt
//! travels inside the ciphertext, so only a reader can check the commitment, and equal
//! bodies give unrelated commitments. A [`SealedBody`] (ciphertext, nonce, wraps) is
//! checked against its reference before it is kept ([`SealedBody::check`]), and opening
//! it ([`OpenSealed::open`]) checks the wrap, the binding and the commitment: a body
//! changed, moved onto another event, or opened with another key is refused, typed.
//!
//! Keys and plaintext live in buffers that are zeroed when dropped.
//!
//! ```
//! use health_workflow::seal::{Binding, EncryptionKey, OpenSealed, Reader, seal};
//! use health_workflow::{EventKind, PatientId};
//! use ledger_core::{BlockHash, Keypair};
//!
//! # fn main() -> Result<(), health_workflow::seal::SealError> {
//! let mut rng = chacha20::ChaCha20Rng::from_seed([7; 32]);
//! # use rand_core::SeedableRng;
//! let doctor = Keypair::from_seed([1; 32]).account();
//! let lab_key = EncryptionKey::generate(&mut rng);
//! let lab = Reader { account: Keypair::from_seed([2; 32]).account(), key: lab_key.public() };
//! let binding = Binding::new(
//!     BlockHash::default(),
//!     doctor,
//!     PatientId::from_random_bytes([3; 16]),
//!     EventKind::DoctorConsultation,
//! );
//! let (reference, sealed) = seal(b"test: full blood count", &binding, &[lab], &mut rng)?;
//! sealed.check(&reference)?;
//! let body = sealed.open(&reference, &binding, &lab.account, &lab_key)?;
//! assert_eq!(&body[..], b"test: full blood count");
//! # Ok(())
//! # }
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use ledger_core::sealed::BodyMismatch;
pub use ledger_core::sealed::{BodyId, EncryptionPublicKey, SealedBody, SealedRef, Wrap};
use ledger_core::{AccountId, BlockHash, Hash};
use rand_core::CryptoRng;
use sha2::Digest;
use zeroize::{Zeroize, Zeroizing};

use crate::event::EventKind;
use crate::ids::PatientId;

/// Domain of the body commitment.
pub const COMMITMENT_DOMAIN: &[u8] = b"healthchain/body-commitment/v1";
/// Domain of the associated data binding a ciphertext to its event.
pub const BINDING_DOMAIN: &[u8] = b"healthchain/body-binding/v1";
/// Domain of a member's encryption key derived from its signing secret.
pub const MEMBER_KEY_DOMAIN: &[u8] = b"healthchain/member-encryption-key/v1";
/// HPKE `info` of a wrapped data key.
pub const WRAP_INFO: &[u8] = b"healthchain/body-key/v1";
/// Bytes of the commitment salt, carried inside the ciphertext.
pub const SALT_BYTES: usize = 32;
/// Largest body that may be sealed.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Largest ciphertext a body seals to: the salt, the largest body, and the tag.
pub const MAX_CIPHERTEXT_LEN: usize = SALT_BYTES + MAX_BODY_BYTES + TAG_BYTES;
/// Bytes of the authentication tag.
const TAG_BYTES: usize = 16;
/// Most readers a body may be sealed to.
pub const MAX_READERS: usize = 64;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("a body of {size} bytes is above the {MAX_BODY_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// More readers than [`MAX_READERS`], or none.
    #[error("a body is sealed to 1 to {MAX_READERS} readers, not {count}")]
    Readers {
        /// How many were given.
        count: usize,
    },
    /// A reader's encryption key is not a valid X25519 public key.
    #[error("the encryption key of {account} is not a valid X25519 key")]
    BadReaderKey {
        /// The reader.
        account: AccountId,
    },
    /// The ciphertext is not the one the reference names (hash, length or body id).
    #[error("the sealed body does not match its reference: {0}")]
    Mismatch(#[from] BodyMismatch),
    /// The body is not sealed to this account.
    #[error("the body is not sealed to {account}")]
    NotAReader {
        /// The account that asked.
        account: AccountId,
    },
    /// The wrapped data key does not open with this encryption key.
    #[error("the data key does not open with this encryption key")]
    WrongKey,
    /// The ciphertext does not decrypt under its event's binding: it was changed, or
    /// moved onto another event.
    #[error("the body does not decrypt for this event: changed, or moved from another event")]
    Binding,
    /// The decrypted body does not match the commitment on the chain.
    #[error("the body does not match its commitment")]
    Commitment,
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt,
}

/// A member's X25519 encryption key (secret part), zeroed when dropped.
pub struct EncryptionKey {
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.public())
    }
}

fn hpke_public(key: &EncryptionPublicKey) -> Option<<X25519HkdfSha256 as Kem>::PublicKey> {
    <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&key.to_byte_array()).ok()
}

impl EncryptionKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        Self::from_seed(&seed)
    }

    /// The key derived from 32 secret bytes (RFC 9180's `DeriveKeyPair`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let (secret, _) = X25519HkdfSha256::derive_keypair(seed);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&secret.to_bytes());
        EncryptionKey { secret: bytes }
    }

    /// The encryption key of the member who holds `signing`: an X25519 key derived
    /// from the signing secret with its own domain (`SHA-256(domain ‖ secret)`, then
    /// RFC 9180's `DeriveKeyPair`). It is a separate key: nothing signed with the
    /// ed25519 key decrypts with it or the other way round, and the member's key file
    /// holds one secret for both. A rotated key ([`EncryptionKeyRotation`]) is a
    /// fresh one instead.
    ///
    /// [`EncryptionKeyRotation`]: crate::EncryptionKeyRotation
    pub fn of_member(signing: &ledger_core::Keypair) -> Self {
        let mut secret = Zeroizing::new(signing.seed());
        let seed = Zeroizing::new(<[u8; 32]>::from(
            sha2::Sha256::new()
                .chain_update(MEMBER_KEY_DOMAIN)
                .chain_update(&secret[..])
                .finalize(),
        ));
        secret.zeroize();
        Self::from_seed(&seed)
    }

    /// This key's entry for a roster: the public part, bound to `signing`'s account.
    pub fn roster_entry(
        &self,
        signing: &ledger_core::Keypair,
    ) -> ledger_core::sealed::MemberEncryption {
        ledger_core::sealed::MemberEncryption::bind(signing, self.public())
    }

    /// The public part, for the genesis and for senders.
    pub fn public(&self) -> EncryptionPublicKey {
        let secret = self.hpke();
        let public = X25519HkdfSha256::sk_to_pk(&secret);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        EncryptionPublicKey::from_byte_array(bytes)
    }

    fn hpke(&self) -> <X25519HkdfSha256 as Kem>::PrivateKey {
        <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&self.secret[..])
            .expect("32 bytes are an X25519 secret key")
    }
}

/// The X25519 u-coordinates of small order, as 32 little-endian bytes with the top bit
/// clear: 0, 1, the two points of order 8, and p − 1, p and p + 1 (non-canonical
/// encodings of the same points). A shared secret with any of them is all zeros,
/// whatever the secret key, so HPKE refuses them (libsodium keeps the same list).
const SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Whether a body can be sealed to `key`: it is not an X25519 point of small order
/// (X25519 ignores the top bit), whose shared secret with any key is zero, which HPKE
/// refuses. A comparison with the seven small-order encodings, not a trial encapsulation: validation
/// checks every registration's key, and the tests check that the two agree.
pub fn is_usable_key(key: &EncryptionPublicKey) -> bool {
    let mut bytes = key.to_byte_array();
    bytes[31] &= 0x7f;
    !SMALL_ORDER.contains(&bytes)
}

/// Whether HPKE accepts an encapsulation to `key` (a trial, about the cost of one wrap):
/// the oracle [`is_usable_key`] is tested against.
#[cfg(test)]
fn hpke_accepts(key: &EncryptionPublicKey) -> bool {
    use rand_core::SeedableRng;
    let Some(public) = hpke_public(key) else {
        return false;
    };
    let mut rng = chacha20::ChaCha20Rng::from_seed([0; 32]);
    hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &public,
        WRAP_INFO,
        b"",
        b"",
        &mut rng,
    )
    .is_ok()
}

/// A member a body is sealed to: its signing account and its encryption key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    /// The member's signing account.
    pub account: AccountId,
    /// The member's encryption key.
    pub key: EncryptionPublicKey,
}

/// What a ciphertext is bound to: a body decrypts only for the event it was sealed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    genesis: BlockHash,
    author: AccountId,
    patient: PatientId,
    kind: EventKind,
}

impl Binding {
    /// The binding of a body of an event of `kind` about `patient`, written by `author`
    /// on the network `genesis`.
    pub fn new(genesis: BlockHash, author: AccountId, patient: PatientId, kind: EventKind) -> Self {
        Binding {
            genesis,
            author,
            patient,
            kind,
        }
    }

    /// The associated data for the body `body_id`, and for a wrap to `reader`.
    fn bytes(&self, body_id: &BodyId, reader: Option<&AccountId>) -> Vec<u8> {
        let mut out = Vec::with_capacity(BINDING_DOMAIN.len() + 32 * 4 + 16 + 1);
        out.extend_from_slice(BINDING_DOMAIN);
        out.extend_from_slice(self.genesis.hash().as_bytes());
        out.extend_from_slice(self.author.as_bytes());
        out.extend_from_slice(self.patient.uuid().as_bytes());
        out.push(self.kind.code());
        out.extend_from_slice(&body_id.to_byte_array());
        if let Some(reader) = reader {
            out.extend_from_slice(reader.as_bytes());
        }
        out
    }
}

fn commitment(salt: &[u8], body: &[u8]) -> Hash {
    Hash::of_parts(&[COMMITMENT_DOMAIN, salt, body])
}

/// Seals `body` for the event `binding` to `readers`: returns what the chain holds and
/// what the vaults keep.
pub fn seal(
    body: &[u8],
    binding: &Binding,
    readers: &[Reader],
    rng: &mut impl CryptoRng,
) -> Result<(SealedRef, SealedBody), SealError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SealError::TooLarge { size: body.len() });
    }
    if readers.is_empty() || readers.len() > MAX_READERS {
        return Err(SealError::Readers {
            count: readers.len(),
        });
    }
    seal_unchecked(body, binding, readers, rng)
}

/// Seals `body` for the event `binding` to no one: the data key is dropped, so no one
/// can ever open it. For synthetic chains (benchmarks, `healthchain generate`), whose
/// events need real references of realistic size and no readers.
pub fn seal_to_no_one(
    body: &[u8],
    binding: &Binding,
    rng: &mut impl CryptoRng,
) -> Result<SealedRef, SealError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SealError::TooLarge { size: body.len() });
    }
    seal_unchecked(body, binding, &[], rng).map(|(reference, _)| reference)
}

fn seal_unchecked(
    body: &[u8],
    binding: &Binding,
    readers: &[Reader],
    rng: &mut impl CryptoRng,
) -> Result<(SealedRef, SealedBody), SealError> {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let body_id = BodyId::from_byte_array(id);
    let mut data_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut data_key[..]);
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut plaintext = Zeroizing::new(vec![0u8; SALT_BYTES + body.len()]);
    rng.fill_bytes(&mut plaintext[..SALT_BYTES]);
    plaintext[SALT_BYTES..].copy_from_slice(body);
    let commitment = commitment(&plaintext[..SALT_BYTES], body);
    let aad = binding.bytes(&body_id, None);
    let ciphertext = XChaCha20Poly1305::new(&(*data_key).into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Encrypt)?;
    let mut wraps = Vec::with_capacity(readers.len());
    for reader in readers {
        let key = hpke_public(&reader.key).ok_or(SealError::BadReaderKey {
            account: reader.account,
        })?;
        let aad = binding.bytes(&body_id, Some(&reader.account));
        let (encapped, wrapped_key) = hpke::single_shot_seal_with_rng::<
            ChaCha20Poly1305,
            HkdfSha256,
            X25519HkdfSha256,
        >(
            &OpModeS::Base, &key, WRAP_INFO, &data_key[..], &aad, rng
        )
        .map_err(|_| SealError::Encrypt)?;
        let mut encapped_bytes = [0u8; 32];
        encapped_bytes.copy_from_slice(&encapped.to_bytes());
        wraps.push(Wrap {
            reader: reader.account,
            encapped: encapped_bytes,
            wrapped_key,
        });
    }
    let reference = SealedRef {
        body_id,
        commitment,
        ciphertext_hash: Hash::of(&ciphertext),
        ciphertext_len: u32::try_from(ciphertext.len())
            .map_err(|_| SealError::TooLarge { size: body.len() })?,
    };
    Ok((
        reference,
        SealedBody {
            body_id,
            nonce,
            ciphertext,
            wraps,
        },
    ))
}

/// Opening a [`SealedBody`] with a reader's key.
pub trait OpenSealed {
    /// Opens the body as `reader` with its encryption key `key`, for the event
    /// `binding`, checking it against `reference`. The plaintext is zeroed when dropped.
    fn open(
        &self,
        reference: &SealedRef,
        binding: &Binding,
        reader: &AccountId,
        key: &EncryptionKey,
    ) -> Result<Zeroizing<Vec<u8>>, SealError>;
}

/// The data key of `body`, unwrapped by `reader` with `key` for the event `binding`.
fn data_key(
    body: &SealedBody,
    binding: &Binding,
    reader: &AccountId,
    key: &EncryptionKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let wrap = body
        .wraps
        .iter()
        .find(|w| w.reader == *reader)
        .ok_or(SealError::NotAReader { account: *reader })?;
    let encapped = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrap.encapped)
        .map_err(|_| SealError::WrongKey)?;
    let aad = binding.bytes(&body.body_id, Some(reader));
    let data_key = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &key.hpke(),
            &encapped,
            WRAP_INFO,
            &wrap.wrapped_key,
            &aad,
        )
        .map_err(|_| SealError::WrongKey)?,
    );
    let Ok(key_bytes) = <[u8; 32]>::try_from(&data_key[..]) else {
        return Err(SealError::WrongKey);
    };
    Ok(Zeroizing::new(key_bytes))
}

/// `body` with its data key wrapped to `reader` as well, by `holder`, a reader who opens
/// it with `key`: how a node gives a body it holds to a reader it was not sealed to
/// (one consent now lets read, a break-glass read). The ciphertext, and so the chain's
/// reference, is unchanged; the data key must open the ciphertext for `binding`, or
/// nothing is wrapped. A body already sealed to `reader` comes back as it is.
pub fn rewrap(
    body: &SealedBody,
    binding: &Binding,
    holder: &AccountId,
    key: &EncryptionKey,
    reader: &Reader,
    rng: &mut impl CryptoRng,
) -> Result<SealedBody, SealError> {
    if body.is_sealed_to(&reader.account) {
        return Ok(body.clone());
    }
    if body.wraps.len() >= MAX_READERS {
        return Err(SealError::Readers {
            count: body.wraps.len() + 1,
        });
    }
    let data_key = data_key(body, binding, holder, key)?;
    XChaCha20Poly1305::new(&(*data_key).into())
        .decrypt(
            &XNonce::from(body.nonce),
            Payload {
                msg: &body.ciphertext,
                aad: &binding.bytes(&body.body_id, None),
            },
        )
        .map_err(|_| SealError::Binding)?
        .zeroize();
    let public = hpke_public(&reader.key).ok_or(SealError::BadReaderKey {
        account: reader.account,
    })?;
    let aad = binding.bytes(&body.body_id, Some(&reader.account));
    let (encapped, wrapped_key) = hpke::single_shot_seal_with_rng::<
        ChaCha20Poly1305,
        HkdfSha256,
        X25519HkdfSha256,
    >(
        &OpModeS::Base, &public, WRAP_INFO, &data_key[..], &aad, rng
    )
    .map_err(|_| SealError::Encrypt)?;
    let mut encapped_bytes = [0u8; 32];
    encapped_bytes.copy_from_slice(&encapped.to_bytes());
    let mut rewrapped = body.clone();
    rewrapped.wraps.push(Wrap {
        reader: reader.account,
        encapped: encapped_bytes,
        wrapped_key,
    });
    Ok(rewrapped)
}

impl OpenSealed for SealedBody {
    fn open(
        &self,
        reference: &SealedRef,
        binding: &Binding,
        reader: &AccountId,
        key: &EncryptionKey,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.check(reference)?;
        let mut key_bytes = data_key(self, binding, reader, key)?;
        let aad = binding.bytes(&self.body_id, None);
        let plaintext = Zeroizing::new(
            XChaCha20Poly1305::new(&(*key_bytes).into())
                .decrypt(
                    &XNonce::from(self.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| SealError::Binding)?,
        );
        key_bytes.zeroize();
        if plaintext.len() < SALT_BYTES {
            return Err(SealError::Commitment);
        }
        let (salt, body) = plaintext.split_at(SALT_BYTES);
        if commitment(salt, body) != reference.commitment {
            return Err(SealError::Commitment);
        }
        Ok(Zeroizing::new(body.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Keypair;
    use rand_core::SeedableRng;

    fn rng(seed: u8) -> chacha20::ChaCha20Rng {
        chacha20::ChaCha20Rng::from_seed([seed; 32])
    }

    struct Member {
        account: AccountId,
        key: EncryptionKey,
    }

    impl Member {
        fn new(seed: u8) -> Member {
            Member {
                account: Keypair::from_seed([seed; 32]).account(),
                key: EncryptionKey::from_seed(&[seed.wrapping_add(100); 32]),
            }
        }

        fn reader(&self) -> Reader {
            Reader {
                account: self.account,
                key: self.key.public(),
            }
        }
    }

    fn binding(patient: u8, kind: EventKind) -> Binding {
        Binding::new(
            BlockHash::from_byte_array([9; 32]),
            Keypair::from_seed([1; 32]).account(),
            PatientId::from_random_bytes([patient; 16]),
            kind,
        )
    }

    const NOTES: &[u8] = b"Persistent fatigue, pale; order a full blood count";

    #[test]
    fn the_small_order_list_refuses_exactly_what_hpke_refuses() {
        for point in SMALL_ORDER {
            for top in [0x00, 0x80] {
                let mut bytes = point;
                bytes[31] |= top;
                let key = EncryptionPublicKey::from_byte_array(bytes);
                assert!(!hpke_accepts(&key), "{key} is of small order");
                assert!(!is_usable_key(&key));
            }
        }
        for seed in 0..64u8 {
            let key = EncryptionKey::from_seed(&[seed; 32]).public();
            assert!(hpke_accepts(&key) && is_usable_key(&key));
            let mut bytes = Hash::of(&[seed]).to_byte_array();
            bytes[0] ^= seed;
            let any = EncryptionPublicKey::from_byte_array(bytes);
            assert_eq!(is_usable_key(&any), hpke_accepts(&any), "{any}");
        }
    }

    #[test]
    fn a_reader_rewraps_a_body_to_one_more_reader_and_only_a_reader_can() {
        let (doctor, lab, pharmacy) = (Member::new(1), Member::new(2), Member::new(3));
        let event = binding(7, EventKind::LabTestResult);
        let (reference, sealed) = seal(NOTES, &event, &[lab.reader()], &mut rng(1)).expect("seals");
        assert!(
            sealed
                .open(&reference, &event, &doctor.account, &doctor.key)
                .is_err()
        );
        let rewrapped = rewrap(
            &sealed,
            &event,
            &lab.account,
            &lab.key,
            &doctor.reader(),
            &mut rng(2),
        )
        .expect("the lab holds the body");
        // The same ciphertext: the chain's reference still names it.
        rewrapped
            .check(&reference)
            .expect("still the body the chain names");
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        let opened = rewrapped
            .open(&reference, &event, &doctor.account, &doctor.key)
            .expect("the doctor opens it now");
        assert_eq!(&opened[..], NOTES);
        assert!(
            rewrapped
                .open(&reference, &event, &pharmacy.account, &pharmacy.key)
                .is_err()
        );
        // Again for the same reader: nothing added.
        let again = rewrap(
            &rewrapped,
            &event,
            &lab.account,
            &lab.key,
            &doctor.reader(),
            &mut rng(3),
        )
        .expect("already a reader");
        assert_eq!(again, rewrapped);
        // Not by someone the body is not sealed to, nor for another event.
        assert_eq!(
            rewrap(
                &sealed,
                &event,
                &pharmacy.account,
                &pharmacy.key,
                &doctor.reader(),
                &mut rng(4)
            ),
            Err(SealError::NotAReader {
                account: pharmacy.account
            })
        );
        let other = binding(8, EventKind::LabTestResult);
        assert!(
            rewrap(
                &sealed,
                &other,
                &lab.account,
                &lab.key,
                &doctor.reader(),
                &mut rng(5)
            )
            .is_err()
        );
    }

    #[test]
    fn a_reader_opens_what_was_sealed_to_it_and_no_one_else_does() {
        let (doctor, lab, pharmacy) = (Member::new(1), Member::new(2), Member::new(3));
        let event = binding(7, EventKind::DoctorConsultation);
        let (reference, sealed) =
            seal(NOTES, &event, &[doctor.reader(), lab.reader()], &mut rng(1)).expect("seals");
        sealed.check(&reference).expect("matches its reference");
        for reader in [&doctor, &lab] {
            let body = sealed
                .open(&reference, &event, &reader.account, &reader.key)
                .expect("a reader opens it");
            assert_eq!(&body[..], NOTES);
        }
        assert!(!sealed.is_sealed_to(&pharmacy.account));
        assert_eq!(
            sealed.open(&reference, &event, &pharmacy.account, &pharmacy.key),
            Err(SealError::NotAReader {
                account: pharmacy.account
            })
        );
        // The clear text is nowhere in what is kept or published.
        let kept = format!("{reference:?}{sealed:?}");
        assert!(!kept.contains("fatigue"));
        let window = NOTES.len().min(12);
        assert!(
            !sealed
                .ciphertext
                .windows(window)
                .any(|w| w == &NOTES[..window])
        );
    }

    #[test]
    fn equal_bodies_give_unrelated_commitments_and_ciphertexts() {
        let lab = Member::new(2);
        let event = binding(7, EventKind::LabTestResult);
        let (a, sealed_a) = seal(NOTES, &event, &[lab.reader()], &mut rng(1)).expect("seals");
        let (b, sealed_b) = seal(NOTES, &event, &[lab.reader()], &mut rng(2)).expect("seals");
        assert_ne!(a.commitment, b.commitment);
        assert_ne!(a.ciphertext_hash, b.ciphertext_hash);
        assert_ne!(sealed_a.ciphertext, sealed_b.ciphertext);
        // Nor does a commitment equal the plain hash of the body.
        assert_ne!(a.commitment, Hash::of(NOTES));
    }

    #[test]
    fn a_changed_ciphertext_salt_or_body_is_refused() {
        let lab = Member::new(2);
        let event = binding(7, EventKind::LabTestResult);
        let (reference, sealed) = seal(NOTES, &event, &[lab.reader()], &mut rng(1)).expect("seals");
        // One flipped ciphertext bit: the reference catches it before any key is used.
        let mut changed = sealed.clone();
        changed.ciphertext[40] ^= 1;
        assert_eq!(changed.check(&reference), Err(BodyMismatch::CiphertextHash));
        let mut shorter = sealed.clone();
        shorter.ciphertext.pop();
        assert_eq!(shorter.check(&reference), Err(BodyMismatch::Length));
        // A forger who also rewrites the reference's hash still fails the AEAD: a
        // changed salt (the first bytes) or a changed body.
        for at in [0, SALT_BYTES + 3] {
            let mut forged = sealed.clone();
            forged.ciphertext[at] ^= 1;
            let forged_ref = SealedRef {
                ciphertext_hash: Hash::of(&forged.ciphertext),
                ..reference
            };
            assert_eq!(
                forged.open(&forged_ref, &event, &lab.account, &lab.key),
                Err(SealError::Binding)
            );
        }
        // A reference whose commitment names another body is refused after opening.
        let other = SealedRef {
            commitment: commitment(&[0; SALT_BYTES], NOTES),
            ..reference
        };
        assert_eq!(
            sealed.open(&other, &event, &lab.account, &lab.key),
            Err(SealError::Commitment)
        );
        let moved_id = SealedRef {
            body_id: BodyId::from_byte_array([0; 16]),
            ..reference
        };
        assert_eq!(sealed.check(&moved_id), Err(BodyMismatch::BodyId));
    }

    #[test]
    fn the_wrong_key_fails() {
        let (lab, intruder) = (Member::new(2), Member::new(4));
        let event = binding(7, EventKind::LabTestResult);
        let (reference, sealed) = seal(NOTES, &event, &[lab.reader()], &mut rng(1)).expect("seals");
        // The lab's wrap, opened with another key.
        assert_eq!(
            sealed.open(&reference, &event, &lab.account, &intruder.key),
            Err(SealError::WrongKey)
        );
        // A wrap relabelled for the intruder does not open with its key either: the
        // wrap is bound to its reader.
        let mut relabelled = sealed.clone();
        relabelled.wraps[0].reader = intruder.account;
        assert_eq!(
            relabelled.open(&reference, &event, &intruder.account, &intruder.key),
            Err(SealError::WrongKey)
        );
        // A changed wrapped key fails as well.
        let mut damaged = sealed.clone();
        damaged.wraps[0].wrapped_key[0] ^= 1;
        assert_eq!(
            damaged.open(&reference, &event, &lab.account, &lab.key),
            Err(SealError::WrongKey)
        );
    }

    #[test]
    fn a_ciphertext_moved_onto_another_event_fails_its_binding() {
        let lab = Member::new(2);
        let event = binding(7, EventKind::LabTestResult);
        let (reference, sealed) = seal(NOTES, &event, &[lab.reader()], &mut rng(1)).expect("seals");
        let elsewhere = [
            binding(8, EventKind::LabTestResult),
            binding(7, EventKind::DoctorConsultation),
            Binding::new(
                BlockHash::from_byte_array([8; 32]),
                event.author,
                event.patient,
                event.kind,
            ),
            Binding::new(
                event.genesis,
                Keypair::from_seed([5; 32]).account(),
                event.patient,
                event.kind,
            ),
        ];
        for other in elsewhere {
            // The wrap is bound too, so the data key does not even come out.
            assert_eq!(
                sealed.open(&reference, &other, &lab.account, &lab.key),
                Err(SealError::WrongKey),
                "{other:?}"
            );
        }
    }

    #[test]
    fn limits_and_bad_keys_are_refused() {
        let lab = Member::new(2);
        let event = binding(7, EventKind::LabTestResult);
        let big = vec![b'x'; MAX_BODY_BYTES + 1];
        assert_eq!(
            seal(&big, &event, &[lab.reader()], &mut rng(1)).map(|_| ()),
            Err(SealError::TooLarge { size: big.len() })
        );
        assert_eq!(
            seal(NOTES, &event, &[], &mut rng(1)).map(|_| ()),
            Err(SealError::Readers { count: 0 })
        );
        let many = vec![lab.reader(); MAX_READERS + 1];
        assert_eq!(
            seal(NOTES, &event, &many, &mut rng(1)).map(|_| ()),
            Err(SealError::Readers {
                count: MAX_READERS + 1
            })
        );
        // An empty body seals and opens.
        let (reference, sealed) = seal(b"", &event, &[lab.reader()], &mut rng(3)).expect("seals");
        let opened = sealed
            .open(&reference, &event, &lab.account, &lab.key)
            .expect("opens");
        assert!(opened.is_empty());
    }

    #[test]
    fn encryption_keys_are_apart_from_signing_keys_and_stable_from_a_seed() {
        let a = EncryptionKey::from_seed(&[5; 32]);
        let b = EncryptionKey::from_seed(&[5; 32]);
        assert_eq!(a.public(), b.public());
        assert_ne!(
            a.public().to_byte_array(),
            *Keypair::from_seed([5; 32]).account().as_bytes()
        );
        let generated = EncryptionKey::generate(&mut rng(9));
        assert_ne!(generated.public(), a.public());
        assert!(format!("{a:?}").starts_with("EncryptionKey("));
    }

    proptest::proptest! {
        /// Any body to any subset of readers: every reader gets it back exactly, every
        /// other member is refused.
        #[test]
        fn sealing_round_trips_for_readers_only(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            readers in proptest::collection::btree_set(0u8..6, 1..6),
            seed in proptest::num::u8::ANY,
        ) {
            let members: Vec<Member> = (0..6).map(|i| Member::new(i + 10)).collect();
            let chosen: Vec<Reader> = readers.iter().map(|&i| members[i as usize].reader()).collect();
            let event = binding(seed, EventKind::Prescription);
            let (reference, sealed) = seal(&body, &event, &chosen, &mut rng(seed)).expect("seals");
            for (i, member) in members.iter().enumerate() {
                let opened = sealed.open(&reference, &event, &member.account, &member.key);
                if readers.contains(&(i as u8)) {
                    proptest::prop_assert_eq!(&opened.expect("a reader opens")[..], &body[..]);
                } else {
                    proptest::prop_assert!(opened.is_err());
                }
            }
        }
    }
}
