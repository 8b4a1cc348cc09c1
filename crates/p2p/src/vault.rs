//! The vault: the sealed bodies a node keeps, apart from its blocks.
//!
//! A [`SealedBody`] is kept under the hash of its ciphertext, the
//! [`SealedRef::ciphertext_hash`] the chain holds, so a body is found from its event
//! and cannot be stored under another event's name. The vault only keeps ciphertext
//! and its wraps: it never holds a key or a clear text. It lives in its own file,
//! [`VAULT_FILE`], beside `blocks.redb`: deleting it loses the bodies this node could
//! read, never the chain, which verifies and restarts without it.
//!
//! A body is checked against the reference the chain holds before it is kept
//! ([`Vault::keep`]); one that does not match is refused, typed, and nothing is
//! written.
//!
//! Beside each body the vault keeps its [`BodyLabel`] (whom it is about, and its
//! category, as the policy labels it): a node decides whom it may serve a body to from
//! the label ([`Policy::body_access`](ledger_core::Policy::body_access)), and
//! [`Vault::erase`] deletes a subject's bodies, wraps and salts (the salt travels inside
//! the ciphertext) in one durable commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledger_core::Hash;
use ledger_core::codec;
use ledger_core::sealed::{
    BodyLabel, BodyMismatch, MAX_CIPHERTEXT_BYTES, MAX_WRAPS, SealedBody, SealedRef,
};
use redb::{Database, ReadableDatabase, TableDefinition};

/// Name of the vault file inside the data directory.
pub const VAULT_FILE: &str = "vault.redb";

/// Largest encoded sealed body the vault reads back: the largest ciphertext and wraps.
pub const MAX_STORED_BODY_BYTES: usize = MAX_CIPHERTEXT_BYTES + MAX_WRAPS * 128 + 256;

const BODIES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("sealed_bodies");
/// Each body's label ([`BodyLabel::to_bytes`]).
const LABELS: TableDefinition<'_, &[u8; 32], &[u8; BodyLabel::BYTES]> =
    TableDefinition::new("body_labels");

fn label_bytes(label: &BodyLabel) -> [u8; BodyLabel::BYTES] {
    label.to_bytes()
}

fn label_of(bytes: [u8; BodyLabel::BYTES]) -> BodyLabel {
    BodyLabel::from_bytes(&bytes)
}

/// Why the vault refused a body or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The body is not the one the chain names.
    #[error("refused a sealed body: {0}")]
    Mismatch(#[from] BodyMismatch),
    /// The vault file could not be opened or created.
    #[error("cannot open vault {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the database reported.
        source: redb::Error,
    },
    /// The database failed.
    #[error("vault database: {0}")]
    Database(#[from] redb::Error),
    /// A stored body cannot be decoded or does not hash to its key.
    #[error("stored sealed body {hash} is corrupted")]
    Corrupt {
        /// The key it is stored under.
        hash: Hash,
    },
}

fn db_err(e: impl Into<redb::Error>) -> VaultError {
    VaultError::Database(e.into())
}

/// Where a node keeps sealed bodies: in memory for tests, on disk for nodes.
#[derive(Clone, Debug)]
pub struct Vault {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Memory(Arc<Mutex<HashMap<Hash, (SealedBody, BodyLabel)>>>),
    Redb { db: Arc<Database>, path: PathBuf },
}

impl Vault {
    /// An empty vault in memory.
    pub fn memory() -> Vault {
        Vault {
            inner: Inner::Memory(Arc::default()),
        }
    }

