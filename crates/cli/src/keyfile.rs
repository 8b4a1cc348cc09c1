//! Encrypted key files: a signing key protected by a passphrase.
//!
//! Layout (version 1, 138 bytes, all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 5 | magic `HCKEY` |
//! | 1 | format version (`1`) |
//! | 4 + 4 + 4 | argon2id memory (KiB), passes, lanes |
//! | 16 | argon2 salt (random) |
//! | 24 | XChaCha20-Poly1305 nonce (random) |
//! | 32 | public key, in clear so tools can show it without the passphrase |
//! | 48 | the encrypted 32-byte secret seed and its 16-byte tag |
//!
//! The 32-byte encryption key is argon2id(passphrase, salt). Everything before the
//! ciphertext is authenticated as associated data, so a file whose header was edited
//! fails to open just like one with a wrong passphrase; after decryption the seed must
//! give the stored public key.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ledger_core::{AccountId, Keypair};
use rand::Rng;

const MAGIC: &[u8; 5] = b"HCKEY";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const SEED_LEN: usize = 32;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + 1 + 12 + SALT_LEN + NONCE_LEN + 32;
/// Size of a version-1 key file.
pub(crate) const FILE_LEN: usize = HEADER_LEN + SEED_LEN + TAG_LEN;

/// Upper bounds on the argon2 cost a file may ask for, so that a crafted file cannot make
/// opening it take gigabytes of memory or hours of work.
const MAX_MEMORY_KIB: u32 = 1 << 21;
const MAX_PASSES: u32 = 64;
const MAX_LANES: u32 = 16;

/// Why a key file cannot be written or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("cannot access key file: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the key-file magic bytes.
    #[error("not a healthchain key file")]
    NotAKeyFile,
    /// The file has a format version this program does not know.
    #[error("key file format version {0} is not supported (expected {VERSION})")]
    UnsupportedVersion(u8),
    /// The file is shorter or longer than its format says.
    #[error("key file is {found} bytes, expected {expected}: it is truncated or corrupted")]
    WrongLength {
        /// Bytes found.
        found: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The argon2 parameters are out of range.
    #[error("key file asks for unsupported key-derivation parameters")]
    BadParameters,
    /// Decryption failed: the passphrase is wrong or the file was altered.
    #[error("wrong passphrase, or the key file is corrupted")]
    Decrypt,
    /// The decrypted key does not match the public key in the file.
    #[error("key file is corrupted: the secret key does not match its public key")]
    KeyMismatch,
    /// The passphrase is empty.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
}

/// Cost of the passphrase-to-key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub passes: u32,
    /// Degree of parallelism.
    pub lanes: u32,
}

impl KdfCost {
    /// The cost used for new files: argon2's recommended defaults (19 MiB, 2 passes).
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: argon2::Params::DEFAULT_M_COST,
        passes: argon2::Params::DEFAULT_T_COST,
        lanes: argon2::Params::DEFAULT_P_COST,
    };

    fn derive(self, passphrase: &str, salt: &[u8]) -> Result<[u8; 32], KeyFileError> {
        if self.memory_kib > MAX_MEMORY_KIB || self.passes > MAX_PASSES || self.lanes > MAX_LANES {
            return Err(KeyFileError::BadParameters);
        }
        let params = argon2::Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|_| KeyFileError::BadParameters)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = [0u8; 32];
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut key)
            .map_err(|_| KeyFileError::BadParameters)?;
        Ok(key)
    }
}

/// Encrypts `keys` under `passphrase` into the bytes of a key file.
pub fn seal(keys: &Keypair, passphrase: &str, cost: KdfCost) -> Result<Vec<u8>, KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let mut rng = rand::rng();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);

    let mut out = Vec::with_capacity(FILE_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&cost.memory_kib.to_le_bytes());
    out.extend_from_slice(&cost.passes.to_le_bytes());
    out.extend_from_slice(&cost.lanes.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(keys.account().as_bytes());

    let key = cost.derive(passphrase, &salt)?;
    let cipher = XChaCha20Poly1305::new(&key.into());
    let seed = keys.seed();
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &seed,
                aad: &out,
            },
        )
        .map_err(|_| KeyFileError::Decrypt)?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The public key stored in a key file, read without the passphrase. Only the tests
/// read the header alone: the binary always opens the whole file.
#[cfg(test)]
fn public_key(bytes: &[u8]) -> Result<AccountId, KeyFileError> {
    let header = Header::parse(bytes)?;
    Ok(header.account)
}

