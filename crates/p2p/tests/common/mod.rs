//! Shared helpers of the network tests: a tiny "notes" policy, a genesis with easy
//! proof of work, nodes on 127.0.0.1:0 with short timeouts, and waits driven by
//! node events with a deadline.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ledger_core::{
    AccountId, Amount, Applied, Block, BlockHash, Genesis, Keypair, Ledger, Policy, Timestamp,
    Transaction, TxBody, TxContext,
};
use p2p::{
    BlockStore, Clock, MemoryStore, NodeConfig, NodeEvent, NodeHandle, RunningNode, SystemClock,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

/// Notes of up to 100 bytes; each earns its author 1 e-cash from the reserve.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Notes;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("note too long")]
pub(crate) struct TooLong;

impl Policy for Notes {
    type Payload = String;
    type State = Vec<String>;
    type Undo = ();
    type Error = TooLong;

    fn genesis_state(&self, _: &Genesis) -> Vec<String> {
        Vec::new()
    }

    fn apply(
        &self,
        ctx: &TxContext<'_>,
        notes: &mut Vec<String>,
        note: &String,
    ) -> Result<Applied<()>, TooLong> {
        if note.len() > 100 {
            return Err(TooLong);
        }
        notes.push(note.clone());
        Ok(Applied {
            undo: (),
            rewards: vec![(ctx.author, Amount(1))],
        })
    }

    fn undo(&self, notes: &mut Vec<String>, _: ()) {
        notes.pop();
    }
}

pub(crate) type Store = MemoryStore<String>;
pub(crate) type Handle<S = Store> = NodeHandle<Notes, S>;
pub(crate) type Event = NodeEvent<TooLong>;

/// Deadline for any single wait: generous, as it only bounds a failure.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn alice() -> Keypair {
    Keypair::from_seed([1; 32])
}
pub(crate) fn bob() -> Keypair {
    Keypair::from_seed([2; 32])
}
pub(crate) fn carol() -> Keypair {
    Keypair::from_seed([3; 32])
}
pub(crate) fn dave() -> Keypair {
    Keypair::from_seed([4; 32])
}
pub(crate) fn reserve() -> AccountId {
    AccountId::unspendable("reserve")
}

/// The test network: 4 bits of work (16 hashes a block on average).
pub(crate) fn genesis() -> Genesis {
    Genesis {
        network: "p2p-test".into(),
        timestamp: Timestamp(0),
        pow_bits: 4,
        producers: None,
        roster: vec![],
        balances: vec![
            (alice().account(), Amount(1_000)),
            (bob().account(), Amount(1_000)),
            (reserve(), Amount(1_000_000)),
        ],
        reserve: reserve(),
        parameters: Default::default(),
    }
}

pub(crate) fn now() -> Timestamp {
    SystemClock.now()
}

pub(crate) fn ledger() -> Ledger<Notes, Store> {
    Ledger::with_store(genesis(), Notes, Store::new()).expect("test genesis is valid")
}

pub(crate) fn genesis_hash() -> BlockHash {
    genesis().hash()
}

pub(crate) fn note(keys: &Keypair, nonce: u64, text: &str) -> Transaction<String> {
    Transaction::new_signed(
        &genesis_hash(),
        keys,
        nonce,
        now(),
        TxBody::App(text.to_string()),
    )
}

pub(crate) fn transfer(
    keys: &Keypair,
    nonce: u64,
    to: &Keypair,
    amount: u64,
) -> Transaction<String> {
    Transaction::new_signed(
        &genesis_hash(),
        keys,
        nonce,
        now(),
        TxBody::Transfer {
            to: to.account(),
            amount: Amount(amount),
        },
    )
}

/// Extends `ledger` by `blocks` blocks, one note in every tenth.
pub(crate) fn grow<S: BlockStore<String>>(ledger: &mut Ledger<Notes, S>, blocks: usize) {
    let miner = carol();
    for i in 0..blocks {
        let now = now();
        if i % 10 == 0 {
            let nonce = ledger.next_nonce(&miner.account());
            ledger
                .submit_transaction(note(&miner, nonce, &format!("note {i}")), now)
                .expect("valid note");
        }
        let block: Block<String> = ledger.mine_block(&miner, now);
        ledger
            .submit(block, now)
            .into_result()
            .expect("mined block is valid");
    }
}

