//! Honest networks: a full mesh of three nodes, and a late joiner catching up.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fully_meshed_agree() {
    let a = start("a", vec![]).await;
    let b = start("b", vec![a.addr]).await;
    let c = start("c", vec![a.addr, b.addr]).await;
    for node in [&a, &b, &c] {
        wait_peers(&node.handle, 2).await;
    }

    // A transaction submitted at one node reaches every mempool.
    let tx = transfer(&alice(), 1, &bob(), 250);
    let id = b
        .handle
        .submit_transaction(tx)
        .await
        .expect("node running")
        .expect("valid transfer");
    let n = note(&bob(), 1, "hello");
    let note_id = a
        .handle
        .submit_transaction(n)
        .await
        .expect("running")
        .expect("valid note");
    for node in [&a, &b, &c] {
        wait_pending(&node.handle, id).await;
        wait_pending(&node.handle, note_id).await;
    }

    // A block mined at one node becomes the tip everywhere.
    let mined = mine(&c.handle, &carol()).await;
    for node in [&a, &b, &c] {
        wait_tip(&node.handle, mined.hash).await;
    }
    let expected = balances(&a.handle).await;
    assert_eq!(balances(&b.handle).await, expected);
    assert_eq!(balances(&c.handle).await, expected);
    let alice_balance = a
        .handle
        .query(|l| l.balance(&alice().account()))
        .await
        .expect("running");
    assert_eq!(alice_balance.units(), 750);
    for node in [&a, &b, &c] {
        assert!(node.handle.pending().await.expect("running").is_empty());
        let replayed = node
            .handle
            .query(|l| l.replay_from_genesis().is_ok_and(|s| &s == l.state()))
            .await
            .expect("running");
        assert!(replayed, "incremental state equals a replay");
    }

    // A second round from another node.
    let mined = mine(&a.handle, &alice()).await;
    for node in [&a, &b, &c] {
        wait_tip(&node.handle, mined.hash).await;
    }
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_with_500_blocks() {
    let mut chain = ledger();
    grow(&mut chain, 500);
    let tip = chain.tip();
    assert_eq!(tip.height.0, 500);
    let a = start_with(config("a"), chain).await;

    let b = start("late", vec![a.addr]).await;
    wait_tip(&b.handle, tip.hash).await;
    assert_eq!(balances(&b.handle).await, balances(&a.handle).await);
    assert_eq!(
        b.handle.chain().await.expect("running"),
        a.handle.chain().await.expect("running")
    );

    // And it keeps following: a new block at the old node reaches it.
    let mined = mine(&a.handle, &alice()).await;
    wait_tip(&b.handle, mined.hash).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_syncing_from_two_peers_at_once_shares_its_sync_batches_and_catches_up() {
    // More batches than `limits::SYNC_BATCHES` from each peer: requests to both wait
    // for room in turn.
    let blocks = 3 * p2p::limits::SYNC_BATCHES * p2p::limits::MAX_BLOCKS_PER_REPLY / 2;
    let mut chain = ledger();
    grow(&mut chain, blocks);
    let blocks_of = |l: &ledger_core::Ledger<Notes, Store>| -> Vec<ledger_core::Block<String>> {
        l.main_chain()[1..]
            .iter()
            .map(|h| (*l.block(h).expect("memory").expect("stored")).clone())
            .collect()
    };
    let mut copy = ledger();
    for block in blocks_of(&chain) {
        copy.submit(block, now())
            .into_result()
            .expect("valid chain");
    }
    let tip = chain.tip();
    let a = start_with(config("a"), chain).await;
    let b = start_with(config("b"), copy).await;

    let late = start("late", vec![a.addr, b.addr]).await;
    wait_tip(&late.handle, tip.hash).await;
    assert_eq!(balances(&late.handle).await, balances(&a.handle).await);
    assert_eq!(
        late.handle.chain().await.expect("running"),
        a.handle.chain().await.expect("running")
    );
    for node in [a, b, late] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_exchange_connects_nodes_that_only_know_a_hub() {
    let hub = start("hub", vec![]).await;
    let b = start("b", vec![hub.addr]).await;
    wait_peers(&hub.handle, 1).await;
    let c = start("c", vec![hub.addr]).await;
    // c asks the hub for peers, learns b's address and dials it.
    wait_peers(&b.handle, 2).await;
    wait_peers(&c.handle, 2).await;
    let names: Vec<String> = b
        .handle
        .peers()
        .await
        .expect("running")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(names.contains(&"c".to_string()), "{names:?}");
    for node in [hub, b, c] {
        node.stop().await;
    }
}
