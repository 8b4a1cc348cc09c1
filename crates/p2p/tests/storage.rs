//! Storage faults: a store whose writes fail, data directories that cannot be used,
//! and a block corrupted on disk, which is reported on start, never served, and
//! fetched again from a peer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use ledger_core::{Block, BlockHash, BodySource, Height, Ledger};
use p2p::{BlockStore, BlockWriter, MemoryStore, NodeEvent, RedbStore, ReloadFailure, StoreError};

/// A memory store whose writes fail while `failing` is set, as a full or broken disk
/// (a failed fsync) would.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: MemoryStore<String>,
    failing: Arc<AtomicBool>,
}

impl FlakyStore {
    fn failing() -> Self {
        let store = FlakyStore::default();
        store.failing.store(true, Ordering::SeqCst);
        store
    }
}

impl BodySource<String> for FlakyStore {
    type Error = StoreError;

    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<String>>>, StoreError> {
        self.inner.get(hash)
    }
}

impl BlockWriter<String> for FlakyStore {
    fn write(&mut self, blocks: &[Arc<Block<String>>]) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Database(redb::Error::Io(
                std::io::Error::other("injected write failure"),
            )));
        }
        for block in blocks {
            self.inner.put(block);
        }
        Ok(())
    }
}

impl BlockStore<String> for FlakyStore {
    fn stored(&self) -> Result<Vec<(Height, BlockHash)>, StoreError> {
        self.inner.stored()
    }