/// Short timeouts, so that tests of them are quick.
pub(crate) fn config(name: &str) -> NodeConfig {
    let mut config = NodeConfig::new(name);
    config.session.handshake_timeout = Duration::from_millis(500);
    config.session.idle_timeout = Duration::from_secs(10);
    config.session.write_timeout = Duration::from_secs(5);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(2);
    config.ban_duration = Duration::from_secs(120);
    config
}

/// A running test node.
pub(crate) struct TestNode<S: BlockStore<String> = Store> {
    pub(crate) node: RunningNode<Notes, S>,
    pub(crate) handle: Handle<S>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) addr: SocketAddr,
}

impl<S: BlockStore<String>> TestNode<S> {
    /// Graceful shutdown, waiting for the node to stop.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.node.join().await.expect("node stops cleanly");
    }
}

pub(crate) async fn start_with<S: BlockStore<String>>(
    config: NodeConfig,
    ledger: Ledger<Notes, S>,
) -> TestNode<S> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let shutdown = CancellationToken::new();
    let node = p2p::spawn(listener, config, ledger, shutdown.clone()).expect("node starts");
    let handle = node.handle();
    let addr = handle.local_addr();
    TestNode {
        node,
        handle,
        shutdown,
        addr,
    }
}

pub(crate) async fn start(name: &str, peers: Vec<SocketAddr>) -> TestNode {
    let mut config = config(name);
    config.peers = peers;
    start_with(config, ledger()).await
}

/// Waits until `check` holds on the node's ledger, re-checking after every event.
pub(crate) async fn wait_ledger<S, F>(handle: &Handle<S>, what: &str, check: F)
where
    S: BlockStore<String>,
    F: Fn(&Ledger<Notes, S>) -> bool + Clone + Send + 'static,
{
    let deadline = Instant::now() + WAIT;
    let mut events = handle.subscribe();
    loop {
        if handle.query(check.clone()).await.expect("node running") {
            return;
        }
        match timeout_at(deadline, events.recv()).await {
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("node stopped: {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits until the node has at least `n` peers.
pub(crate) async fn wait_peers<S: BlockStore<String>>(handle: &Handle<S>, n: usize) {
    let deadline = Instant::now() + WAIT;
    let mut events = handle.subscribe();
    loop {
        if handle.peers().await.expect("node running").len() >= n {
            return;
        }
        match timeout_at(deadline, events.recv()).await {
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("node stopped"),
            Err(_) => panic!("timed out waiting for {n} peers"),
        }
    }
}

/// Waits for an event matching `pred` on `events`, returning it.
pub(crate) async fn wait_event(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("node stopped: {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Mines one block at the node, retrying if a block from elsewhere moved the tip.
pub(crate) async fn mine<S: BlockStore<String>>(handle: &Handle<S>, keys: &Keypair) -> p2p::Mined {
    loop {
        match handle.mine(keys.clone()).await.expect("node running") {
            Ok(mined) => return mined,
            Err(p2p::MineError::TipChanged) => continue,
            Err(e) => panic!("mining failed: {e}"),
        }
    }
}

/// Waits until the node's tip is `hash`.
pub(crate) async fn wait_tip<S: BlockStore<String>>(handle: &Handle<S>, hash: BlockHash) {
    wait_ledger(handle, &format!("tip {hash:#}"), move |l| {
        l.tip().hash == hash
    })
    .await;
}

/// Waits until transaction `id` is pending at the node.
pub(crate) async fn wait_pending<S: BlockStore<String>>(handle: &Handle<S>, id: ledger_core::TxId) {
    wait_ledger(handle, &format!("pending {id:#}"), move |l| {
        l.is_pending(&id)
    })
    .await;
}

pub(crate) async fn balances<S: BlockStore<String>>(
    handle: &Handle<S>,
) -> Vec<(AccountId, Amount)> {
    handle.balances().await.expect("node running")
}