    /// Opens (or creates) the vault file [`VAULT_FILE`] in `data_dir`, which must exist.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Vault, VaultError> {
        let path = data_dir.as_ref().join(VAULT_FILE);
        let open_err = |e: redb::Error| VaultError::Open {
            path: path.clone(),
            source: e,
        };
        let db = Database::create(&path).map_err(|e| open_err(e.into()))?;
        let tx = db.begin_write().map_err(|e| open_err(e.into()))?;
        tx.open_table(BODIES).map_err(|e| open_err(e.into()))?;
        tx.open_table(LABELS).map_err(|e| open_err(e.into()))?;
        tx.commit().map_err(|e| open_err(e.into()))?;
        Ok(Vault {
            inner: Inner::Redb {
                db: Arc::new(db),
                path,
            },
        })
    }

    /// The file, for a vault on disk.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Memory(_) => None,
            Inner::Redb { path, .. } => Some(path),
        }
    }

    /// Keeps `body`, labelled `label`, if it is the one `reference` names
    /// ([`SealedBody::check`]); durable when it returns. Keeping a body already kept
    /// changes nothing.
    pub fn keep(
        &self,
        reference: &SealedRef,
        label: BodyLabel,
        body: &SealedBody,
    ) -> Result<(), VaultError> {
        self.keep_all(&[(*reference, label, body.clone())])
    }

    /// Keeps every body with its label if each is the one its reference names, in one
    /// durable commit: what a busy node does with the bodies that arrived together. If
    /// one does not match, none is kept.
    pub fn keep_all(
        &self,
        bodies: &[(SealedRef, BodyLabel, SealedBody)],
    ) -> Result<(), VaultError> {
        for (reference, _, body) in bodies {
            body.check(reference)?;
        }
        match &self.inner {
            Inner::Memory(map) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (reference, label, body) in bodies {
                    map.insert(reference.ciphertext_hash, (body.clone(), *label));
                }
            }
            Inner::Redb { db, .. } => {
                let tx = db.begin_write().map_err(db_err)?;
                {
                    let mut table = tx.open_table(BODIES).map_err(db_err)?;
                    let mut labels = tx.open_table(LABELS).map_err(db_err)?;
                    for (reference, label, body) in bodies {
                        let key = reference.ciphertext_hash.to_byte_array();
                        table
                            .insert(&key, codec::encode(body).as_slice())
                            .map_err(db_err)?;
                        labels.insert(&key, &label_bytes(label)).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)?;
            }
        }
        Ok(())
    }

    /// Deletes the bodies with these ciphertext hashes and their labels, in one durable
    /// commit; returns how many were kept here.
    pub fn erase(&self, hashes: &[Hash]) -> Result<usize, VaultError> {
        match &self.inner {
            Inner::Memory(map) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(hashes.iter().filter(|h| map.remove(h).is_some()).count())
            }
            Inner::Redb { db, .. } => {
                let tx = db.begin_write().map_err(db_err)?;
                let mut erased = 0;
                {
                    let mut table = tx.open_table(BODIES).map_err(db_err)?;
                    let mut labels = tx.open_table(LABELS).map_err(db_err)?;
                    for hash in hashes {
                        let key = hash.to_byte_array();
                        if table.remove(&key).map_err(db_err)?.is_some() {
                            erased += 1;
                        }
                        labels.remove(&key).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)?;
                Ok(erased)
            }
        }
    }

    /// The body whose ciphertext hash is `ciphertext_hash`, with its label (the empty
    /// label for a body kept without one), if kept.
    pub fn get_labelled(
        &self,
        ciphertext_hash: &Hash,
    ) -> Result<Option<(SealedBody, BodyLabel)>, VaultError> {
        match &self.inner {
            Inner::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(ciphertext_hash)
                .cloned()),
            Inner::Redb { db, .. } => {
                let Some(body) = self.get(ciphertext_hash)? else {
                    return Ok(None);
                };
                let tx = db.begin_read().map_err(db_err)?;
                let labels = tx.open_table(LABELS).map_err(db_err)?;
                let label = labels
                    .get(&ciphertext_hash.to_byte_array())
                    .map_err(db_err)?
                    .map(|bytes| label_of(*bytes.value()))
                    .unwrap_or_default();
                Ok(Some((body, label)))
            }
        }
    }

    /// The body whose ciphertext hashes to `ciphertext_hash`, if kept.
    pub fn get(&self, ciphertext_hash: &Hash) -> Result<Option<SealedBody>, VaultError> {
        match &self.inner {
            Inner::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(ciphertext_hash)
                .map(|(body, _)| body.clone())),
            Inner::Redb { db, .. } => {
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(BODIES).map_err(db_err)?;
                let Some(bytes) = table
                    .get(&ciphertext_hash.to_byte_array())
                    .map_err(db_err)?
                else {
                    return Ok(None);
                };
                let body: SealedBody = codec::decode(bytes.value(), MAX_STORED_BODY_BYTES)
                    .map_err(|_| VaultError::Corrupt {
                        hash: *ciphertext_hash,
                    })?;
                if Hash::of(&body.ciphertext) != *ciphertext_hash {
                    return Err(VaultError::Corrupt {
                        hash: *ciphertext_hash,
                    });
                }
                Ok(Some(body))
            }
        }
    }

    /// Whether a body with this ciphertext hash is kept.
    pub fn contains(&self, ciphertext_hash: &Hash) -> Result<bool, VaultError> {
        Ok(self.get(ciphertext_hash)?.is_some())
    }

    /// How many bodies are kept.
    pub fn len(&self) -> Result<usize, VaultError> {
        match &self.inner {
            Inner::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()),
            Inner::Redb { db, .. } => {
                use redb::ReadableTableMetadata;
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(BODIES).map_err(db_err)?;
                let len = table.len().map_err(db_err)?;
                Ok(usize::try_from(len).unwrap_or(usize::MAX))
            }
        }
    }

    /// Whether the vault is empty.
    pub fn is_empty(&self) -> Result<bool, VaultError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::AccountId;
    use ledger_core::sealed::{BodyId, Wrap};

    use super::*;

    fn label(n: u8) -> BodyLabel {
        BodyLabel {
            subject: [n; 16],
            category: n % 4,
            author: AccountId([n.wrapping_add(1); 32]),
            kind: n % 3,
        }
    }

    fn body(n: u8) -> (SealedRef, SealedBody) {
        let body = SealedBody {
            body_id: BodyId::from_byte_array([n; 16]),
            nonce: [n; 24],
            ciphertext: vec![n; 100],
            wraps: vec![Wrap {
                reader: AccountId([n; 32]),
                encapped: [1; 32],
                wrapped_key: vec![2; 48],
            }],
        };
        let reference = SealedRef {
            body_id: body.body_id,
            commitment: Hash::of(&[n]),
            ciphertext_hash: Hash::of(&body.ciphertext),
            ciphertext_len: 100,
        };
        (reference, body)
    }

    fn keeps_only_matching_bodies(vault: &Vault) {
        let (reference, sealed) = body(1);
        assert!(vault.is_empty().expect("readable"));
        vault.keep(&reference, label(1), &sealed).expect("kept");
        assert_eq!(
            vault.get(&reference.ciphertext_hash).expect("readable"),
            Some(sealed.clone())
        );
        let (other, _) = body(2);
        assert!(matches!(
            vault.keep(&other, label(1), &sealed),
            Err(VaultError::Mismatch(BodyMismatch::BodyId))
        ));
        let mut changed = sealed.clone();
        changed.ciphertext[0] ^= 1;
        assert!(matches!(
            vault.keep(&reference, label(1), &changed),
            Err(VaultError::Mismatch(BodyMismatch::CiphertextHash))
        ));
        assert_eq!(vault.len().expect("readable"), 1);
        assert!(!vault.contains(&other.ciphertext_hash).expect("readable"));
        // Keeping it again is harmless.
        vault
            .keep(&reference, label(1), &sealed)
            .expect("kept again");
        assert_eq!(vault.len().expect("readable"), 1);
        // Several at once: all, or none if one does not match.
        let (second, third) = (body(3), body(4));
        let mismatched = (third.0, label(4), second.1.clone());
        let second = (second.0, label(3), second.1);
        let third = (third.0, label(4), third.1);
        assert!(vault.keep_all(&[second.clone(), mismatched]).is_err());
        assert!(!vault.contains(&second.0.ciphertext_hash).expect("readable"));
        vault
            .keep_all(&[second.clone(), third.clone()])
            .expect("kept");
        assert_eq!(vault.len().expect("readable"), 3);
        assert_eq!(
            vault
                .get_labelled(&third.0.ciphertext_hash)
                .expect("readable"),
            Some((third.2.clone(), label(4)))
        );
        // Erasing deletes exactly the bodies named (and their labels), once.
        let gone = [second.0.ciphertext_hash, Hash::of(b"never kept")];
        assert_eq!(vault.erase(&gone).expect("erased"), 1);
        assert_eq!(vault.erase(&gone).expect("erased"), 0);
        assert!(!vault.contains(&second.0.ciphertext_hash).expect("readable"));
        assert_eq!(vault.len().expect("readable"), 2);
        // Kept again, it takes its new label.
        vault
            .keep(&second.0, label(9), &second.2)
            .expect("kept again");
        assert_eq!(
            vault
                .get_labelled(&second.0.ciphertext_hash)
                .expect("readable"),
            Some((second.2, label(9)))
        );
    }

    #[test]
    fn a_memory_vault_keeps_only_bodies_that_match_the_chain() {
        keeps_only_matching_bodies(&Vault::memory());
    }

    #[test]
    fn a_vault_on_disk_keeps_bodies_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = Vault::open(dir.path()).expect("opens");
        keeps_only_matching_bodies(&vault);
        drop(vault);
        let vault = Vault::open(dir.path()).expect("reopens");
        let (reference, sealed) = body(1);
        assert_eq!(
            vault
                .get_labelled(&reference.ciphertext_hash)
                .expect("readable"),
            Some((sealed, label(1)))
        );
        assert_eq!(vault.path(), Some(dir.path().join(VAULT_FILE).as_path()));
    }
}
