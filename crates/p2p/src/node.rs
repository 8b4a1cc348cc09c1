//! The node: one task owns the [`Ledger`]; sessions, the listener, dialers, mining
//! jobs and [`NodeHandle`]s talk to it over bounded channels.
//!
//! This file holds the actor's loop and its session, peer and sync handling; its block
//! work (submissions, sync batches, mining and the hand-off to the write queue) is in
//! `node/blocks.rs`. The handle and its types are in `handle.rs`, the sockets in
//! `net.rs`, the reload in `reload.rs`, peer decisions in `peers.rs`, sync decisions in
//! `sync.rs`, write ordering in `persist.rs`. The file is a little over 800 lines
//! because its unit tests and this guide to the node's rules sit with the code.
//!
//! The ledger task is the only place where ledger state changes, so no lock guards it.
//! It does no disk I/O: the ledger writes nothing, the blocks it accepts go to a writer
//! thread through the `WriteQueue` of the `persist` module, and what depends on them
//! being durable (reports, announcements, replies) runs when they are; `GetBlocks`
//! replies are read by the storage thread of the `serve` module.
//! Network decisions are plain structs that take time as an argument, or need none:
//! de-duplication and which faults are misbehaviour in the crate's `gossip` module;
//! peer admission, bans and dial choices in the `PeerTable` of the `peers` module, whose
//! actions (disconnect, ban, dial) this task carries out in `drive_peers`, and each
//! dialer's back-off in its `Redialer`; whom to sync from, when and how many batches at
//! once in the `SyncState` of the `sync` module, whose requests this task sends in
//! `drive_sync` with the ledger's locator. Each handler feeds its input to the state
//! machine, then drains its actions. This module wires them to the sessions and the
//! ledger.
//!
//! # Observed and claimed addresses
//!
//! A peer's `Hello` names the address it listens on, and `Peers` messages name others;
//! anyone can write any address there. So the node tells apart:
//!
//! - the **observed** address of a session: for an inbound connection its remote
//!   socket address, for an outbound one the address this node dialled. It is what
//!   [`PeerInfo::addr`] holds, and the only thing penalties attach to.
//! - **claimed** addresses ([`PeerInfo::listen_addr`], `Peers`): only addresses to try
//!   dialling. They are never banned because of what a connection did, and a session
//!   is never dropped because another connection claimed its address.
//!
//! **Bans** key on the observed address. An inbound connection's remote port is
//! ephemeral, so off loopback the ban covers the whole IP address, as a real node does
//! (Bitcoin Core bans IP addresses): a reconnect from a new port is still refused. On
//! loopback every node of the host shares 127.0.0.1, so there the exact socket address
//! is banned (for an outbound session, the dialled address), and one misbehaving local
//! node does not take its neighbours down with it. A misbehaving peer that claims an
//! honest node's listen address thus bans only its own connection; the honest node's
//! session stays, and its address stays dialable.
//!
//! **Duplicate connections** (two nodes dialling each other at once) are resolved by
//! `gossip::admit`: both ends keep the connection opened by the node with the smaller
//! listen address, as before, but only an outbound session proves where its peer
//! listens. The node with the smaller address closes inbound sessions that claim the
//! address of its outbound session (if the claim is true they are the same peer, if
//! false a spoofer); the node with the larger address never closes a session because of
//! a claim and waits for the other end to close the connection it does not keep. A
//! spoofed duplicate therefore never displaces an established session: it is refused
//! or merely kept beside it. Inbound sessions that claim the same address are all kept,
//! since none proves anything.
//!
//! **Dialling**: configured peers and those given to [`NodeHandle::connect`] are
//! redialled with exponential back-off for as long as the node runs. Addresses learnt
//! from `Peers`, and the claimed address of an inbound peer whose session ended, get a
//! dialer too (at most [`NodeConfig::max_outbound_discovered`] at once, from at most
//! [`limits::MAX_PEER_ADDRS`] remembered addresses) that redials with the same back-off
//! after its session drops, until [`limits::LEARNED_DIAL_FAILURES`] attempts in a row
//! fail. A dialer pauses while a session reaches its address: an outbound session to
//! it, or an inbound one claiming it from the same IP address (a claim from another
//! host cannot stop this node from dialling; on one host nothing tells a true claim
//! from a false one, so a local process can still delay a dial, never drop a session).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ledger_core::{Block, BlockHash, Ledger, Policy, PreparedBlock, Timestamp, TxId};

