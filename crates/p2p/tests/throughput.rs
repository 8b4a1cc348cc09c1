//! What keeps a busy network flowing: blocks at a steady pace by the producers in turn,
//! submissions admitted in batches, and a full admission queue answered with a typed
//! `Busy` that takes nothing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ledger_core::{AccountId, Genesis, Ledger, TxId};
use p2p::{NodeError, limits};

/// The test network with alice, bob and carol as its authorised producers.
fn produced_genesis() -> Genesis {
    Genesis {
        network: "p2p-pace-test".into(),
        producers: Some(vec![alice().account(), bob().account(), carol().account()]),
        ..genesis()
    }
}

fn paced_hash() -> ledger_core::BlockHash {
    produced_genesis().hash()
}

/// A note by dave on the paced network.
fn dave_note(nonce: u64) -> ledger_core::Transaction<String> {
    ledger_core::Transaction::new_signed(
        &paced_hash(),
        &dave(),
        nonce,
        now(),
        ledger_core::TxBody::App(format!("note {nonce}")),
    )
}

async fn paced_node(
    name: &str,
    producer: ledger_core::Keypair,
    peers: Vec<std::net::SocketAddr>,
) -> TestNode {
    let mut cfg = config(name);
    cfg.peers = peers;
    cfg.producer = Some(producer);
    cfg.block_interval = Some(Duration::from_millis(50));
    let ledger = Ledger::with_store(produced_genesis(), Notes, Store::new()).expect("valid");
    start_with(cfg, ledger).await
}

/// Whether every id is in a block of the node's best chain.
fn all_committed(ledger: &Ledger<Notes, Store>, ids: &HashSet<TxId>) -> bool {
    let mut found = 0;
    for hash in ledger.main_chain().iter().skip(1) {
        if let Ok(Some(block)) = ledger.block(hash) {
            found += block
                .transactions
                .iter()
                .filter(|tx| ids.contains(&tx.id()))
                .count();
        }
    }
    found == ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_producers_take_turns_and_every_submission_reaches_every_node() {
    let a = paced_node("pace-a", alice(), vec![]).await;
    let b = paced_node("pace-b", bob(), vec![a.addr]).await;
    let c = paced_node("pace-c", carol(), vec![a.addr, b.addr]).await;
    for node in [&a, &b, &c] {
        wait_peers(&node.handle, 2).await;
    }
    // Three waves of submissions, to three nodes: no one mines by hand.
    let mut ids = HashSet::new();
    for (wave, node) in [&a, &b, &c].into_iter().enumerate() {
        let start = wave as u64 * 100 + 1;
        let txs: Vec<_> = (start..start + 100)
            .map(|n| (dave_note(n), Vec::new()))
            .collect();
        let verdicts = node.handle.submit_batch(txs).await.expect("running");
        for verdict in verdicts {
            ids.insert(verdict.expect("admitted"));
        }
        let wanted = ids.clone();
        wait_ledger(&node.handle, "the wave in blocks", move |l| {
            all_committed(l, &wanted)
        })
        .await;
    }
    for node in [&a, &b, &c] {
        let wanted = ids.clone();
        wait_ledger(&node.handle, "every submission in blocks", move |l| {
            all_committed(l, &wanted) && l.mempool().len() == 0
        })
        .await;
    }
    // The producers took turns: more than one of them produced.
    let producers: HashSet<AccountId> = a
        .handle
        .headers()
        .await
        .expect("running")
        .iter()
        .skip(1)
        .map(|h| h.producer)
        .collect();
    assert!(producers.len() >= 2, "one producer made every block");
    // With nothing waiting, nothing is produced.
    let height = a.handle.tip().await.expect("running").height;
    let mut events = a.handle.subscribe();
    let quiet = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if let Ok(p2p::NodeEvent::BlockAccepted { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a block without transactions");
    assert_eq!(a.handle.tip().await.expect("running").height, height);
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_larger_than_the_admission_queue_is_refused_whole_as_busy() {
    let node = start("busy", vec![]).await;
    let txs: Vec<_> = (1..=limits::ADMISSION_QUEUE as u64 + 1)
        .map(|n| (note(&dave(), n, "x"), Vec::new()))
        .collect();
    match node.handle.submit_batch(txs).await {
        Err(NodeError::Busy { held, capacity }) => {
            assert_eq!((held, capacity), (0, limits::ADMISSION_QUEUE));
        }
        other => panic!("expected busy, got {other:?}"),
    }
    let pending = node.handle.pending().await.expect("running");
    assert!(
        pending.is_empty(),
        "nothing of a refused submission is taken"
    );
    // The node keeps serving: a submission that fits is admitted.
    let id = node
        .handle
        .submit_transaction(note(&dave(), 1, "fits"))
        .await
        .expect("running")
        .expect("admitted");
    wait_pending(&node.handle, id).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_verdict_in_order() {
    let node = start("verdicts", vec![]).await;
    let mut forged = note(&dave(), 2, "forged");
    forged.signature = ledger_core::Signature([9; 64]);
    let txs = vec![
        (note(&dave(), 1, "first"), Vec::new()),
        (forged, Vec::new()),
        (note(&dave(), 1, "same nonce"), Vec::new()),
        (note(&dave(), 3, "third"), Vec::new()),
    ];
    let verdicts = node.handle.submit_batch(txs).await.expect("running");
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts[0].is_ok());
    assert!(matches!(
        verdicts[1],
        Err(ledger_core::TxError::BadSignature { .. })
    ));
    assert!(matches!(
        verdicts[2],
        Err(ledger_core::TxError::StaleNonce { .. })
    ));
    assert!(verdicts[3].is_ok());
    assert!(
        node.handle
            .submit_batch(Vec::new())
            .await
            .expect("running")
            .is_empty()
    );
    node.stop().await;
}
