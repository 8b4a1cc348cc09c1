//! Durable block storage: the [`BlockStore`] trait, a redb implementation in the
//! node's data directory and an in-memory one for tests.
//!
//! A store extends the ledger's read-only [`BodySource`] with what the runtime needs
//! around the ledger: a [`BlockWriter`] that makes blocks durable from the node's
//! writer thread, a [`BlockReader`] for serving blocks from another thread, and the
//! stored blocks in height order, so that a restart hands them back to the ledger
//! parent first. The ledger itself never writes (see `crate::persist`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_core::{Block, BlockHash, BodySource, Height, codec};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database file could not be opened or created (unwritable or read-only
    /// directory, a file that is not a block database, or a database another process
    /// holds open).
    #[error("cannot open block database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the database reported.
        source: redb::Error,
    },
    /// The database failed.
    #[error("block database: {0}")]
    Database(#[from] redb::Error),
    /// The store was closed.
    #[error("the block store is closed")]
    Closed,
    /// A stored block cannot be decoded or does not hash to its key.
    #[error("stored block {hash} is corrupted: {reason}")]
    Corrupt {
        /// The key it is stored under.
        hash: BlockHash,
        /// What is wrong.
        reason: String,
    },
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into())
}

/// A block store a node can run on and restart from.
pub trait BlockStore<T>: BodySource<T, Error = StoreError> + Send + 'static {
    /// Hashes of every stored block by increasing height (so every block comes after
    /// its parent), with the height each was stored at.
    fn stored(&self) -> Result<Vec<(Height, BlockHash)>, StoreError>;

    /// A handle that writes blocks from another thread (the node's writer thread)
    /// while the store itself is read by the ledger.
    fn writer(&self) -> Result<Box<dyn BlockWriter<T>>, StoreError>;

    /// Makes everything written durable and releases the store, for a caller that
    /// owns it and wants it released before dropping it; later calls fail with
    /// [`StoreError::Closed`]. Dropping a store does the same, which is how a node
    /// closes its store on shutdown (it drops its ledger).
    fn close(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A handle that reads the same blocks from another thread while the store itself
    /// is in use (a restart reads and hashes blocks ahead while the ledger applies
    /// earlier ones, and the node serves `GetBlocks` from one), or `None` if this
    /// store has none: callers then read through the store itself.
    fn reader(&self) -> Option<Box<dyn BlockReader<T>>> {
        None
    }
}

/// Writes blocks into a [`BlockStore`] from another thread: see [`BlockStore::writer`].
pub trait BlockWriter<T>: Send {
    /// Writes `blocks` (each under its hash, at its height) in one commit, durable when
    /// this returns `Ok`. On `Err` none of them may be counted on: a node stops.
    fn write(&mut self, blocks: &[Arc<Block<T>>]) -> Result<(), StoreError>;
}

/// Reads blocks of a [`BlockStore`] from another thread: see [`BlockStore::reader`].
pub trait BlockReader<T>: Send {
    /// Reads a block, or `None` if the store does not have it; a block that does not
    /// decode or hash to its key is [`StoreError::Corrupt`].
    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<T>>>, StoreError>;
}

impl<T: Send + Sync + 'static> BlockReader<T> for MemoryStore<T> {
    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<T>>>, StoreError> {
        Ok(self.lock().blocks.get(hash).cloned())
    }
}

/// Blocks kept in memory: for tests and nodes that need no persistence.
///
/// Clones share the same blocks, so a test can "restart" a node on the same store.
#[derive(Debug, Clone)]
pub struct MemoryStore<T> {
    inner: Arc<std::sync::Mutex<MemoryInner<T>>>,
}

#[derive(Debug)]
struct MemoryInner<T> {
    blocks: HashMap<BlockHash, Arc<Block<T>>>,
    order: BTreeSet<(Height, BlockHash)>,
}

impl<T> Default for MemoryStore<T> {
    fn default() -> Self {
        MemoryStore {
            inner: Arc::new(std::sync::Mutex::new(MemoryInner {
                blocks: HashMap::new(),
                order: BTreeSet::new(),
            })),
        }
    }
}

impl<T> MemoryStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner<T>> {
        // A panic while holding the lock cannot leave the maps inconsistent (each
        // update is one insert per map), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.lock().blocks.len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: serde::Serialize> MemoryStore<T> {
    /// Stores a block under its hash.
    pub fn put(&self, block: &Arc<Block<T>>) {
        let mut inner = self.lock();
        let hash = block.hash();
        inner.order.insert((block.header.height, hash));
        inner.blocks.insert(hash, Arc::clone(block));
    }
}