mod admit;
mod blocks;
mod bodies;
mod relay;

use crate::admission::{Admission, Waiting};
use crate::persist::{WriteQueue, Writer};
use blocks::AfterStore;
use bodies::BodyExchange;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

pub use crate::handle::{
    Clock, DisconnectReason, MineError, Mined, NodeConfig, NodeError, NodeEvent, NodeHandle,
    Rewrap, RunningNode, SystemClock, run, spawn,
};
pub use crate::reload::{OpenError, Opened, ReloadFailure, ReloadReport, open_ledger, reload};

use crate::gossip::{self, BanList, Offence, Seen};
use crate::handle::Command;
use crate::limits;
use crate::net::{Shared, dial_loop, listen};
use crate::peers::{PeerAction, PeerTable, Redial};
use crate::protocol::{Hello, Message, TipInfo};
use crate::serve::{ServeJob, Served, Storage, reply_frame};
use crate::session::{Direction, PeerInfo, SessionEvent};
use crate::store::BlockStore;
use crate::sync::{Batch, SyncAction, SyncState};

/// A session as [`gossip::admit`] sees it.
fn link(info: &PeerInfo) -> gossip::Link {
    gossip::Link {
        id: info.id,
        direction: info.direction,
        observed: info.addr,
        claimed: info.listen_addr,
    }
}

