//! Seeded partition simulation: 5–7 nodes, every pair linked through an in-test TCP
//! proxy that can be cut (a partition) or frozen (a paused node), while a client submits
//! notes and transfers (double spends across partitions included), nodes mine, and
//! nodes restart from their store, gracefully or by being killed. At the end the
//! network heals and must agree on one tip and one state, keep every acknowledged
//! transaction (in the chain, in a mempool, or reported dropped as now invalid) and
//! never apply a double spend.
//!
//! The schedule comes from the seed; network timing does not, so a replay runs the same
//! actions, not necessarily the same interleaving. Replay a failing seed with
//! `SIM_SEED=<seed> cargo test -p p2p --test simulation`; the heavier variant runs with
//! `cargo test -p p2p --test simulation -- --ignored`. Nodes keep their blocks in memory
//! stores shared across restarts, or (one test, and every other heavy seed) in redb
//! data directories.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ledger_core::{AccountId, Amount, Keypair, Transaction, TxId};
use p2p::{BlockStore, NodeEvent, RedbStore, open_ledger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

/// splitmix64: small, seedable, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Up,
    /// Bytes are held, not forwarded: the far side looks paused.
    Frozen,
    /// Connections are closed and new ones refused.
    Cut,
}

/// Forwards connections accepted on `listener` to the current `target`, obeying `state`.
async fn proxy(
    listener: TcpListener,
    target: watch::Receiver<SocketAddr>,
    state: watch::Receiver<LinkState>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((inbound, _)) = accepted else { continue };
        if *state.borrow() == LinkState::Cut {
            continue;
        }
        let to = *target.borrow();
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(Ok(outbound)) = timeout(Duration::from_secs(2), TcpStream::connect(to)).await
            else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ar, aw) = inbound.into_split();
            let (br, bw) = outbound.into_split();
            // Whichever ends first (a side closed, the link cut, the test over) drops
            // both sockets.
            tokio::select! {
                () = pump(ar, bw, state.clone()) => {}
                () = pump(br, aw, state.clone()) => {}
                () = until_cut(state) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Waits until the link is up; `false` if it is cut.
async fn wait_up(state: &mut watch::Receiver<LinkState>) -> bool {
    loop {
        match *state.borrow_and_update() {
            LinkState::Up => return true,
            LinkState::Cut => return false,
            LinkState::Frozen => {}
        }
        if state.changed().await.is_err() {
            return false;
        }
    }
}

async fn until_cut(mut state: watch::Receiver<LinkState>) {
    loop {
        if *state.borrow_and_update() == LinkState::Cut {
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !wait_up(&mut state).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen meanwhile: hold the bytes until the link is up again.
        if !wait_up(&mut state).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Shape of one simulation run.
#[derive(Clone, Copy, Debug)]
struct Shape {
    nodes: usize,
    steps: usize,
}

/// What the event collectors of every node instance saw.
#[derive(Default)]
struct Seen {
    /// Transactions a node reported dropped as invalid on its new chain, or refused
    /// when resubmitted after a restart.
    dropped: HashSet<TxId>,
    /// Bans among honest nodes: there must be none.
    bans: Vec<String>,
}

/// Opens a node's store again (after the previous instance let go of it).
type Reopen<S> = Box<dyn Fn() -> S + Send>;

/// Where the nodes keep their blocks.
#[derive(Clone, Copy, Debug)]
enum Disk {
    /// Memory stores, shared across restarts (fast).
    Memory,
    /// redb databases in temporary data directories (real restarts from disk).
    Redb,
}

struct SimNode<S: BlockStore<String>> {
    name: String,
    reopen: Reopen<S>,
    /// Where the proxies of links into this node forward to.
    target: watch::Sender<SocketAddr>,
    /// The proxies this node dials.
    dials: Vec<SocketAddr>,
    running: Option<TestNode<S>>,
}

struct Sim<S: BlockStore<String>> {
    seed: u64,
    rng: Rng,
    nodes: Vec<SimNode<S>>,
    links: HashMap<(usize, usize), watch::Sender<LinkState>>,
    group: Vec<usize>,
    paused: Vec<bool>,
    seen: Arc<Mutex<Seen>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
    /// Transactions a node accepted (the client was told they are in), with the node
    /// and the step, for the failure report.
    acknowledged: Vec<(Transaction<String>, usize, usize)>,
    /// Steps run so far.
    steps: usize,
    /// What each step did, for the failure report.
    log: Vec<String>,
}

fn sim_config(name: &str, peers: Vec<SocketAddr>) -> p2p::NodeConfig {
    let mut config = config(name);
    config.peers = peers;
    // Peers are reached only through the proxies.
    config.peer_exchange = false;
    config.session.handshake_timeout = Duration::from_secs(2);
    config.session.idle_timeout = Duration::from_secs(3);
    config.session.write_timeout = Duration::from_secs(3);
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(300);
    config
}

fn accounts() -> [Keypair; 4] {
    [alice(), bob(), carol(), dave()]
}

impl<S: BlockStore<String>> Sim<S> {
    async fn new(seed: u64, shape: Shape, stores: Vec<Reopen<S>>) -> Self {
        let stop = CancellationToken::new();
        let placeholder: SocketAddr = "127.0.0.1:9".parse().expect("valid address");
        let mut nodes: Vec<SimNode<S>> = stores
            .into_iter()
            .enumerate()
            .map(|(i, reopen)| SimNode {
                name: format!("sim{i}"),
                reopen,
                target: watch::channel(placeholder).0,
                dials: Vec::new(),
                running: None,
            })
            .collect();
        let mut links = HashMap::new();
        for i in 0..shape.nodes {
            for j in i + 1..shape.nodes {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                nodes[i]
                    .dials
                    .push(listener.local_addr().expect("proxy address"));
                let (state, state_rx) = watch::channel(LinkState::Up);
                tokio::spawn(proxy(
                    listener,
                    nodes[j].target.subscribe(),
                    state_rx,
                    stop.clone(),
                ));
                links.insert((i, j), state);
            }
        }
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            nodes,
            links,
            group: vec![0; shape.nodes],
            paused: vec![false; shape.nodes],
            seen: Arc::default(),
            notify: Arc::new(Notify::new()),
            stop,
            acknowledged: Vec::new(),
            steps: 0,
            log: Vec::new(),
        };
        for i in 0..shape.nodes {
            sim.start(i).await;
        }
        sim
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "simulation seed {}: {what}\nsteps:\n{}",
            self.seed,
            self.log.join("\n")
        )
    }

    fn note_step(&mut self, what: String) {
        self.log.push(format!("{:>4} {what}", self.steps));
    }

    fn handle(&self, i: usize) -> &Handle<S> {
        &self.nodes[i]
            .running
            .as_ref()
            .expect("every node runs between steps")
            .handle
    }

    /// Starts node `i` on its store and points its links at it.
    async fn start(&mut self, i: usize) {
        let node = &self.nodes[i];
        let (ledger, report) =
            open_ledger(genesis(), Notes, (node.reopen)()).expect("store reloads");
        assert!(report.is_clean(), "seed {}: {:?}", self.seed, report.failed);
        let running = start_with(sim_config(&node.name, node.dials.clone()), ledger).await;
        let mut events = running.handle.subscribe();
        let seen = Arc::clone(&self.seen);
        let notify = Arc::clone(&self.notify);
        let name = node.name.clone();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        seen.lock()
                            .expect("not poisoned")
                            .bans
                            .push(format!("{name}: collector lagged by {n} events"));
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                match &event {
                    NodeEvent::TipChanged(change) => {
                        let mut seen = seen.lock().expect("not poisoned");
                        seen.dropped.extend(change.dropped.iter().map(|e| e.tx()));
                    }
                    NodeEvent::PeerBanned { addr, offence, .. } => {
                        seen.lock()
                            .expect("not poisoned")
                            .bans
                            .push(format!("{name} banned {addr}: {offence}"));
                    }
                    _ => {}
                }
                notify.notify_one();
            }
        });
        self.nodes[i].target.send_replace(running.addr);
        self.nodes[i].running = Some(running);
    }

    /// The state every link should be in.
    fn apply_links(&self) {
        for (&(i, j), link) in &self.links {
            let state = if self.group[i] != self.group[j] {
                LinkState::Cut
            } else if self.paused[i] || self.paused[j] {
                LinkState::Frozen
            } else {
                LinkState::Up
            };
            link.send_if_modified(|s| std::mem::replace(s, state) != state);
        }
    }

    /// Waits (on node events, until `limit`) for `check` to hold; whether it did.
    async fn wait_until<F, Fut>(&self, limit: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if check().await {
                return true;
            }
            if timeout_at(deadline, self.notify.notified()).await.is_err() {
                return check().await;
            }
        }
    }

    async fn step(&mut self) {
        let n = self.nodes.len();
        self.steps += 1;
        match self.rng.below(100) {
            0..=44 => self.submit().await,
            45..=61 => self.mine().await,
            62..=69 => {
                // A random partition into two or three groups.
                let groups = 2 + self.rng.below(2);
                for g in 0..n {
                    self.group[g] = self.rng.below(groups);
                }
                self.note_step(format!("partition {:?}", self.group));
                self.apply_links();
            }
            70..=77 => {
                self.group = vec![0; n];
                self.note_step("heal".into());
                self.apply_links();
            }
            78..=83 => {
                let i = self.rng.below(n);
                self.paused[i] = true;
                self.note_step(format!("pause node {i}"));
                self.apply_links();
            }
            84..=91 => {
                self.paused = vec![false; n];
                self.note_step("resume all".into());
                self.apply_links();
            }
            _ => {
                let i = self.rng.below(n);
                let crash = self.rng.chance(50);
                self.note_step(format!(
                    "{} node {i}",
                    if crash { "crash" } else { "restart" }
                ));
                self.restart(i, crash).await;
            }
        }
    }

    /// The client submits a note or a transfer, with the nonce the node suggests.
    async fn submit(&mut self) {
        let i = self.rng.below(self.nodes.len());
        let keys = accounts();
        let author = keys[self.rng.below(keys.len())].clone();
        let account = author.account();
        let handle = self.handle(i).clone();
        let nonce = handle
            .query(move |l| l.next_nonce(&account))
            .await
            .expect("running");
        let tx = if self.rng.chance(65) {
            let to = &keys[self.rng.below(keys.len())];
            let amount = 1 + self.rng.below(600) as u64;
            transfer(&author, nonce, to, amount)
        } else {
            note(&author, nonce, &format!("note {}", self.rng.next() % 1000))
        };
        if let Ok(_id) = handle
            .submit_transaction(tx.clone())
            .await
            .expect("running")
        {
            self.note_step(format!("node {i} acknowledged {}", tx.id()));
            self.acknowledged.push((tx, i, self.steps));
        }
    }

    /// A random node mines a block; the client waits (bounded, not required) for the
    /// miner's group to agree on one tip, so that groups build real branches. (The
    /// block itself may lose: a node just restarted mines before it has caught up.)
    async fn mine(&mut self) {
        let i = self.rng.below(self.nodes.len());
        let keys = accounts();
        let miner = keys[self.rng.below(keys.len())].clone();
        let mined = mine(self.handle(i), &miner).await;
        self.note_step(format!("node {i} mined {} at {}", mined.hash, mined.height));
        let group: Vec<Handle<S>> = (0..self.nodes.len())
            .filter(|&j| self.group[j] == self.group[i] && !self.paused[j] && !self.paused[i])
            .map(|j| self.handle(j).clone())
            .collect();
        self.wait_until(Duration::from_secs(2), || one_tip(group.clone()))
            .await;
    }

    /// Stops node `i` (killed if `crash`) and starts it again on its store; the client
    /// resubmits what was pending there, as authors do after a restart (the mempool is
    /// not persisted).
    async fn restart(&mut self, i: usize, crash: bool) {
        let Some(node) = self.nodes[i].running.take() else {
            return;
        };
        let pending = node.handle.pending().await.expect("running");
        if crash {
            node.node.abort();
            let _ = node.node.join().await;
        } else {
            node.stop().await;
        }
        self.start(i).await;
        let handle = self.handle(i).clone();
        for tx in pending {
            let id = tx.id();
            if handle
                .submit_transaction(tx)
                .await
                .expect("running")
                .is_err()
            {
                self.seen.lock().expect("not poisoned").dropped.insert(id);
            }
        }
    }

    /// Heals everything and checks the end state.
    async fn finish(mut self) {
        let n = self.nodes.len();
        self.group = vec![0; n];
        self.paused = vec![false; n];
        self.apply_links();
        let handles: Vec<Handle<S>> = (0..n).map(|i| self.handle(i).clone()).collect();
        let connected = self
            .wait_until(WAIT, || {
                let handles = handles.clone();
                async move {
                    for handle in &handles {
                        if handle.peers().await.map_or(0, |p| p.len()) < n - 1 {
                            return false;
                        }
                    }
                    true
                }
            })
            .await;
        if !connected {
            self.fail("the healed network did not reconnect");
        }
        // One more block after the heal: every node hears of the winning chain.
        let miner = self.rng.below(n);
        mine(&handles[miner], &carol()).await;
        let one_tip = self.wait_until(WAIT, || one_tip(handles.clone())).await;
        if !one_tip {
            let mut tips = Vec::new();
            for handle in &handles {
                tips.push(handle.tip().await.expect("running"));
            }
            self.fail(&format!("nodes did not converge: {tips:?}"));
        }

        // One state, equal to a replay, constant supply, no nonce used twice.
        let supply: u64 = genesis().balances.iter().map(|(_, a)| a.0).sum();
        let reference = handles[0]
            .query(|l| l.state().clone())
            .await
            .expect("running");
        let mut pending = HashSet::new();
        for (i, handle) in handles.iter().enumerate() {
            let (state, replay_ok, total) = handle
                .query(|l| {
                    let total: Option<u64> = l
                        .state()
                        .balances()
                        .try_fold(0u64, |sum, (_, b)| sum.checked_add(b.0));
                    (
                        l.state().clone(),
                        l.replay_from_genesis().is_ok_and(|s| &s == l.state()),
                        total,
                    )
                })
                .await
                .expect("running");
            if state != reference {
                self.fail(&format!("node {i} has another state"));
            }
            if !replay_ok {
                self.fail(&format!("node {i}: state differs from a replay"));
            }
            if total != Some(supply) {
                self.fail(&format!("node {i}: supply {total:?}, expected {supply}"));
            }
            pending.extend(
                handle
                    .pending()
                    .await
                    .expect("running")
                    .iter()
                    .map(Transaction::id),
            );
        }
        let chain_txs: Vec<(TxId, AccountId, u64)> = handles[0]
            .query(|l| {
                l.main_chain()
                    .iter()
                    .skip(1)
                    .flat_map(|h| {
                        let block = l
                            .block(h)
                            .expect("store reads")
                            .expect("best-chain block stored");
                        block
                            .transactions
                            .iter()
                            .map(|t| (t.id(), t.author, t.nonce))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .await
            .expect("running");
        let mut nonces = HashSet::new();
        let in_chain: HashSet<TxId> = chain_txs.iter().map(|(id, _, _)| *id).collect();
        for (id, author, nonce) in &chain_txs {
            if !nonces.insert((*author, *nonce)) {
                self.fail(&format!("{author} nonce {nonce} applied twice (tx {id})"));
            }
        }
        if in_chain.len() != chain_txs.len() {
            self.fail("a transaction is in the chain twice");
        }
        let (bans, dropped) = {
            let seen = self.seen.lock().expect("not poisoned");
            (seen.bans.clone(), seen.dropped.clone())
        };
        if !bans.is_empty() {
            self.fail(&format!("honest nodes banned each other: {bans:?}"));
        }
        for (tx, node, step) in &self.acknowledged {
            let id = tx.id();
            if !(in_chain.contains(&id) || pending.contains(&id) || dropped.contains(&id)) {
                self.fail(&format!(
                    "acknowledged {id} ({} nonce {}) by node {node} at step {step} was lost",
                    tx.author, tx.nonce
                ));
            }
        }
        let balances = handles[0].balances().await.expect("running");
        assert!(
            balances.iter().all(|(_, b)| *b <= Amount(supply)),
            "seed {}",
            self.seed
        );
        eprintln!(
            "simulation seed {}: {} nodes, height {}, {} acknowledged, {} in the chain, {} pending, {} reported dropped",
            self.seed,
            n,
            handles[0].tip().await.expect("running").height,
            self.acknowledged.len(),
            in_chain.len(),
            pending.len(),
            dropped.len()
        );
        self.stop.cancel();
        for node in self.nodes {
            if let Some(running) = node.running {
                running.stop().await;
            }
        }
    }
}

/// Whether the nodes all have the same tip.
async fn one_tip<S: BlockStore<String>>(handles: Vec<Handle<S>>) -> bool {
    let mut tips = HashSet::new();
    for handle in &handles {
        match handle.tip().await {
            Ok(tip) => tips.insert(tip.hash),
            Err(_) => return false,
        };
    }
    tips.len() <= 1
}

async fn simulate(seed: u64, shape: Shape, disk: Disk) {
    eprintln!(
        "simulation seed {seed} ({} nodes, {} steps); replay: SIM_SEED={seed} cargo test -p p2p --test simulation",
        shape.nodes, shape.steps
    );
    match disk {
        Disk::Memory => {
            let stores = (0..shape.nodes)
                .map(|_| {
                    let store = Store::new();
                    Box::new(move || store.clone()) as Reopen<Store>
                })
                .collect();
            run(Sim::new(seed, shape, stores).await, shape).await;
        }
        Disk::Redb => {
            let dirs: Vec<tempfile::TempDir> = (0..shape.nodes)
                .map(|_| tempfile::tempdir().expect("temp dir"))
                .collect();
            let stores = dirs
                .iter()
                .map(|dir| {
                    let path = dir.path().to_path_buf();
                    Box::new(move || RedbStore::open(&path).expect("store opens"))
                        as Reopen<RedbStore<String>>
                })
                .collect();
            run(Sim::new(seed, shape, stores).await, shape).await;
            drop(dirs);
        }
    }
}

async fn run<S: BlockStore<String>>(mut sim: Sim<S>, shape: Shape) {
    for _ in 0..shape.steps {
        sim.step().await;
    }
    sim.finish().await;
}

/// `SIM_SEED` if set, else `defaults`.
fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.trim().parse().expect("SIM_SEED is a number")],
        Err(_) => defaults.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_partitions_converge_without_loss_or_double_spend() {
    for seed in seeds(&[1, 2, 3, 4]) {
        let nodes = 5 + (seed % 3) as usize;
        simulate(seed, Shape { nodes, steps: 150 }, Disk::Memory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_partitions_with_restarts_from_disk() {
    for seed in seeds(&[11, 12]) {
        simulate(
            seed,
            Shape {
                nodes: 5,
                steps: 120,
            },
            Disk::Redb,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: many seeds, 7 nodes, long schedules"]
async fn heavy_seeded_partitions() {
    let defaults: Vec<u64> = (100..120).collect();
    for seed in seeds(&defaults) {
        simulate(
            seed,
            Shape {
                nodes: 7,
                steps: 400,
            },
            if seed % 2 == 0 {
                Disk::Memory
            } else {
                Disk::Redb
            },
        )
        .await;
    }
}