impl<T: serde::Serialize + Send + Sync + 'static> BlockWriter<T> for MemoryStore<T> {
    fn write(&mut self, blocks: &[Arc<Block<T>>]) -> Result<(), StoreError> {
        for block in blocks {
            self.put(block);
        }
        Ok(())
    }
}

impl<T> BodySource<T> for MemoryStore<T> {
    type Error = StoreError;

    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<T>>>, StoreError> {
        Ok(self.lock().blocks.get(hash).cloned())
    }
}

impl<T: serde::Serialize + Send + Sync + 'static> BlockStore<T> for MemoryStore<T> {
    fn stored(&self) -> Result<Vec<(Height, BlockHash)>, StoreError> {
        Ok(self.lock().order.iter().copied().collect())
    }

    fn writer(&self) -> Result<Box<dyn BlockWriter<T>>, StoreError> {
        Ok(Box::new(MemoryStore {
            inner: Arc::clone(&self.inner),
        }))
    }

    fn reader(&self) -> Option<Box<dyn BlockReader<T>>> {
        Some(Box::new(MemoryStore {
            inner: Arc::clone(&self.inner),
        }))
    }
}

/// Block bodies by hash.
const BLOCKS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// Height (big-endian, so keys sort by height) followed by the hash, for reloading.
const BY_HEIGHT: TableDefinition<'_, &[u8; 40], ()> = TableDefinition::new("blocks_by_height");

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "blocks.redb";

/// Blocks in a redb database in the node's data directory: each write is one
/// committed (fsynced) write transaction, so its blocks are durable when it returns,
/// and a crash at any point leaves the last committed state. The node's writer thread
/// writes a group of blocks per transaction ([`BlockStore::writer`]), so a sync batch
/// or a burst of gossip costs one commit and one fsync.
pub struct RedbStore<T> {
    /// Shared with the [`BlockReader`]s and [`BlockWriter`]s handed out, which keep
    /// the file open while they live.
    db: Option<Arc<Database>>,
    path: PathBuf,
    _payload: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RedbStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<T> RedbStore<T> {
    /// Opens (or creates) the store in `data_dir`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::CreateDir`] if the directory cannot be created and
    /// [`StoreError::Open`] (naming the file) if the database cannot be opened for
    /// writing: a node never runs on a store it cannot commit blocks to.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, crate::limits::STORE_CACHE_BYTES)
    }

    /// [`RedbStore::open`] with a page cache of `cache_bytes` rather than
    /// [`STORE_CACHE_BYTES`](crate::limits::STORE_CACHE_BYTES): for a tool that reads
    /// the store once from end to end ([`SCAN_CACHE_BYTES`](crate::limits::SCAN_CACHE_BYTES)
    /// is enough there), where a large cache only adds to its memory.
    pub fn open_with_cache(
        data_dir: impl AsRef<Path>,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let open_err = |e: redb::Error| StoreError::Open {
            path: path.clone(),
            source: e,
        };
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| open_err(e.into()))?;
        // Creating the tables is a first commit: it fails here, not at the first block,
        // if the file cannot be written.
        let tx = db.begin_write().map_err(|e| open_err(e.into()))?;
        tx.open_table(BLOCKS).map_err(|e| open_err(e.into()))?;
        tx.open_table(BY_HEIGHT).map_err(|e| open_err(e.into()))?;
        tx.commit().map_err(|e| open_err(e.into()))?;
        Ok(RedbStore {
            db: Some(Arc::new(db)),
            path,
            _payload: std::marker::PhantomData,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_deref().ok_or(StoreError::Closed)
    }

    /// Writes one block, durable when it returns (for tools and tests; a node writes
    /// through its [`BlockWriter`]).
    pub fn put(&self, block: &Arc<Block<T>>) -> Result<(), StoreError>
    where
        T: Serialize,
    {
        write_blocks(self.db()?, std::slice::from_ref(block))
    }
}

/// Writes `blocks` in one committed write transaction.
fn write_blocks<T: Serialize>(db: &Database, blocks: &[Arc<Block<T>>]) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(db_err)?;
    for block in blocks {
        let bytes = codec::encode(&**block);
        insert_block(&tx, &block.hash(), block.header.height, &bytes)?;
    }
    tx.commit().map_err(db_err)
}

/// Writes `block` (encoded as `bytes`) into the tables of `tx`.
fn insert_block(
    tx: &WriteTransaction,
    hash: &BlockHash,
    height: Height,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut blocks = tx.open_table(BLOCKS).map_err(db_err)?;
    blocks
        .insert(hash.hash().as_bytes(), bytes)
        .map_err(db_err)?;
    let mut by_height = tx.open_table(BY_HEIGHT).map_err(db_err)?;
    by_height
        .insert(&height_key(height, hash), ())
        .map_err(db_err)?;
    Ok(())
}

