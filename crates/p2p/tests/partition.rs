//! Partition and heal: five nodes split 2/3 mine conflicting branches, with
//! conflicting spends of the same funds, then reconnect.

mod common;

use common::*;
use ledger_core::{Amount, TxId};
use p2p::NodeEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heals_onto_the_most_work_chain() {
    // Group one: n0, n1. Group two: n2, n3, n4.
    let n0 = start("n0", vec![]).await;
    let n1 = start("n1", vec![n0.addr]).await;
    let n2 = start("n2", vec![]).await;
    let n3 = start("n3", vec![n2.addr]).await;
    let n4 = start("n4", vec![n2.addr, n3.addr]).await;
    wait_peers(&n0.handle, 1).await;
    wait_peers(&n1.handle, 1).await;
    for node in [&n2, &n3, &n4] {
        wait_peers(&node.handle, 2).await;
    }
    let group_one = [&n0, &n1];
    let group_two = [&n2, &n3, &n4];

    // Group one: alice pays bob 800, dave posts a note; two blocks.
    let to_bob = n0
        .handle
        .submit_transaction(transfer(&alice(), 1, &bob(), 800))
        .await
        .expect("running")
        .expect("valid spend");
    let dave_note = n0
        .handle
        .submit_transaction(note(&dave(), 1, "dave was here"))
        .await
        .expect("running")
        .expect("valid note");
    wait_pending(&n1.handle, to_bob).await;
    wait_pending(&n1.handle, dave_note).await;
    let b1 = mine(&n1.handle, &bob()).await;
    wait_tip(&n0.handle, b1.hash).await;
    let b2 = mine(&n0.handle, &bob()).await;
    wait_tip(&n1.handle, b2.hash).await;

    // Group two: alice pays carol 800 of the same 1,000; three blocks.
    let to_carol = n2
        .handle
        .submit_transaction(transfer(&alice(), 1, &carol(), 800))
        .await
        .expect("running")
        .expect("valid spend");
    wait_pending(&n3.handle, to_carol).await;
    wait_pending(&n4.handle, to_carol).await;
    let mut tip = mine(&n3.handle, &carol()).await;
    for miner in [&n4, &n2] {
        for node in group_two {
            wait_tip(&node.handle, tip.hash).await;
        }
        tip = mine(&miner.handle, &carol()).await;
    }
    for node in group_two {
        wait_tip(&node.handle, tip.hash).await;
    }
    assert_eq!(tip.height.0, 3);

    // Heal. Subscribed first, so that the tip changes it causes are all buffered.
    let mut dropped: Vec<_> = group_one.iter().map(|n| n.handle.subscribe()).collect();
    n1.handle.connect(n2.addr).await.expect("running");
    for node in group_one.iter().chain(group_two.iter()) {
        wait_tip(&node.handle, tip.hash).await;
    }

    // The losing branch's transactions: the conflicting spend is reported dropped, the
    // note is back in the mempool (and relayed to the other side).
    for (node, dropped) in group_one.iter().zip(&mut dropped) {
        let (in_chain, pending) = node
            .handle
            .query(move |l| {
                let in_chain = |id: TxId| {
                    l.main_chain().iter().any(|h| {
                        l.block(h)
                            .ok()
                            .flatten()
                            .is_some_and(|b| b.transactions.iter().any(|t| t.id() == id))
                    })
                };
                (
                    (in_chain(to_bob), in_chain(dave_note)),
                    (l.is_pending(&to_bob), l.is_pending(&dave_note)),
                )
            })
            .await
            .expect("running");
        assert!(
            !in_chain.0 && !pending.0,
            "the double spend is neither mined nor pending"
        );
        // The double spend is reported as dropped by a tip change.
        wait_event(dropped, "the double spend reported as dropped", |e| {
            matches!(e, NodeEvent::TipChanged(change)
                if change.dropped.iter().any(|d| d.tx() == to_bob))
        })
        .await;
        assert!(in_chain.1 || pending.1, "the note survived");
    }
    wait_pending(&n4.handle, dave_note).await;
    let last = mine(&n4.handle, &carol()).await;
    for node in group_one.iter().chain(group_two.iter()) {
        wait_tip(&node.handle, last.hash).await;
    }

    // No double spend anywhere, identical state everywhere.
    let expected = balances(&n0.handle).await;
    for node in group_one.iter().chain(group_two.iter()) {
        assert_eq!(balances(&node.handle).await, expected);
        let (alice, bob_, carol_, ok) = node
            .handle
            .query(|l| {
                (
                    l.balance(&alice().account()),
                    l.balance(&bob().account()),
                    l.balance(&carol().account()),
                    l.replay_from_genesis().is_ok_and(|s| &s == l.state()),
                )
            })
            .await
            .expect("running");
        assert_eq!(alice, Amount(200));
        assert_eq!(bob_, Amount(1_000));
        assert_eq!(carol_, Amount(800));
        assert!(ok, "incremental state equals a replay");
        assert!(node.handle.pending().await.expect("running").is_empty());
    }
    for node in [n0, n1, n2, n3, n4] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_work_branches_converge_on_the_smaller_tip_hash() {
    let a = start("a", vec![]).await;
    let b = start("b", vec![]).await;
    let on_a = mine(&a.handle, &alice()).await;
    let on_b = mine(&b.handle, &bob()).await;
    assert_ne!(on_a.hash, on_b.hash);
    let winner = on_a.hash.min(on_b.hash);
    b.handle.connect(a.addr).await.expect("running");
    wait_tip(&a.handle, winner).await;
    wait_tip(&b.handle, winner).await;
    a.stop().await;
    b.stop().await;
}