/// The longest prefix of `name` (whole characters) that fits the protocol's byte limit.
fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(limits::MAX_NODE_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The tip as announced in `Hello`.
pub(crate) fn tip_info<P: Policy, S: BlockStore<P::Payload>>(ledger: &Ledger<P, S>) -> TipInfo {
    let tip = ledger.tip();
    TipInfo {
        hash: tip.hash,
        height: tip.height,
        work: tip.work,
        final_height: tip.final_height,
    }
}

struct Peer {
    info: PeerInfo,
    outbound: mpsc::Sender<Bytes>,
}

/// A sync batch on its way to signature verification, off the ledger task.
struct SyncBatch<T> {
    peer: u64,
    blocks: Vec<Arc<Block<T>>>,
}

/// A sync batch back from verification, to be applied on the ledger task: each block
/// prepared (hashed) and carrying whether all its signatures verified.
struct VerifiedBatch<T> {
    peer: u64,
    blocks: Vec<PreparedBlock<T>>,
}

struct MiningJob<E> {
    id: u64,
    tip: BlockHash,
    token: CancellationToken,
    reply: oneshot::Sender<Result<Mined, MineError<E>>>,
}

struct MinedBlock<T> {
    job: u64,
    block: Block<T>,
}

/// The ledger task's state.
struct NodeTask<P: Policy, S: BlockStore<P::Payload>> {
    ledger: Ledger<P, S>,
    shared: Arc<Shared<P::Payload>>,
    events: broadcast::Sender<NodeEvent<P::Error>>,
    hello: watch::Sender<Hello>,
    peers: HashMap<u64, Peer>,
    seen_txs: Seen<TxId>,
    seen_blocks: Seen<BlockHash>,
    /// Admission, bans and dial choices; this task carries out its [`PeerAction`]s.
    table: PeerTable<P::Error>,
    mining: Option<MiningJob<P::Error>>,
    next_job: u64,
    /// Since when transactions have waited in the mempool without a break, as the
    /// pace last saw (see [`crate::pace`]).
    pending_since: Option<Timestamp>,
    mined_tx: mpsc::Sender<MinedBlock<P::Payload>>,
    /// Whom to sync from, when and how much; this task carries out its
    /// [`SyncAction`]s.
    sync: SyncState,
    /// Sync batches for the verifier task, in the order they arrived.
    to_verify: mpsc::Sender<SyncBatch<P::Payload>>,
    /// Orders the writes of accepted blocks and what waits for them.
    writes: WriteQueue<P::Payload, AfterStore<P>>,
    /// Carries out the writes, one at a time, off this task.
    writer: Writer<P::Payload>,
    /// The store failed: the node stops with it.
    failure: Option<NodeError>,
    /// Sealed bodies: what to push, pull, serve and keep (see [`bodies`]).
    bodies: BodyExchange,
    /// Transactions waiting for their signature check and the mempool (see [`admit`]).
    admission: Admission<P::Payload>,
    /// Blocks announced compact, waiting for transactions (see [`relay`]).
    reassembly: crate::compact::Reassembly<P::Payload>,
    /// Client submissions waiting for their verdicts, by ticket.
    clients: HashMap<u64, admit::Client<P>>,
    /// Admission batches for the verifier task.
    to_admit: mpsc::Sender<Vec<Waiting<P::Payload>>>,
    /// Reads `GetBlocks` replies off this task. Declared last: dropped after the
    /// ledger, it waits for the read under way (see [`Storage`]).
    storage: Storage<P::Payload>,
}

pub(crate) async fn node_main<P: Policy, S: BlockStore<P::Payload>>(
    listener: TcpListener,
    config: NodeConfig,
    ledger: Ledger<P, S>,
    shutdown: CancellationToken,
    mut commands: mpsc::Receiver<Command<P, S>>,
    events: broadcast::Sender<NodeEvent<P::Error>>,
) -> Result<(), NodeError> {
    let local_addr = listener.local_addr().map_err(NodeError::Listener)?;
    // Children stop when the node does, whether by shutdown or by this future being
    // dropped (an aborted task): the guard cancels them either way.
    let token = shutdown.child_token();
    let _guard = token.clone().drop_guard();
    let advertised = config.advertise_addr.unwrap_or(local_addr);
    let hello = Hello {
        protocol_version: limits::PROTOCOL_VERSION,
        genesis: ledger.genesis_hash(),
        node_name: truncate_name(&config.name),
        listen_addr: Some(advertised),
        tip: tip_info(&ledger),
        // Each connection draws its own.
        challenge: [0; 32],
    };
    let (hello_tx, hello_rx) = watch::channel(hello);
    let (to_node, mut session_rx) = mpsc::channel(limits::NODE_INPUT_QUEUE);
    let (mined_tx, mut mined_rx) = mpsc::channel(4);
    // Every batch in these queues counts against `limits::SYNC_BATCHES`, so they never
    // fill (see `SyncState::load`).
    let (to_verify, verify_rx) = mpsc::channel(limits::SYNC_BATCHES);
    let (verified_tx, mut verified_rx) = mpsc::channel(limits::SYNC_BATCHES);
    // `Storage` keeps at most this many replies outstanding, so the thread never waits.
    let (served_tx, mut served_rx) = mpsc::channel(limits::SERVE_QUEUE);
    // The write queue keeps at most one write outstanding.
    let (written_tx, mut written_rx) = mpsc::channel(1);
    let (vault_tx, mut vault_rx) = bodies::vault_channel();
    // One admission batch is under way at a time (see `Admission`).
    let (to_admit, admit_rx) = mpsc::channel(1);
    let (admitted_tx, mut admitted_rx) = mpsc::channel(1);
    let writer = Writer::start(ledger.store().writer()?, written_tx).map_err(NodeError::Writer)?;
    let mut ledger = ledger;
    // A ledger may come with blocks accepted before the node had it (built by a tool
    // or a test): they are stored before the node serves or announces anything.
    let unstored: Vec<_> = ledger.unstored_blocks().cloned().collect();
    if !unstored.is_empty() {
        let hashes: Vec<BlockHash> = unstored.iter().map(|b| b.hash()).collect();
        writer.write(unstored)?;
        match written_rx.recv().await {
            Some(Ok(())) => ledger.mark_stored(hashes),
            Some(Err(failure)) => return Err(failure.into()),
            None => return Err(NodeError::Store(crate::store::StoreError::Closed)),
        }
    }
    let shared = Arc::new(Shared {
        session: config.session,
        hello: hello_rx,
        to_node,
        bans: Mutex::new(BanList::default()),
        connected: Mutex::new(HashSet::new()),
        next_id: AtomicU64::new(1),
        inbound: Arc::new(Semaphore::new(config.max_inbound)),
        tracker: TaskTracker::new(),
        token: token.clone(),
        config,
    });
    shared.tracker.spawn(listen(Arc::clone(&shared), listener));
    shared.tracker.spawn(admit::verify_admissions(
        ledger_core::Screen::new(ledger.genesis()),
        admit_rx,
        admitted_tx,
        token.clone(),
    ));
    shared.tracker.spawn(verify_batches(
        ledger_core::Screen::new(ledger.genesis()),
        verify_rx,
        verified_tx,
        token.clone(),
    ));
    for addr in shared.config.peers.clone() {
        shared
            .tracker
            .spawn(dial_loop(Arc::clone(&shared), addr, Redial::Always));
    }
    info!(name = %shared.config.name, %local_addr, "node started");
    let mut node = NodeTask {
        ledger,
        shared: Arc::clone(&shared),
        events,
        hello: hello_tx,
        peers: HashMap::new(),
        seen_txs: Seen::new(limits::MAX_SEEN),
        seen_blocks: Seen::new(limits::MAX_SEEN),
        table: PeerTable::new(
            Some(advertised),
            &shared.config.peers,
            shared.config.peer_exchange,
            shared.config.max_outbound_discovered,
            shared.config.ban_duration,
        ),
        mining: None,
        next_job: 0,
        pending_since: None,
        mined_tx,
        sync: SyncState::new(),
        to_verify,
        writes: WriteQueue::default(),
        writer,
        failure: None,
        bodies: BodyExchange::new(bodies::keeper(&shared.config), vault_tx),
        admission: Admission::default(),
        reassembly: crate::compact::Reassembly::default(),
        clients: HashMap::new(),
        to_admit,
        storage: Storage::start(served_tx),
    };
    // Blocks at a pace: checked several times an interval (see `pace`).
    let mut pace = node.pace_timer();
    let mut result = Ok(());
    loop {
        let admission_due = node.admission.deadline();
        tokio::select! {
            _ = tick(&mut pace) => node.on_pace(),
            () = wake_at(admission_due) => node.drive_admission(),
            () = token.cancelled() => break,
            Some(command) = commands.recv() => node.on_command(command),
            Some(event) = session_rx.recv() => node.on_session(event),
            Some(mined) = mined_rx.recv() => node.on_mined(mined),
            Some(batch) = verified_rx.recv() => node.on_verified(batch),
            Some(served) = served_rx.recv() => node.on_served(served),
            Some(written) = written_rx.recv() => node.on_written(written),
            Some(done) = vault_rx.recv() => node.on_vault_done(done),
            Some(admitted) = admitted_rx.recv() => node.on_admitted(admitted),
        }
        if let Some(failure) = node.failure.take() {
            result = Err(failure);
            break;
        }
    }
    info!(name = %shared.config.name, "node stopping");
    if let Some(job) = node.mining.take() {
        job.token.cancel();
        let _ = job.reply.send(Err(MineError::Stopped));
    }
    // Closing the queues first releases any session blocked on sending to the node.
    node.peers.clear();
    drop(session_rx);
    drop(commands);
    drop(mined_rx);
    drop(verified_rx);
    drop(served_rx);
    drop(written_rx);
    drop(vault_rx);
    drop(admitted_rx);
    // Blocks accepted and not yet handed to the writer are written now (unless the
    // store failed); dropping the node then waits for the writer thread. What waited
    // for them is not run: nobody hears of a block as the node stops.
    let unwritten = node.writes.take_unwritten();
    if result.is_ok()
        && !unwritten.is_empty()
        && let Err(e) = node.writer.write(unwritten)
    {
        warn!(error = %e, "cannot write the last accepted blocks");
    }
    // Children stop on the token, also when the loop ended on a store failure.
    token.cancel();
    shared.tracker.close();
    shared.tracker.wait().await;
    // Dropping the writer waits for its last write; dropping the ledger closes the store.
    drop(node);
    result
}

/// Sleeps until `at`; forever without one.
async fn wake_at(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The next tick of the pace timer; never, without one.
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Prepares sync batches and verifies their signatures on the blocking pool (on every
/// core), one batch at a time and in arrival order, while the ledger task applies the
/// previous one. Pure work on the blocks (`ledger_core::Screen::prepare_and_verify`):
/// results go back to the ledger task as messages, and the ledger trusts a block's
/// verified signatures only for its own genesis. A block that fails the cheap checks
/// (work, authorised producer, entry counts) has no signature verified here: a peer
/// that answers a sync with such blocks costs a hash per block, and the ledger refuses
/// them before their signatures.
async fn verify_batches<T>(
    screen: ledger_core::Screen,
    batches: mpsc::Receiver<SyncBatch<T>>,
    verified: mpsc::Sender<VerifiedBatch<T>>,
    token: CancellationToken,
) where
    T: serde::Serialize + Send + Sync + 'static,
{
    in_order_off_the_ledger(
        batches,
        verified,
        token,
        "signature verification",
        |SyncBatch { peer, blocks }| (peer, blocks),
        move |peer, blocks| VerifiedBatch {
            peer,
            blocks: screen.prepare_and_verify(&blocks),
        },
        // The blocks are lost with the panicking job; the ledger task still hears of
        // the batch, to release its place, and refetches what it lacks.
        |peer| VerifiedBatch {
            peer,
            blocks: Vec::new(),
        },
    )
    .await;
}

/// Runs `work` on each job from `jobs` on the blocking pool, one at a time and in
/// arrival order, and sends each result to `done`: how the verifier tasks work beside
/// the ledger task. `split` takes from a job what survives it (`L`), so that a job
/// that panics is answered with `lost` instead and the ledger task still hears of it.
/// Stops when the token is cancelled or either channel closes.
async fn in_order_off_the_ledger<I, L, J, O>(
    mut jobs: mpsc::Receiver<I>,
    done: mpsc::Sender<O>,
    token: CancellationToken,
    what: &'static str,
    split: impl Fn(I) -> (L, J),
    work: impl Fn(L, J) -> O + Clone + Send + 'static,
    lost: impl Fn(L) -> O,
) where
    L: Copy + Send + 'static,
    J: Send + 'static,
    O: Send + 'static,
{
    loop {
        let job = tokio::select! {
            () = token.cancelled() => return,
            job = jobs.recv() => job,
        };
        let Some(job) = job else { return };
        let (left, job) = split(job);
        let run = work.clone();
        let running = tokio::task::spawn_blocking(move || run(left, job));
        let result = tokio::select! {
            () = token.cancelled() => return,
            result = running => result,
        };
        let result = result.unwrap_or_else(|e| {
            error!(error = %e, "{what} failed");
            lost(left)
        });
        if done.send(result).await.is_err() {
            return;
        }
    }
}

impl<P: Policy, S: BlockStore<P::Payload>> NodeTask<P, S> {
    fn now(&self) -> Timestamp {
        self.shared.config.clock.now()
    }

    fn emit(&self, event: NodeEvent<P::Error>) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, command: Command<P, S>) {
        match command {
            Command::Submit { txs, reply } => self.submit(txs, reply),
            Command::SubmitBlock { block, reply } => {
                // Answered once the block, if accepted, is durable.
                let result = self.handle_block(block, None);
                self.after_store(&[], AfterStore::Submitted { reply, result });
            }
            Command::Mine { keys, reply } => self.start_mining(keys, reply),
            Command::Query(query) => query(&self.ledger),
            Command::Peers(reply) => {
                let mut peers: Vec<PeerInfo> =
                    self.peers.values().map(|p| p.info.clone()).collect();
                peers.sort_by_key(|p| p.id);
                let _ = reply.send(peers);
            }
            Command::Sync(reply) => {
                let peers = self.sync.request_sync_all();
                self.drive_sync();
                let _ = reply.send(peers);
            }
            Command::FetchBodies(refs) => self.fetch_bodies(refs),
            Command::Connect(addr) => {
                self.table.connect(addr);
                self.drive_peers();
            }
            Command::Banned(addr, reply) => {
                let _ = reply.send(self.table.is_banned(addr, Instant::now()));
            }
        }
    }

    fn on_session(&mut self, event: SessionEvent<P::Payload>) {
        match event {
            SessionEvent::Up {
                info,
                outbound,
                kept,
            } => self.peer_up(info, outbound, kept),
            SessionEvent::DialerStopped { addr } => self.dialer_stopped(addr),
            SessionEvent::Message { id, message } => self.on_message(id, message),
            SessionEvent::Down {
                id,
                addr,
                listen,
                error,
            } => match id.and_then(|id| self.remove_peer(id)) {
                Some(peer) => {
                    let inbound = peer.info.direction == Direction::Inbound;
                    let offence = error.as_ref().and_then(gossip::session_offence);
                    match offence {
                        Some(offence) => {
                            self.emit(NodeEvent::PeerDown {
                                info: peer.info.clone(),
                                reason: DisconnectReason::Banned(offence.clone()),
                            });
                            self.ban(addr, offence);
                        }
                        None => self.emit(NodeEvent::PeerDown {
                            info: peer.info,
                            reason: error
                                .map_or(DisconnectReason::Closed, DisconnectReason::Session),
                        }),
                    }
                    // An inbound peer's address is only claimed: dial it (if nobody
                    // does) to find out, and to get the peer back.
                    if let Some(listen) = listen.filter(|_| inbound) {
                        self.table.handle_learned(Instant::now(), listen);
                        self.drive_peers();
                    }
                }
                None if id.is_none() => {
                    let Some(error) = error else { return };
                    match gossip::session_offence(&error) {
                        Some(offence) => self.ban(addr, offence),
                        None => self.emit(NodeEvent::PeerRefused {
                            addr,
                            reason: error,
                        }),
                    }
                }
                // Already removed by this node, which reported why.
                None => {}
            },
        }
    }

    /// A session finished its handshake: keeps it unless it is this node itself, its
    /// observed address is banned, or [`gossip::admit`] finds it a duplicate.
    fn peer_up(
        &mut self,
        info: PeerInfo,
        outbound: mpsc::Sender<Bytes>,
        kept: oneshot::Sender<()>,
    ) {
        if let Err(reason) = self.table.handle_up(Instant::now(), link(&info)) {
            match reason {
                DisconnectReason::SelfConnection => {
                    debug!(addr = %info.addr, "dropping connection to self");
                }
                DisconnectReason::Duplicate => {
                    debug!(addr = %info.addr, "dropping a second connection to a peer");
                }
                _ => {}
            }
            self.emit(NodeEvent::PeerDown { info, reason });
            return;
        }
        // Closes the sessions the new one makes redundant.
        self.drive_peers();
        let id = info.id;
        info!(peer = %info.addr, name = %info.name, height = %info.tip.height, "peer up");
        // Tells a dialer the session was kept; its task may be gone already.
        let _ = kept.send(());
        self.sync
            .handle_peer_up(id, &info.tip, &tip_info(&self.ledger));
        self.peers.insert(
            id,
            Peer {
                info: info.clone(),
                outbound,
            },
        );
        self.publish_connected();
        self.emit(NodeEvent::PeerUp(info));
        if self.shared.config.peer_exchange {
            self.send(id, &Message::GetPeers);
        }
        // The sync request, if the peer's tip wins, goes after `GetPeers`.
        self.drive_sync();
        self.bodies_peer_up(id);
    }

    fn on_message(&mut self, id: u64, message: Message<P::Payload>) {
        let Some(from) = self.peers.get(&id).map(|p| p.info.addr) else {
            // A message still queued from a peer this node already dropped.
            return;
        };
        match message {
            Message::Tx(tx) => self.on_relayed(id, vec![tx]),
            Message::Txs(txs) => self.on_relayed(id, txs),
            Message::Block(block) => {
                let hash = block.hash();
                if !self.seen_blocks.record(hash) || self.ledger.knows_block(&hash) {
                    return;
                }
                self.on_block(id, block);
            }
            Message::CompactBlock(compact) => self.on_compact(id, compact),
            Message::GetBlockTxs { block, indexes } => self.on_get_block_txs(id, block, indexes),
            Message::BlockTxs { block, txs } => self.on_block_txs(id, block, txs),
            Message::GetBlocks { locator, limit } => self.serve_blocks(id, &locator, limit),
            Message::Blocks(blocks) => self.on_blocks(id, blocks),
            Message::GetPeers => {
                let addrs = self.table.addrs_for(id);
                self.send(id, &Message::Peers(addrs));
            }
            Message::Peers(addrs) => self.on_peers(addrs),
            Message::Bodies(bodies) => self.on_bodies(id, bodies),
            Message::GetBodies(hashes) => self.on_get_bodies(id, hashes),
            Message::Denied(hashes) => self.on_denied(id, hashes),
            Message::Hello(_) | Message::KeyProof(_) | Message::Ping(_) | Message::Pong(_) => {
                // Sessions handle these; they never reach the node.
                debug!(%from, "unexpected session message at the node");
            }
        }
    }

    fn on_peers(&mut self, addrs: Vec<SocketAddr>) {
        self.table.handle_peers(Instant::now(), addrs);
        self.drive_peers();
    }

    /// A learnt address's dialer gave up.
    fn dialer_stopped(&mut self, addr: SocketAddr) {
        self.table.handle_dialer_stopped(Instant::now(), addr);
        self.drive_peers();
    }

    /// Carries out the peer table's decisions, in order (see [`PeerTable`]).
    fn drive_peers(&mut self) {
        while let Some(action) = self.table.poll_action() {
            match action {
                PeerAction::Disconnect { id, reason } => self.drop_peer(id, reason),
                PeerAction::Ban {
                    addr,
                    at,
                    duration,
                    offence,
                } => {
                    self.shared.ban(addr, at, duration);
                    self.emit(NodeEvent::PeerBanned {
                        addr,
                        duration,
                        offence,
                    });
                }
                PeerAction::Dial { addr, redial } => {
                    let shared = Arc::clone(&self.shared);
                    self.shared.tracker.spawn(dial_loop(shared, addr, redial));
                }
            }
        }
    }

    fn send(&mut self, id: u64, message: &Message<P::Payload>) {
        let frame = Bytes::from(message.encode());
        self.send_frame(id, frame);
    }

    fn send_frame(&mut self, id: u64, frame: Bytes) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        match peer.outbound.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(peer = %peer.info.addr, "outbound queue full, dropping the peer");
                self.disconnect(id, DisconnectReason::SlowPeer(limits::OUTBOUND_QUEUE));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The session is ending; its `Down` will follow.
            }
        }
    }

    fn broadcast(&mut self, frame: &Bytes, except: Option<u64>) {
        let ids: Vec<u64> = self
            .peers
            .keys()
            .copied()
            .filter(|id| Some(*id) != except)
            .collect();
        for id in ids {
            self.send_frame(id, frame.clone());
        }
    }

    /// Tells the dialers which listen addresses the sessions reach.
    fn publish_connected(&self) {
        self.shared.set_connected(self.table.reached());
    }

    /// Removes session `id` from the sessions, the peer table and the sync; sends the
    /// sync requests that waited for the room it held.
    fn remove_peer(&mut self, id: u64) -> Option<Peer> {
        self.table.handle_down(id);
        self.admission.forget_peer(id);
        self.reassembly.forget_peer(id);
        let removed = self.peers.remove(&id);
        self.publish_connected();
        if removed.is_some() {
            self.sync.handle_peer_down(id);
            self.drive_sync();
        }
        removed
    }

    /// Drops session `id` (this node's decision) and reports it down for `reason`.
    fn disconnect(&mut self, id: u64, reason: DisconnectReason<P::Error>) {
        self.table.handle_down(id);
        self.drop_peer(id, reason);
    }

    /// Carries out a disconnection the peer table knows of already.
    fn drop_peer(&mut self, id: u64, reason: DisconnectReason<P::Error>) {
        self.admission.forget_peer(id);
        self.reassembly.forget_peer(id);
        if let Some(peer) = self.peers.remove(&id) {
            self.publish_connected();
            self.emit(NodeEvent::PeerDown {
                info: peer.info,
                reason,
            });
            self.sync.handle_peer_down(id);
            self.drive_sync();
        }
    }

    /// Disconnects a peer for misbehaviour and bans its observed address.
    fn punish(&mut self, id: u64, offence: Offence<P::Error>) {
        let Some(addr) = self.peers.get(&id).map(|p| p.info.addr) else {
            return;
        };
        warn!(peer = %addr, %offence, "peer misbehaved");
        self.table.handle_misbehaved(Instant::now(), id, offence);
        self.drive_peers();
    }

    /// Bans the observed address `addr` and drops the other sessions the ban covers
    /// (see [`PeerTable::handle_offence`]).
    fn ban(&mut self, addr: SocketAddr, offence: Offence<P::Error>) {
        self.table.handle_offence(Instant::now(), addr, offence);
        self.drive_peers();
    }

    /// Carries out the sync decisions, in order (see [`SyncState`]): sends each
    /// `GetBlocks` with this node's locator, headed by the block to continue after.
    fn drive_sync(&mut self) {
        while let Some(action) = self.sync.poll_action() {
            match action {
                SyncAction::Request { peer, after, limit } => {
                    let mut locator = self.ledger.locator();
                    if let Some(after) = after {
                        locator.insert(0, after);
                        locator.truncate(limits::MAX_LOCATOR_HASHES);
                    }
                    self.send(peer, &Message::GetBlocks { locator, limit });
                }
            }
        }
    }

    /// Answers a `GetBlocks`: picks the best-chain hashes here, and has the storage
    /// thread read and encode the blocks (see [`crate::serve`]); when it is busy, reads
    /// them here.
    fn serve_blocks(&mut self, id: u64, locator: &[BlockHash], limit: u32) {
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(limits::MAX_BLOCKS_PER_REPLY);
        let mut hashes = self.ledger.hashes_after(locator, limit);
        // Blocks still on their way to the disk are not served, as they are not
        // announced: the reply stops before the first one.
        if let Some(end) = hashes.iter().position(|h| self.ledger.is_unstored(h)) {
            hashes.truncate(end);
        }
        if let Some(reader) = self.ledger.store().reader() {
            let job = ServeJob {
                peer: id,
                hashes,
                reader,
            };
            match self.storage.try_serve(job) {
                Ok(()) => return,
                Err(job) => hashes = job.hashes,
            }
        }
        let frame = reply_frame(&hashes, |hash| self.ledger.block(hash));
        self.send_frame(id, frame);
    }

    /// The storage thread read a reply: queues it for its peer, if still connected.
    fn on_served(&mut self, served: Served) {
        self.storage.served();
        self.send_frame(served.peer, served.frame);
    }

    /// A sync batch arrived: asks for the next one at once (pipelining), and hands
    /// this one to the verifier task; [`NodeTask::on_verified`] applies it.
    fn on_blocks(&mut self, id: u64, blocks: Vec<Block<P::Payload>>) {
        match self.sync.handle_blocks(id, blocks.last().map(Block::hash)) {
            Batch::Unsolicited => {
                if let Some(peer) = self.peers.get(&id) {
                    debug!(peer = %peer.info.addr, "ignoring unsolicited blocks");
                }
                return;
            }
            // The peer has nothing after what was asked: this sync is complete.
            Batch::Complete => return,
            Batch::Verify => {}
        }
        let blocks: Vec<Arc<Block<P::Payload>>> = blocks.into_iter().map(Arc::new).collect();
        match self.to_verify.try_send(SyncBatch { peer: id, blocks }) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(batch) | mpsc::error::TrySendError::Closed(batch),
            ) => {
                // Not expected (the queue has room for every batch held, and the
                // verifier runs as long as the node): verify here instead. The next
                // request is decided already, so orphans in this batch resync after
                // its reply, as when the verifier task does the work.
                warn!("sync verification queue unavailable, verifying on the ledger task");
                let screen = ledger_core::Screen::new(self.ledger.genesis());
                let blocks = screen.prepare_and_verify(&batch.blocks);
                self.on_verified(VerifiedBatch { peer: id, blocks });
            }
        }
        // The peer prepares the next batch while this one is verified and applied; it
        // answers with an empty one when it has no more.
        self.drive_sync();
    }

    /// A sync batch whose signatures were verified: applies it if its peer is still
    /// connected, then sends the requests that waited for room.
    fn on_verified(&mut self, batch: VerifiedBatch<P::Payload>) {
        let orphaned = if self.peers.contains_key(&batch.peer) {
            self.apply_batch(batch.peer, batch.blocks)
        } else {
            // The peer left or was banned (maybe for an earlier batch): drop what it sent.
            debug!(
                peer = batch.peer,
                "dropping a sync batch from a departed peer"
            );
            false
        };
        self.sync.handle_verified(batch.peer, orphaned);
        self.drive_sync();
    }
}

#[cfg(test)]
mod name_tests {
    use super::truncate_name;
    use crate::limits::MAX_NODE_NAME;

    #[test]
    fn names_keep_whole_characters_within_the_byte_limit() {
        assert_eq!(truncate_name("PharmacyNode-5003"), "PharmacyNode-5003");
        let long = "é".repeat(MAX_NODE_NAME);
        let cut = truncate_name(&long);
        assert!(cut.len() <= MAX_NODE_NAME);
        assert_eq!(cut.chars().count(), MAX_NODE_NAME / 2);
    }
}