/// Reads and checks the block stored under `hash` in `blocks`.
fn read_block<T: Serialize + DeserializeOwned>(
    blocks: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    hash: &BlockHash,
) -> Result<Option<Arc<Block<T>>>, StoreError> {
    let Some(bytes) = blocks.get(hash.hash().as_bytes()).map_err(db_err)? else {
        return Ok(None);
    };
    let block: Block<T> = codec::decode(bytes.value(), ledger_core::limits::MAX_BLOCK_BYTES)
        .map_err(|e| StoreError::Corrupt {
            hash: *hash,
            reason: e.to_string(),
        })?;
    if block.hash() != *hash {
        return Err(StoreError::Corrupt {
            hash: *hash,
            reason: format!("content hashes to {}", block.hash()),
        });
    }
    Ok(Some(Arc::new(block)))
}

/// The `(height, hash)` entries of `by_height`, in key order.
fn list_blocks(
    by_height: &impl ReadableTable<&'static [u8; 40], ()>,
) -> Result<Vec<(Height, BlockHash)>, StoreError> {
    let mut out = Vec::new();
    for entry in by_height.iter().map_err(db_err)? {
        let (key, _) = entry.map_err(db_err)?;
        let key = key.value();
        let mut height = [0u8; 8];
        height.copy_from_slice(&key[..8]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&key[8..]);
        out.push((
            Height(u64::from_be_bytes(height)),
            BlockHash::from_byte_array(hash),
        ));
    }
    Ok(out)
}

fn height_key(height: Height, hash: &BlockHash) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&height.0.to_be_bytes());
    key[8..].copy_from_slice(hash.hash().as_bytes());
    key
}

impl<T: Serialize + DeserializeOwned> BodySource<T> for RedbStore<T> {
    type Error = StoreError;

    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<T>>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(db_err)?;
        read_block(&tx.open_table(BLOCKS).map_err(db_err)?, hash)
    }
}

/// The [`BlockWriter`] of a [`RedbStore`].
struct RedbWriter<T> {
    db: Arc<Database>,
    _payload: std::marker::PhantomData<fn() -> T>,
}

impl<T: Serialize> BlockWriter<T> for RedbWriter<T> {
    fn write(&mut self, blocks: &[Arc<Block<T>>]) -> Result<(), StoreError> {
        write_blocks(&self.db, blocks)
    }
}

