//! Persistence: a node restarts from its data directory with the same chain and
//! state, also after being killed in the middle of receiving blocks.

mod common;

use common::*;
use ledger_core::{Height, Ledger};
use p2p::{NodeEvent, RedbStore, open_ledger};

type Disk = RedbStore<String>;

fn open(dir: &std::path::Path) -> (Ledger<Notes, Disk>, p2p::ReloadReport<TooLong>) {
    let store = RedbStore::open(dir).expect("store opens");
    open_ledger(genesis(), Notes, store).expect("ledger reloads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_the_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, report) = open(dir.path());
    assert_eq!(report.loaded, 0);
    let node = start_with(config("disk"), ledger).await;
    for nonce in 1..=3 {
        node.handle
            .submit_transaction(transfer(&alice(), nonce, &bob(), 10))
            .await
            .expect("running")
            .expect("valid transfer");
        node.handle
            .submit_transaction(note(&bob(), nonce, "note"))
            .await
            .expect("running")
            .expect("valid note");
        mine(&node.handle, &carol()).await;
    }
    let tip = node.handle.tip().await.expect("running");
    let chain = node.handle.chain().await.expect("running");
    let before = balances(&node.handle).await;
    node.stop().await;

    let (ledger, report) = open(dir.path());
    assert!(report.is_clean(), "{:?}", report.failed);
    assert_eq!(report.loaded, 3);
    assert_eq!(ledger.tip().hash, tip.hash);
    assert_eq!(ledger.main_chain(), chain.as_slice());
    // The node serves it again, with the same state.
    let node = start_with(config("disk-again"), ledger).await;
    assert_eq!(balances(&node.handle).await, before);
    assert_eq!(node.handle.tip().await.expect("running"), tip);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_while_receiving_blocks_restarts_cleanly() {
    let mut chain = ledger();
    grow(&mut chain, 600);
    let target = chain.tip();
    let source = start_with(config("source"), chain).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let (ledger, _) = open(dir.path());
    let mut cfg = config("victim");
    cfg.peers = vec![source.addr];
    let victim = start_with(cfg, ledger).await;
    let mut events = victim.handle.subscribe();
    // Every accepted block was stored first: this is what the node acknowledged.
    let mut acknowledged = Height(0);
    while acknowledged.0 < 150 {
        if let NodeEvent::BlockAccepted { height, .. } =
            wait_event(&mut events, "blocks arriving", |e| {
                matches!(e, NodeEvent::BlockAccepted { .. })
            })
            .await
        {
            acknowledged = acknowledged.max(height);
        }
    }
    // Kill it: no shutdown, the task is dropped wherever it was.
    victim.node.abort();
    let ended = victim.node.join().await;
    assert!(
        ended.is_err() || target.height == acknowledged,
        "the node was killed"
    );

    let (ledger, report) = open(dir.path());
    assert!(report.is_clean(), "{:?}", report.failed);
    assert!(
        ledger.tip().height >= acknowledged,
        "every acknowledged block survived: {} < {}",
        ledger.tip().height,
        acknowledged
    );
    assert!(
        ledger
            .replay_from_genesis()
            .is_ok_and(|s| &s == ledger.state())
    );

    // Restarted, it finishes the sync.
    let mut cfg = config("victim-again");
    cfg.peers = vec![source.addr];
    let again = start_with(cfg, ledger).await;
    wait_tip(&again.handle, target.hash).await;
    assert_eq!(
        balances(&again.handle).await,
        balances(&source.handle).await
    );
    again.stop().await;
    source.stop().await;
}