/// Decrypts a key file's bytes with `passphrase`.
pub(crate) fn open(bytes: &[u8], passphrase: &str) -> Result<Keypair, KeyFileError> {
    let header = Header::parse(bytes)?;
    let key = header.cost.derive(passphrase, &header.salt)?;
    let cipher = XChaCha20Poly1305::new(&key.into());
    let seed = cipher
        .decrypt(
            &XNonce::from(header.nonce),
            Payload {
                msg: &bytes[HEADER_LEN..],
                aad: &bytes[..HEADER_LEN],
            },
        )
        .map_err(|_| KeyFileError::Decrypt)?;
    let seed: [u8; SEED_LEN] = seed
        .as_slice()
        .try_into()
        .map_err(|_| KeyFileError::Decrypt)?;
    let keys = Keypair::from_seed(seed);
    if keys.account() != header.account {
        return Err(KeyFileError::KeyMismatch);
    }
    Ok(keys)
}

/// Writes a new key file; refuses to overwrite an existing file.
pub(crate) fn write_new(path: &Path, keys: &Keypair, passphrase: &str) -> Result<(), KeyFileError> {
    use std::io::Write;
    let bytes = seal(keys, passphrase, KdfCost::DEFAULT)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Reads and decrypts a key file.
pub(crate) fn read(path: &Path, passphrase: &str) -> Result<Keypair, KeyFileError> {
    let bytes = std::fs::read(path)?;
    open(&bytes, passphrase)
}

struct Header {
    cost: KdfCost,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    account: AccountId,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header, KeyFileError> {
        if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(KeyFileError::NotAKeyFile);
        }
        let version = bytes[MAGIC.len()];
        if version != VERSION {
            return Err(KeyFileError::UnsupportedVersion(version));
        }
        if bytes.len() != FILE_LEN {
            return Err(KeyFileError::WrongLength {
                found: bytes.len(),
                expected: FILE_LEN,
            });
        }
        let mut at = MAGIC.len() + 1;
        let mut take = |n: usize| {
            let part = &bytes[at..at + n];
            at += n;
            part
        };
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let cost = KdfCost {
            memory_kib: word(take(4)),
            passes: word(take(4)),
            lanes: word(take(4)),
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(take(SALT_LEN));
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(take(NONCE_LEN));
        let mut account = [0u8; 32];
        account.copy_from_slice(take(32));
        Ok(Header {
            cost,
            salt,
            nonce,
            account: AccountId(account),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests run fast; the format is the same.
    const CHEAP: KdfCost = KdfCost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };

    #[test]
    fn round_trip() {
        let keys = Keypair::from_seed([4; 32]);
        let bytes = seal(&keys, "correct horse", CHEAP).expect("seals");
        assert_eq!(bytes.len(), FILE_LEN);
        assert_eq!(public_key(&bytes).expect("header"), keys.account());
        let back = open(&bytes, "correct horse").expect("opens");
        assert_eq!(back.seed(), keys.seed());
    }

    #[test]
    fn two_files_of_one_key_differ() {
        let keys = Keypair::from_seed([4; 32]);
        let a = seal(&keys, "pw", CHEAP).expect("seals");
        let b = seal(&keys, "pw", CHEAP).expect("seals");
        assert_ne!(a, b, "salt and nonce are random");
    }

    #[test]
    fn wrong_passphrase() {
        let bytes = seal(&Keypair::from_seed([4; 32]), "right", CHEAP).expect("seals");
        assert!(matches!(open(&bytes, "wrong"), Err(KeyFileError::Decrypt)));
    }

    #[test]
    fn corruption_anywhere_is_detected() {
        let bytes = seal(&Keypair::from_seed([4; 32]), "pw", CHEAP).expect("seals");
        // Every byte after the cost fields: salt, nonce, public key, ciphertext, tag.
        for i in (MAGIC.len() + 1 + 12)..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, "pw").is_err(), "flipped byte {i} went unnoticed");
        }
    }

    #[test]
    fn malformed_files() {
        let bytes = seal(&Keypair::from_seed([4; 32]), "pw", CHEAP).expect("seals");
        assert!(matches!(
            open(b"hello", "pw"),
            Err(KeyFileError::NotAKeyFile)
        ));
        assert!(matches!(
            open(&bytes[..100], "pw"),
            Err(KeyFileError::WrongLength { found: 100, .. })
        ));
        let mut future = bytes.clone();
        future[MAGIC.len()] = 9;
        assert!(matches!(
            open(&future, "pw"),
            Err(KeyFileError::UnsupportedVersion(9))
        ));
        let mut greedy = bytes.clone();
        greedy[MAGIC.len() + 1..MAGIC.len() + 5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            open(&greedy, "pw"),
            Err(KeyFileError::BadParameters)
        ));
        assert!(matches!(
            seal(&Keypair::from_seed([4; 32]), "", CHEAP),
            Err(KeyFileError::EmptyPassphrase)
        ));
    }

    #[test]
    fn write_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("k.key");
        std::fs::write(&path, b"x").expect("write");
        let err = write_new(&path, &Keypair::from_seed([1; 32]), "pw");
        assert!(matches!(err, Err(KeyFileError::Io(_))));
    }
}