/// The [`BlockReader`] of a [`RedbStore`]: reads committed blocks from another thread.
struct RedbReader<T> {
    db: Arc<Database>,
    _payload: std::marker::PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> BlockReader<T> for RedbReader<T> {
    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<T>>>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        read_block(&tx.open_table(BLOCKS).map_err(db_err)?, hash)
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> BlockStore<T> for RedbStore<T> {
    fn stored(&self) -> Result<Vec<(Height, BlockHash)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(db_err)?;
        list_blocks(&tx.open_table(BY_HEIGHT).map_err(db_err)?)
    }

    fn writer(&self) -> Result<Box<dyn BlockWriter<T>>, StoreError> {
        Ok(Box::new(RedbWriter {
            db: Arc::clone(self.db.as_ref().ok_or(StoreError::Closed)?),
            _payload: std::marker::PhantomData,
        }))
    }

    fn close(&mut self) -> Result<(), StoreError> {
        // Every write is durable already. Dropping the database releases the file
        // (once no reader or writer holds it).
        self.db = None;
        Ok(())
    }

    fn reader(&self) -> Option<Box<dyn BlockReader<T>>> {
        let db = Arc::clone(self.db.as_ref()?);
        Some(Box::new(RedbReader {
            db,
            _payload: std::marker::PhantomData,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{
        AccountId, Amount, Applied, Genesis, Keypair, Ledger, Policy, Timestamp, TxContext,
    };

    struct Free;
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    #[error("never")]
    struct Never;
    impl Policy for Free {
        type Payload = u8;
        type State = ();
        type Undo = ();
        type Error = Never;
        fn genesis_state(&self, _: &Genesis) {}
        fn apply(&self, _: &TxContext<'_>, _: &mut (), _: &u8) -> Result<Applied<()>, Never> {
            Ok(Applied::new(()))
        }
        fn undo(&self, _: &mut (), _: ()) {}
    }

    fn genesis() -> Genesis {
        Genesis {
            network: "store-test".into(),
            timestamp: Timestamp(0),
            pow_bits: 2,
            producers: None,
            roster: vec![],
            balances: vec![(AccountId::unspendable("r"), Amount(10))],
            reserve: AccountId::unspendable("r"),
            parameters: Default::default(),
        }
    }

    /// Three blocks of a chain, parents first.
    fn chain() -> Vec<Arc<Block<u8>>> {
        let mut ledger = Ledger::new(genesis(), Free).expect("valid genesis");
        let keys = Keypair::from_seed([5; 32]);
        (1..=3u64)
            .map(|i| {
                let block = ledger.mine_block(&keys, Timestamp(i * 1000));
                let hash = block.hash();
                ledger
                    .submit(block, Timestamp(i * 1000))
                    .into_result()
                    .expect("valid block");
                ledger.block(&hash).expect("memory").expect("stored")
            })
            .collect()
    }

    #[test]
    fn redb_keeps_blocks_across_reopen_in_height_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocks = chain();
        {
            let store = RedbStore::<u8>::open(dir.path()).expect("opens");
            for block in blocks.iter().rev() {
                store.put(block).expect("put");
            }
        }
        let store = RedbStore::<u8>::open(dir.path()).expect("reopens");
        let stored = store.stored().expect("lists");
        let expected: Vec<_> = blocks.iter().map(|b| (b.header.height, b.hash())).collect();
        assert_eq!(stored, expected);
        for block in &blocks {
            assert_eq!(
                store.get(&block.hash()).expect("get").as_deref(),
                Some(&**block)
            );
        }
        assert_eq!(store.get(&BlockHash::default()).expect("get"), None);
    }

    #[test]
    fn a_write_from_another_thread_is_one_commit_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocks = chain();
        {
            let store = RedbStore::<u8>::open(dir.path()).expect("opens");
            let mut writer = store.writer().expect("a writer");
            let group = blocks.clone();
            std::thread::spawn(move || writer.write(&group).expect("writes"))
                .join()
                .expect("the writer thread ends");
            // Readable through the store at once.
            for block in &blocks {
                assert_eq!(
                    store.get(&block.hash()).expect("get").as_deref(),
                    Some(&**block)
                );
            }
        }
        let store = RedbStore::<u8>::open(dir.path()).expect("reopens");
        let expected: Vec<_> = blocks.iter().map(|b| (b.header.height, b.hash())).collect();
        assert_eq!(store.stored().expect("lists"), expected);
    }

    #[test]
    fn a_closed_store_refuses_reads_and_new_writers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocks = chain();
        {
            let mut store = RedbStore::<u8>::open(dir.path()).expect("opens");
            store.put(&blocks[0]).expect("put");
            store.close().expect("closes");
            assert!(matches!(
                store.get(&blocks[0].hash()),
                Err(StoreError::Closed)
            ));
            assert!(matches!(store.writer(), Err(StoreError::Closed)));
        }
        let store = RedbStore::<u8>::open(dir.path()).expect("reopens");
        assert_eq!(
            store.stored().expect("lists"),
            vec![(Height(1), blocks[0].hash())]
        );
    }

    #[test]
    fn memory_store_clones_share_blocks() {
        let blocks = chain();
        let a = MemoryStore::new();
        let b = a.clone();
        a.put(&blocks[0]);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b.stored().expect("lists"),
            vec![(Height(1), blocks[0].hash())]
        );
    }

    #[test]
    fn a_corrupted_block_is_reported_and_not_served() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocks = chain();
        let store = RedbStore::<u8>::open(dir.path()).expect("opens");
        for block in &blocks {
            store.put(block).expect("put");
        }
        // Flip a byte of block 2 on disk.
        let victim = blocks[1].hash();
        {
            let db = store.db().expect("open");
            let tx = db.begin_write().expect("write");
            {
                let mut table = tx.open_table(BLOCKS).expect("table");
                let mut bytes = table
                    .get(victim.hash().as_bytes())
                    .expect("read")
                    .expect("present")
                    .value()
                    .to_vec();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                table
                    .insert(victim.hash().as_bytes(), bytes.as_slice())
                    .expect("write");
            }
            tx.commit().expect("commit");
        }
        assert!(matches!(
            store.get(&victim),
            Err(StoreError::Corrupt { .. })
        ));

        let (ledger, report) = crate::open_ledger(genesis(), Free, store).expect("opens");
        assert_eq!(report.loaded, 1);
        assert!(
            matches!(report.failed[0], (h, crate::ReloadFailure::Unreadable(_)) if h == victim)
        );
        assert!(matches!(
            report.failed[1],
            (h, crate::ReloadFailure::MissingParent(p)) if h == blocks[2].hash() && p == victim
        ));
        assert_eq!(ledger.tip().hash, blocks[0].hash());
        assert_eq!(
            ledger.hashes_after(&[ledger.genesis_hash()], 10),
            vec![blocks[0].hash()]
        );
    }
}
