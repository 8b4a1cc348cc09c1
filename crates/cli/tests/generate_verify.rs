//! `healthchain generate` then `healthchain verify`, and `verify` on damaged data.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::binary;
use health_workflow::Event;
use ledger_core::{BodySource, TxBody};
use p2p::store::{BlockStore, RedbStore};

fn generate(dir: &Path, blocks: u32, txs: u32) {
    let output = binary()
        .args(["generate", "--blocks", &blocks.to_string()])
        .args(["--txs-per-block", &txs.to_string(), "--data-dir"])
        .arg(dir)
        .output()
        .expect("generate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total = u64::from(blocks) * u64::from(txs);
    assert!(
        stdout.contains(&format!("Generated {blocks} blocks, {total} transactions")),
        "{stdout}"
    );
}

fn verify(dir: &Path) -> (bool, String, String) {
    verify_with(dir, &[])
}

fn verify_with(dir: &Path, flags: &[&str]) -> (bool, String, String) {
    let output = binary()
        .args(["verify", "--data-dir"])
        .arg(dir)
        .args(flags)
        .output()
        .expect("verify runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_generated_chain_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), 6, 25);
    let (ok, stdout, stderr) = verify(dir.path());
    assert!(ok, "{stdout}\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("Verified "))
        .expect("a summary line");
    assert!(
        summary.starts_with("Verified 6 blocks, 150 transactions in "),
        "{summary}"
    );
    assert!(summary.contains(" tx/s"), "{summary}");

    // Every kind of workflow event is in there, and signatures were all checked.
    assert!(summary.ends_with("every signature checked"), "{summary}");
    let store: RedbStore<Event> = RedbStore::open(dir.path()).expect("opens");
    let mut kinds = std::collections::BTreeSet::new();
    for (_, hash) in store.stored().expect("lists") {
        let block = store.get(&hash).expect("reads").expect("present");
        for tx in &block.transactions {
            kinds.insert(match &tx.body {
                TxBody::App(event) => event.kind().name(),
                TxBody::Transfer { .. } => "TRANSFER_ECASH",
            });
        }
    }
    assert_eq!(kinds.len(), 6, "{kinds:?}");

    // A second generate into the same directory is refused.
    let again = binary()
        .args(["generate", "--blocks", "1", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!again.status.success());
}

#[test]
fn a_tampered_block_is_reported_by_hash_and_height() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), 5, 10);
    let target = {
        let mut store: RedbStore<Event> = RedbStore::open(dir.path()).expect("opens");
        let (height, hash) = store.stored().expect("lists")[2];
        assert_eq!(height.0, 3);
        let mut block = Arc::unwrap_or_clone(store.get(&hash).expect("reads").expect("present"));
        // Someone edits a recorded transaction; the header (and so the key) stays.
        block.transactions[0].nonce += 1_000;
        store.put(&Arc::new(block)).expect("writes");
        store.close().expect("closes");
        hash
    };
    every_path_reports(
        dir.path(),
        &format!("block {target} at height 3 is invalid"),
        &format!("Stored block {target} was not loaded: invalid"),
    );
}

/// Full validation, structure only (blocks hashed on the reader's side) and a node's
/// restart all fail on the chain in `dir`: the first two with `error` on stderr, the
/// restart with `restart` on stdout.
fn every_path_reports(dir: &Path, error: &str, restart: &str) {
    for flags in [&[][..], &["--no-signatures"]] {
        let (ok, stdout, stderr) = verify_with(dir, flags);
        assert!(!ok, "verify {flags:?} must fail: {stdout}");
        assert!(stderr.contains(error), "{flags:?}: {stderr}");
    }
    let (ok, stdout, _) = verify_with(dir, &["--reload"]);
    assert!(!ok, "a restart must report it: {stdout}");
    assert!(stdout.contains(restart), "{stdout}");
}

#[test]
fn an_unreadable_block_is_reported_by_hash_and_height() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), 4, 5);
    let hash = {
        let store: RedbStore<Event> = RedbStore::open(dir.path()).expect("opens");
        store.stored().expect("lists")[1].1
    };
    {
        let db = redb::Database::create(dir.path().join(p2p::store::DB_FILE)).expect("opens");
        let table: redb::TableDefinition<'_, &[u8; 32], &[u8]> =
            redb::TableDefinition::new("blocks");
        let tx = db.begin_write().expect("writes");
        {
            let mut blocks = tx.open_table(table).expect("table");
            blocks
                .insert(hash.hash().as_bytes(), b"not a block".as_slice())
                .expect("insert");
        }
        tx.commit().expect("commits");
    }
    every_path_reports(
        dir.path(),
        &format!("block {hash} at height 2 is corrupted"),
        &format!("Stored block {hash} was not loaded: unreadable"),
    );
}

#[test]
fn verify_needs_a_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, _, stderr) = verify(dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("not a healthchain data directory"),
        "{stderr}"
    );
}

#[test]
fn the_floor_and_the_restart_path_are_measured() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), 5, 20);
    let (ok, stdout, stderr) = verify_with(dir.path(), &["--floor"]);
    assert!(ok, "{stdout}\n{stderr}");
    // 5 producer signatures and 100 transaction signatures.
    assert!(
        stdout.contains("Signature floor: 105 signatures batch-verified alone in "),
        "{stdout}"
    );
    assert!(stdout.contains("x the signature floor"), "{stdout}");

    let (ok, stdout, stderr) = verify_with(dir.path(), &["--reload"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Reloaded 5 blocks in ") && stdout.contains("ready to serve at height 5"),
        "{stdout}"
    );
}

#[test]
fn a_fresh_node_syncing_the_chain_over_loopback_is_measured() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), 4, 10);
    let (ok, stdout, stderr) = verify_with(dir.path(), &["--sync"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Synced 4 blocks, 40 transactions over loopback in "),
        "{stdout}"
    );
    // The scratch store is gone afterwards.
    assert!(!dir.path().join("sync-measure.tmp").exists());
}