    fn writer(&self) -> Result<Box<dyn BlockWriter<String>>, StoreError> {
        Ok(Box::new(self.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_batch_the_store_cannot_commit_stops_the_node_before_it_is_reported() {
    let mut source = ledger();
    grow(&mut source, 5);
    let honest = start_with(config("honest"), source).await;
    let ledger =
        Ledger::with_store(genesis(), Notes, FlakyStore::failing()).expect("valid genesis");
    let mut cfg = config("victim");
    cfg.peers = vec![honest.addr];
    let mut victim = start_with(cfg, ledger).await;
    let mut events = victim.node.events();

    // The node syncs, fails to commit the batch, and stops with the store's error.
    let result = tokio::time::timeout(WAIT, victim.node.join())
        .await
        .expect("the node stops");
    match result {
        Err(p2p::NodeError::Store(error)) => {
            assert!(
                error.to_string().contains("injected write failure"),
                "{error}"
            );
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    // Nothing of the batch was reported as accepted, nor a new tip.
    loop {
        match events.try_recv() {
            Ok(NodeEvent::BlockAccepted { hash, .. }) => panic!("{hash} reported as stored"),
            Ok(NodeEvent::TipChanged(change)) => panic!("tip {} reported", change.new_tip),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    // The peer is unaffected.
    assert_eq!(
        honest.handle.tip().await.expect("running").height,
        Height(5)
    );
    honest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_write_stops_the_node_before_the_block_is_heard_of_and_a_restart_recovers()
{
    let store = FlakyStore::default();
    let ledger = Ledger::with_store(genesis(), Notes, store.clone()).expect("valid genesis");
    let mut victim = start_with(config("victim"), ledger).await;
    let honest = start("honest", vec![victim.addr]).await;
    wait_peers(&victim.handle, 1).await;
    wait_peers(&honest.handle, 1).await;
    let mut events = victim.node.events();
    let mut honest_events = honest.handle.subscribe();

    // A block mined here cannot be written: the node stops with the store's error
    // instead of answering, reporting or announcing it.
    store.failing.store(true, Ordering::SeqCst);
    let mined = victim.handle.mine(alice()).await;
    assert!(
        matches!(mined, Err(_) | Ok(Err(p2p::MineError::Stopped))),
        "{mined:?}"
    );
    let result = tokio::time::timeout(WAIT, victim.node.join())
        .await
        .expect("the node stops");
    match result {
        Err(p2p::NodeError::Store(error)) => {
            assert!(
                error.to_string().contains("injected write failure"),
                "{error}"
            );
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    loop {
        match events.try_recv() {
            Ok(NodeEvent::BlockAccepted { hash, .. }) => panic!("{hash} reported as stored"),
            Ok(NodeEvent::TipChanged(change)) => panic!("tip {} reported", change.new_tip),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert!(store.inner.is_empty());
    // The peer never heard of the block, and keeps running.
    while let Ok(event) = honest_events.try_recv() {
        assert!(
            !matches!(event, NodeEvent::BlockAccepted { .. }),
            "{event:?}"
        );
    }
    assert_eq!(
        honest.handle.tip().await.expect("running").height,
        Height(0)
    );

    // The disk recovers: a node restarted on the same store catches up with its peer.
    store.failing.store(false, Ordering::SeqCst);
    let b1 = mine(&honest.handle, &bob()).await;
    let (ledger, report) =
        p2p::open_ledger(genesis(), Notes, store.clone()).expect("the store reopens");
    assert_eq!(report.loaded, 0);
    let mut cfg = config("victim");
    cfg.peers = vec![honest.addr];
    let mut victim = start_with(cfg, ledger).await;
    let mut events = victim.node.events();
    // Reported accepted only once it is durable.
    wait_event(
        &mut events,
        "b1 stored",
        |e| matches!(e, NodeEvent::BlockAccepted { hash, .. } if *hash == b1.hash),
    )
    .await;
    assert_eq!(store.inner.len(), 1);
    assert_eq!(
        balances(&victim.handle).await,
        balances(&honest.handle).await
    );
    honest.stop().await;
    victim.stop().await;
}

#[test]
fn unusable_data_directories_give_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");

    // A missing directory is created, parents included.
    let nested = dir.path().join("a").join("b");
    drop(RedbStore::<String>::open(&nested).expect("missing directory is created"));
    assert!(nested.join(p2p::store::DB_FILE).exists());

    // A path that is a file cannot be a data directory.
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write file");
    let error = RedbStore::<String>::open(&file).expect_err("a file is not a directory");
    assert!(matches!(error, StoreError::CreateDir { .. }), "{error}");
    assert!(error.to_string().contains("not-a-directory"), "{error}");

    // A database file that is not a block database.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).expect("mkdir");
    std::fs::write(junk.join(p2p::store::DB_FILE), vec![0x5a; 8192]).expect("write junk");
    let error = RedbStore::<String>::open(&junk).expect_err("junk is not a database");
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
    assert!(error.to_string().contains(p2p::store::DB_FILE), "{error}");

    // The same directory opened twice (two nodes on one data directory).
    let shared = dir.path().join("shared");
    let first = RedbStore::<String>::open(&shared).expect("opens");
    let error = RedbStore::<String>::open(&shared).expect_err("already open");
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
    drop(first);

    // A read-only directory, where this process's permissions are enforced (they
    // are not for a superuser).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).expect("mkdir");
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
        let enforced = std::fs::write(read_only.join("probe"), b"x").is_err();
        if enforced {
            let error = RedbStore::<String>::open(&read_only).expect_err("read-only");
            assert!(matches!(error, StoreError::Open { .. }), "{error}");
            assert!(error.to_string().contains("read-only"), "{error}");
        }
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755))
            .expect("chmod back");
    }
    // A directory no one may create files in, whatever the permissions.
    #[cfg(target_os = "linux")]
    if std::path::Path::new("/proc/self/status").exists() {
        let error = RedbStore::<String>::open("/proc/self").expect_err("read-only fs");
        assert!(matches!(error, StoreError::Open { .. }), "{error}");
        assert!(error.to_string().contains("/proc/self"), "{error}");
    }
}

/// Overwrites the stored bytes of `victim` in the database file of `dir`, as a disk
/// error would, keeping their length.
fn corrupt(dir: &std::path::Path, victim: BlockHash) {
    use redb::ReadableTable;
    const BLOCKS: redb::TableDefinition<'_, &[u8; 32], &[u8]> =
        redb::TableDefinition::new("blocks");
    let db = redb::Database::create(dir.join(p2p::store::DB_FILE)).expect("opens");
    let tx = db.begin_write().expect("write");
    {
        let mut table = tx.open_table(BLOCKS).expect("table");
        let mut bytes = table
            .get(victim.hash().as_bytes())
            .expect("read")
            .expect("present")
            .value()
            .to_vec();
        // A bit flipped in the header's timestamp: still decodable, wrong hash.
        bytes[8 + 32 + 32] ^= 1;
        table
            .insert(victim.hash().as_bytes(), bytes.as_slice())
            .expect("write");
    }
    tx.commit().expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_block_is_reported_not_served_and_fetched_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::<String>::open(dir.path()).expect("opens");
    let mut disk = Ledger::with_store(genesis(), Notes, store).expect("valid genesis");
    grow(&mut disk, 5);
    // Stored as a node would store them: the ledger itself writes nothing.
    let unstored: Vec<_> = disk.unstored_blocks().cloned().collect();
    for block in &unstored {
        disk.store().put(block).expect("writes");
    }
    disk.mark_stored(unstored.iter().map(|b| b.hash()));
    let chain: Vec<BlockHash> = disk.main_chain().to_vec();
    let blocks: Vec<Block<String>> = chain[1..]
        .iter()
        .map(|h| (*disk.block(h).expect("reads").expect("stored")).clone())
        .collect();
    drop(disk);
    corrupt(dir.path(), chain[3]);

    // On start the damage is reported: block 3 unreadable, 4 and 5 cut off from it.
    let store = RedbStore::<String>::open(dir.path()).expect("reopens");
    let (reloaded, report) = p2p::open_ledger(genesis(), Notes, store).expect("reloads");
    assert_eq!(report.loaded, 2);
    assert!(
        matches!(&report.failed[0], (h, ReloadFailure::Unreadable(StoreError::Corrupt { .. })) if *h == chain[3]),
        "{:?}",
        report.failed
    );
    assert!(
        matches!(&report.failed[1], (h, ReloadFailure::MissingParent(p)) if *h == chain[4] && *p == chain[3])
    );
    assert_eq!(reloaded.tip().hash, chain[2]);
    // Not served: the best chain, the only thing `GetBlocks` answers from, stops before.
    assert_eq!(
        reloaded.hashes_after(&[genesis_hash()], 10),
        chain[1..3].to_vec()
    );

    // An honest peer has the whole chain; the damaged node fetches what it lost.
    let mut source = ledger();
    for block in &blocks {
        source
            .submit(block.clone(), now())
            .into_result()
            .expect("valid chain");
    }
    let honest = start_with(config("honest"), source).await;
    let mut cfg = config("damaged");
    cfg.peers = vec![honest.addr];
    let damaged = start_with(cfg, reloaded).await;
    wait_tip(&damaged.handle, chain[5]).await;
    damaged.stop().await;

    // The good copy replaced the corrupted one on disk.
    let store = RedbStore::<String>::open(dir.path()).expect("reopens");
    let (again, report) = p2p::open_ledger(genesis(), Notes, store).expect("reloads");
    assert!(report.is_clean(), "{:?}", report.failed);
    assert_eq!(again.main_chain(), chain.as_slice());
    honest.stop().await;
}
