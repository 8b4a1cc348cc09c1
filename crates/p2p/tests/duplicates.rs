//! Two nodes that dial each other at the same time keep one connection between them.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use common::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn peer_count(handle: &Handle) -> usize {
    handle.peers().await.expect("node running").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialling_each_other_keep_one_connection() {
    // Bind both listeners first so each node can be configured with the other.
    let listener_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (
        listener_a.local_addr().unwrap(),
        listener_b.local_addr().unwrap(),
    );
    let shutdown = CancellationToken::new();
    let mut config_a = config("a");
    config_a.peers = vec![addr_b];
    let mut config_b = config("b");
    config_b.peers = vec![addr_a];
    let a = p2p::spawn(listener_a, config_a, ledger(), shutdown.clone()).unwrap();
    let b = p2p::spawn(listener_b, config_b, ledger(), shutdown.clone()).unwrap();
    let (ha, hb) = (a.handle(), b.handle());

    wait_peers(&ha, 1).await;
    wait_peers(&hb, 1).await;
    // Traffic flows both ways over the connection that was kept.
    let tx = note(&alice(), 1, "hello");
    let id = ha.submit_transaction(tx).await.unwrap().unwrap();
    wait_pending(&hb, id).await;
    let mined = mine(&hb, &bob()).await;
    wait_tip(&ha, mined.hash).await;
    // Each side sees the other exactly once, by its listen address.
    for (handle, other) in [(&ha, addr_b), (&hb, addr_a)] {
        let peers = handle.peers().await.unwrap();
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert_eq!(peers[0].listen_addr, Some(other));
    }
    assert_eq!(peer_count(&ha).await, 1);

    // A later dial to a connected peer opens nothing new.
    ha.connect(addr_b).await.unwrap();
    let tx = note(&carol(), 1, "still one connection");
    let id = hb.submit_transaction(tx).await.unwrap().unwrap();
    wait_pending(&ha, id).await;
    assert_eq!(peer_count(&ha).await, 1);
    assert_eq!(peer_count(&hb).await, 1);

    shutdown.cancel();
    a.join().await.unwrap();
    b.join().await.unwrap();
}
