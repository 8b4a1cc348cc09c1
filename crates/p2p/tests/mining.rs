//! Mining runs off the ledger task: the node keeps answering while it mines, and a
//! tip change cancels the job.

mod common;

use common::*;
use ledger_core::{Genesis, Keypair, Ledger, MineStatus, Timestamp};
use p2p::{Clock, MineError};

/// A clock stopped at one instant, so mining templates are reproducible.
struct Stopped(Timestamp);

impl Clock for Stopped {
    fn now(&self) -> Timestamp {
        self.0
    }
}

const AT: Timestamp = Timestamp(1_000);

/// Hard enough (about a million hashes a block) that a job is still running when the
/// competing block arrives.
fn hard_genesis() -> Genesis {
    Genesis {
        network: "p2p-mining-test".into(),
        pow_bits: 20,
        ..genesis()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tip_change_cancels_mining_without_stalling_the_node() {
    // The competing block, mined here.
    let mut other = Ledger::new(hard_genesis(), Notes).expect("valid genesis");
    let competing = other.mine_block(&carol(), AT);

    // A producer whose block at `AT` needs more than half a million tries: the node
    // cannot find it in the moment between the two commands below.
    let producer = (10u8..)
        .map(|seed| Keypair::from_seed([seed; 32]))
        .find(|keys| {
            let mut fresh = Ledger::new(hard_genesis(), Notes).expect("valid genesis");
            let mut template = fresh.block_template(keys.account(), AT);
            template.mine(500_000) == MineStatus::Continue
        })
        .expect("some seed needs many tries");

    let mut cfg = config("miner");
    cfg.clock = std::sync::Arc::new(Stopped(AT));
    let ledger = Ledger::with_store(hard_genesis(), Notes, Store::new()).expect("valid genesis");
    let node = start_with(cfg, ledger).await;

    // Queue the mining command first (one poll sends it), then the competing block.
    let handle = node.handle.clone();
    let mining = handle.mine(producer.clone());
    tokio::pin!(mining);
    tokio::select! {
        biased;
        result = &mut mining => panic!("mining finished at once: {result:?}"),
        () = std::future::ready(()) => {}
    }
    // While mining, the node answers.
    match node.handle.mine(producer.clone()).await.expect("running") {
        Err(MineError::Busy) => {}
        other => panic!("expected busy, got {other:?}"),
    }
    assert_eq!(node.handle.tip().await.expect("running").height.0, 0);
    let status = node
        .handle
        .submit_block(competing.clone())
        .await
        .expect("running")
        .expect("valid block");
    assert_eq!(status, ledger_core::BlockStatus::Accepted);
    match mining.await.expect("running") {
        Err(MineError::TipChanged) => {}
        other => panic!("expected the job to be cancelled, got {other:?}"),
    }
    assert_eq!(
        node.handle.tip().await.expect("running").hash,
        competing.hash()
    );
    node.stop().await;
}
