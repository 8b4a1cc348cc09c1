//! The node's surface: its configuration, the events it reports, its errors, the
//! commands a [`NodeHandle`] sends to the ledger task, and [`spawn`]/[`run`], which
//! start that task (`crate::node`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::{
    Block, BlockError, BlockHash, BlockHeader, BlockStatus, Height, Keypair, Ledger, Policy,
    Timestamp, TipChange, Transaction, TxError, TxId,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::gossip::Offence;
use crate::limits;
use crate::node::{node_main, tip_info};
use crate::protocol::TipInfo;
use crate::session::{PeerInfo, SessionConfig, SessionError};
use crate::store::{BlockStore, StoreError};
use crate::vault::Vault;
use ledger_core::Hash;
use ledger_core::sealed::{BodyLabel, EncryptionPublicKey, SealedBody, SealedRef};
/// Where the node reads the time it passes to the ledger.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Timestamp(millis)
    }
}

/// How a node runs. [`NodeConfig::new`] gives the defaults of [`crate::limits`].
#[derive(Clone)]
pub struct NodeConfig {
    /// The node's name, sent in `Hello`.
    pub name: String,
    /// The address announced to peers; `None` announces the listener's local address.
    pub advertise_addr: Option<SocketAddr>,
    /// Peers dialled at start and redialled with exponential back-off while the node
    /// runs.
    pub peers: Vec<SocketAddr>,
    /// Frame limit and session timeouts.
    pub session: SessionConfig,
    /// Most inbound connections at once, handshakes included.
    pub max_inbound: usize,
    /// Most dialers at once for addresses learnt from peers (`Peers`, or an inbound
    /// peer's `Hello`).
    pub max_outbound_discovered: usize,
    /// Whether to ask peers for addresses and dial them (and redial the address an
    /// inbound peer claimed once its session ends).
    pub peer_exchange: bool,
    /// How long a misbehaving observed address is refused.
    pub ban_duration: Duration,
    /// Time a dial may take.
    pub connect_timeout: Duration,
    /// First redial delay; doubles per failure.
    pub reconnect_min: Duration,
    /// Longest redial delay.
    pub reconnect_max: Duration,
    /// The clock read for `now`.
    pub clock: Arc<dyn Clock>,
    /// The roster key this node holds: its handshake proves it to peers, and sealed
    /// bodies are kept and served for it. `None`: the node proves no key, keeps no
    /// body, and is served none (it still syncs and verifies the public chain).
    pub member_key: Option<Keypair>,
    /// Where the node keeps the sealed bodies sealed to `member_key`; `None`: it
    /// exchanges no bodies.
    pub vault: Option<Vault>,
    /// The key this node produces blocks with, on its own, while transactions wait (see
    /// `block_interval`); `None`: blocks come only from [`NodeHandle::mine`].
    pub producer: Option<Keypair>,
    /// With a `producer`: produce a block when transactions wait, at this pace, in turn
    /// with the network's other producers (see the [`pace`](crate::pace) module).
    /// `None`: blocks come only from [`NodeHandle::mine`], as in the walkthrough.
    pub block_interval: Option<Duration>,
    /// Announce blocks of [`limits::COMPACT_MIN_TXS`] transactions or more by their
    /// transaction ids (see [`crate::compact`]); `false` sends every block whole. A
    /// node rebuilds compact announcements from peers either way.
    pub compact_blocks: bool,
    /// How this node gives a body it holds to a reader the body is not sealed to, when
    /// the policy grants that reader access ([`Policy::body_access`]): a copy with the
    /// data key wrapped to the reader's encryption key too. `None`: only bodies sealed
    /// to the asker are served.
    pub rewrap: Option<Rewrap>,
}

/// Wraps a held body's data key to one more reader: given the body, its label, the
/// reader and the reader's encryption key ([`Policy::encryption_key`]), the body with
/// a wrap for the reader, or `None` if this node cannot open it.
pub type Rewrap = Arc<
    dyn Fn(
            &SealedBody,
            &BodyLabel,
            &ledger_core::AccountId,
            &EncryptionPublicKey,
        ) -> Option<SealedBody>
        + Send
        + Sync,
>;

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("advertise_addr", &self.advertise_addr)
            .field("peers", &self.peers)
            .field("session", &self.session)
            .field("max_inbound", &self.max_inbound)
            .field("ban_duration", &self.ban_duration)
            .field(
                "member_key",
                &self.member_key.as_ref().map(Keypair::account),
            )
            .field("vault", &self.vault.as_ref().and_then(Vault::path))
            .field("producer", &self.producer.as_ref().map(Keypair::account))
            .field("block_interval", &self.block_interval)
            .field("rewrap", &self.rewrap.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeConfig {
    /// A configuration with the default limits, no peers and the system clock.
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            advertise_addr: None,
            peers: Vec::new(),
            session: SessionConfig::default(),
            max_inbound: limits::MAX_INBOUND,
            max_outbound_discovered: limits::MAX_OUTBOUND_DISCOVERED,
            peer_exchange: true,
            ban_duration: limits::BAN_DURATION,
            connect_timeout: limits::CONNECT_TIMEOUT,
            reconnect_min: limits::RECONNECT_MIN,
            reconnect_max: limits::RECONNECT_MAX,
            clock: Arc::new(SystemClock),
            member_key: None,
            vault: None,
            producer: None,
            block_interval: None,
            compact_blocks: true,
            rewrap: None,
        }
    }
}

/// Why a peer was disconnected.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason<E> {
    /// The session ended by itself (the peer left, went silent, or sent bad frames).
    #[error("{0}")]
    Session(SessionError),
    /// The session ended without an error (closed by this node).
    #[error("closed")]
    Closed,
    /// The peer misbehaved and was banned.
    #[error("banned: {0}")]
    Banned(Offence<E>),
    /// The peer let its outbound queue fill.
    #[error("too slow: outbound queue of {0} frames full")]
    SlowPeer(usize),
    /// The peer is this node itself.
    #[error("connection to self")]
    SelfConnection,
    /// The connection's observed address was banned while it shook hands.
    #[error("address is banned")]
    AlreadyBanned,
    /// Another connection to the same peer exists; both ends keep the one opened by
    /// the node with the smaller listen address, and no established session is closed
    /// because of another connection's claim (see the [`node`](crate::node) module).
    #[error("already connected to this peer")]
    Duplicate,
}

/// What the node reports to subscribers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent<E> {
    /// A block entered the block tree (and the store).
    BlockAccepted {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: Height,
        /// The peer it came from (`None`: mined here or submitted locally).
        from: Option<SocketAddr>,
    },
    /// A block was refused.
    BlockRejected {
        /// Why.
        error: BlockError<E>,
        /// The peer it came from.
        from: Option<SocketAddr>,
    },
    /// The ledger task validated a submitted block (with any orphans it unlocked),
    /// whatever the verdict: how long that took, for metrics.
    BlockValidated {
        /// Its hash.
        hash: BlockHash,
        /// Blocks added to the tree by it (0 for a refused or orphaned block).
        accepted: usize,
        /// Time spent in the ledger.
        elapsed: std::time::Duration,
    },
    /// The best chain changed; `change.is_reorg()` tells a branch switch, and
    /// `returned`/`dropped` say what became of the abandoned transactions.
    TipChanged(TipChange<E>),
    /// A transaction entered the mempool.
    TxAccepted {
        /// Its id.
        id: TxId,
        /// The peer it came from.
        from: Option<SocketAddr>,
    },
    /// A transaction was refused.
    TxRejected {
        /// Why.
        error: TxError<E>,
        /// The peer it came from.
        from: Option<SocketAddr>,
    },
    /// Transactions a peer relayed were dropped: the admission queue was full. They
    /// are not lost to the chain (they arrive in their block), only to this mempool.
    TxsDropped {
        /// How many.
        count: usize,
        /// The peer they came from.
        from: SocketAddr,
    },
    /// A session was established.
    PeerUp(PeerInfo),
    /// A session ended.
    PeerDown {
        /// The peer.
        info: PeerInfo,
        /// Why.
        reason: DisconnectReason<E>,
    },
    /// A connection failed its handshake (timeout, other network, other version).
    PeerRefused {
        /// The peer's socket address.
        addr: SocketAddr,
        /// Why.
        reason: SessionError,
    },
    /// Sealed bodies sealed to this node's key were kept in its vault.
    BodiesKept {
        /// Their ciphertext hashes.
        hashes: Vec<Hash>,
        /// The peer they came from.
        from: Option<SocketAddr>,
    },
    /// This node served sealed bodies to a peer whose handshake proved `reader`, under
    /// the policy's consent ([`Policy::body_access`](ledger_core::Policy::body_access)):
    /// the front end records the read.
    BodiesServed {
        /// The key the peer proved.
        reader: ledger_core::AccountId,
        /// The bodies served, with their labels.
        bodies: Vec<(ledger_core::sealed::BodyId, ledger_core::sealed::BodyLabel)>,
    },
    /// A peer refused bodies this node asked for: they are not sealed to its key.
    BodiesDenied {
        /// Their ciphertext hashes.
        hashes: Vec<Hash>,
        /// The peer that refused them.
        from: SocketAddr,
    },
    /// This node refused a peer bodies it asked for: they are not sealed to the key
    /// its handshake proved (or it proved none).
    BodiesRefused {
        /// Their ciphertext hashes.
        hashes: Vec<Hash>,
        /// The peer that asked.
        to: SocketAddr,
    },
    /// An observed address was banned (on loopback that socket address, elsewhere its
    /// whole IP address; see the [`node`](crate::node) module).
    PeerBanned {
        /// The observed address of the misbehaving connection.
        addr: SocketAddr,
        /// For how long.
        duration: Duration,
        /// What it did.
        offence: Offence<E>,
    },
}

/// A block mined by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
}

/// Why [`NodeHandle::mine`] produced no block.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MineError<E> {
    /// Another mining job is running.
    #[error("already mining")]
    Busy,
    /// The tip changed while mining; the block would not extend the best chain.
    #[error("the tip changed while mining")]
    TipChanged,
    /// The ledger refused the mined block.
    #[error("mined block refused: {0}")]
    Rejected(BlockError<E>),
    /// This key may not produce on the current tip: it is no authorised producer, or it
    /// keeps to a block it built on until finality settles it.
    #[error("cannot produce: {0}")]
    NotAllowed(ledger_core::ProduceError),
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
}

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node is not running (shut down or crashed).
    #[error("the node is not running")]
    Stopped,
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listener(std::io::Error),
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store could not read back a block this node holds.
    #[error(transparent)]
    Unreadable(#[from] ledger_core::BodyFault),
    /// The block writer thread could not be started.
    #[error("cannot start the block writer thread: {0}")]
    Writer(std::io::Error),
    /// The node task panicked or was aborted.
    #[error("node task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The admission queue has no room for the submission: try again shortly. Nothing
    /// of the submission was taken.
    #[error("the node is busy: {held} transactions wait for admission, at most {capacity}")]
    Busy {
        /// Transactions waiting or being verified.
        held: usize,
        /// The queue's capacity.
        capacity: usize,
    },
}

/// What the node answers a submission: each transaction's verdict, in order, or the
/// admission queue's refusal of the whole submission.
pub(crate) type SubmitReply<E> = Result<Vec<Result<TxId, TxError<E>>>, crate::admission::Full>;

pub(crate) type Query<P, S> = Box<dyn FnOnce(&Ledger<P, S>) + Send>;

pub(crate) enum Command<P: Policy, S: BlockStore<P::Payload>> {
    /// Transactions, each with the sealed bodies to push after it, for admission.
    Submit {
        txs: Vec<(Transaction<P::Payload>, Vec<SealedBody>)>,
        reply: oneshot::Sender<SubmitReply<P::Error>>,
    },
    SubmitBlock {
        block: Block<P::Payload>,
        reply: oneshot::Sender<Result<BlockStatus, BlockError<P::Error>>>,
    },
    Mine {
        keys: Keypair,
        reply: oneshot::Sender<Result<Mined, MineError<P::Error>>>,
    },
    Query(Query<P, S>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Sync(oneshot::Sender<usize>),
    FetchBodies(Vec<(SealedRef, BodyLabel)>),
    Connect(SocketAddr),
    Banned(SocketAddr, oneshot::Sender<bool>),
}

/// A cloneable handle to a running node. Every method is a message to the ledger
/// task; they fail with [`NodeError::Stopped`] once the node has stopped.
pub struct NodeHandle<P: Policy, S: BlockStore<P::Payload>> {
    commands: mpsc::Sender<Command<P, S>>,
    events: broadcast::Sender<NodeEvent<P::Error>>,
    local_addr: SocketAddr,
}

impl<P: Policy, S: BlockStore<P::Payload>> Clone for NodeHandle<P, S> {
    fn clone(&self) -> Self {
        NodeHandle {
            commands: self.commands.clone(),
            events: self.events.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl<P: Policy, S: BlockStore<P::Payload>> std::fmt::Debug for NodeHandle<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl<P: Policy, S: BlockStore<P::Payload>> NodeHandle<P, S> {
    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command<P, S>,
    ) -> Result<R, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Subscribes to the node's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent<P::Error>> {
        self.events.subscribe()
    }

    /// Submits a transaction; on success it is in the mempool and relayed to peers.
    ///
    /// Its signature is checked off the ledger task, batched with whatever else waits
    /// for admission (see [`submit_batch`](Self::submit_batch)). Fails with
    /// [`NodeError::Busy`] when the admission queue is full.
    pub async fn submit_transaction(
        &self,
        tx: Transaction<P::Payload>,
    ) -> Result<Result<TxId, TxError<P::Error>>, NodeError> {
        self.submit_sealed(tx, Vec::new()).await
    }

    /// Submits a transaction with its sealed bodies, already kept in this node's vault
    /// by the caller: on success the transaction is in the mempool and relayed, and each
    /// connected peer whose handshake proved a key gets the bodies sealed to that key,
    /// right after the transaction.
    pub async fn submit_sealed(
        &self,
        tx: Transaction<P::Payload>,
        bodies: Vec<SealedBody>,
    ) -> Result<Result<TxId, TxError<P::Error>>, NodeError> {
        let mut verdicts = self.submit_batch(vec![(tx, bodies)]).await?;
        verdicts.pop().ok_or(NodeError::Stopped)
    }

    /// Submits transactions, each with the sealed bodies to push to peers after it (an
    /// empty list for none), and answers each one's verdict in order once all were
    /// admitted or refused.
    ///
    /// They wait in the node's admission queue with those of other clients and peers;
    /// their signatures are verified in one batch, on every core, off the ledger task,
    /// and never again (not in their block either). The accepted ones are relayed to
    /// peers as one `Txs` message or a few. A submission that does not fit in the
    /// queue ([`limits::ADMISSION_QUEUE`]) is refused whole with [`NodeError::Busy`]:
    /// back-pressure, to retry later, not a verdict on the transactions.
    pub async fn submit_batch(
        &self,
        txs: Vec<(Transaction<P::Payload>, Vec<SealedBody>)>,
    ) -> Result<Vec<Result<TxId, TxError<P::Error>>>, NodeError> {
        self.ask(|reply| Command::Submit { txs, reply })
            .await?
            .map_err(|full| NodeError::Busy {
                held: full.held,
                capacity: full.capacity,
            })
    }

    /// Submits a block as if a peer had sent it (without a peer to blame); an accepted
    /// block is stored, then relayed.
    pub async fn submit_block(
        &self,
        block: Block<P::Payload>,
    ) -> Result<Result<BlockStatus, BlockError<P::Error>>, NodeError> {
        self.ask(|reply| Command::SubmitBlock { block, reply })
            .await
    }

    /// Mines one block with the pending transactions, produced and signed by `keys`.
    ///
    /// The template is built on the ledger task; the proof of work runs on the blocking
    /// pool in rounds of [`limits::MINE_ROUND`] nonces, so the node keeps handling
    /// messages. It is abandoned with [`MineError::TipChanged`] if the tip moves
    /// first. The block is stored before it is announced and before this returns.
    pub async fn mine(
        &self,
        keys: Keypair,
    ) -> Result<Result<Mined, MineError<P::Error>>, NodeError> {
        self.ask(|reply| Command::Mine { keys, reply }).await
    }

    /// Runs `f` on the ledger task with read access to the ledger and returns its
    /// result: how a front end reads state this crate does not know about. The node
    /// handles nothing else while `f` runs, so keep it short.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger<P, S>) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.ask(move |reply| {
            Command::Query(Box::new(move |ledger: &Ledger<P, S>| {
                // The asker may have given up; the answer is then not needed.
                let _ = reply.send(f(ledger));
            }))
        })
        .await
    }

    /// The best chain's tip.
    pub async fn tip(&self) -> Result<TipInfo, NodeError> {
        self.query(|ledger| tip_info(ledger)).await
    }

    /// The best chain's block hashes by height (`[0]` is the genesis hash).
    pub async fn chain(&self) -> Result<Vec<BlockHash>, NodeError> {
        self.query(|ledger| ledger.main_chain().to_vec()).await
    }

    /// The best chain's headers from height 1 up.
    pub async fn headers(&self) -> Result<Vec<BlockHeader>, NodeError> {
        self.query(|ledger| {
            ledger
                .main_chain()
                .iter()
                .filter_map(|h| ledger.header(h).cloned())
                .collect()
        })
        .await
    }

    /// The pending transactions, in mining order.
    pub async fn pending(&self) -> Result<Vec<Transaction<P::Payload>>, NodeError> {
        self.query(|ledger| ledger.mempool().map(|p| p.tx.clone()).collect())
            .await
    }

    /// Every account's confirmed balance, sorted by account.
    pub async fn balances(
        &self,
    ) -> Result<Vec<(ledger_core::AccountId, ledger_core::Amount)>, NodeError> {
        self.query(|ledger| {
            let mut all: Vec<_> = ledger.state().balances().map(|(a, b)| (*a, *b)).collect();
            all.sort();
            all
        })
        .await
    }

    /// The established peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(Command::Peers).await
    }

    /// Asks every peer for the blocks after our best chain; returns how many were asked.
    pub async fn sync(&self) -> Result<usize, NodeError> {
        self.ask(Command::Sync).await
    }

    /// Asks the peers for the bodies `refs` name that this node's vault lacks (as it
    /// does by itself for new blocks): for instance once a new consent lets it read
    /// older records. Peers serve what consent grants this node's key.
    pub async fn fetch_bodies(&self, refs: Vec<(SealedRef, BodyLabel)>) -> Result<(), NodeError> {
        self.commands
            .send(Command::FetchBodies(refs))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Dials `addr` and keeps redialling it like a configured peer.
    pub async fn connect(&self, addr: SocketAddr) -> Result<(), NodeError> {
        self.commands
            .send(Command::Connect(addr))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Whether the node refuses `addr` now: connections from it and dials to it. Bans
    /// attach to observed addresses: on loopback the exact socket address, elsewhere
    /// the whole IP address (see the [`node`](crate::node) module).
    pub async fn is_banned(&self, addr: SocketAddr) -> Result<bool, NodeError> {
        self.ask(|reply| Command::Banned(addr, reply)).await
    }
}

/// A node started by [`spawn`]: its handle and its task.
pub struct RunningNode<P: Policy, S: BlockStore<P::Payload>> {
    handle: NodeHandle<P, S>,
    task: JoinHandle<Result<(), NodeError>>,
    /// Subscribed before the node task started, so it holds every event from the first.
    first_events: Option<broadcast::Receiver<NodeEvent<P::Error>>>,
}

impl<P: Policy, S: BlockStore<P::Payload>> std::fmt::Debug for RunningNode<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl<P: Policy, S: BlockStore<P::Payload>> RunningNode<P, S> {
    /// The node's events from its very start: the first call returns a receiver
    /// subscribed before the node began (so the first peer connections are not missed,
    /// as they can be with [`NodeHandle::subscribe`] right after [`spawn`]); later calls
    /// subscribe from now on.
    pub fn events(&mut self) -> broadcast::Receiver<NodeEvent<P::Error>> {
        self.first_events
            .take()
            .unwrap_or_else(|| self.handle.subscribe())
    }

    /// A handle to the node.
    pub fn handle(&self) -> NodeHandle<P, S> {
        self.handle.clone()
    }

    /// Waits for the node to stop (after its shutdown token is cancelled).
    pub async fn join(self) -> Result<(), NodeError> {
        self.task.await?
    }

    /// Kills the node task without a graceful shutdown, as a crash would: its child
    /// tasks stop, the store is dropped wherever it was.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts a node on `listener` with `ledger` (reloaded already, see [`open_ledger`](crate::open_ledger))
/// and returns its handle; it runs until `shutdown` is cancelled.
///
/// Must be called within a tokio runtime; the multi-threaded one lets signature
/// verification and mining use every core. Store writes and reads happen on threads
/// of their own.
pub fn spawn<P: Policy, S: BlockStore<P::Payload>>(
    listener: TcpListener,
    config: NodeConfig,
    ledger: Ledger<P, S>,
    shutdown: CancellationToken,
) -> Result<RunningNode<P, S>, NodeError> {
    let local_addr = listener.local_addr().map_err(NodeError::Listener)?;
    let (commands, command_rx) = mpsc::channel(limits::NODE_INPUT_QUEUE);
    let (events, first_events) = broadcast::channel(limits::EVENT_BUFFER);
    let handle = NodeHandle {
        commands,
        events: events.clone(),
        local_addr,
    };
    let task = tokio::spawn(node_main(
        listener, config, ledger, shutdown, command_rx, events,
    ));
    Ok(RunningNode {
        handle,
        task,
        first_events: Some(first_events),
    })
}

/// Runs a node without a handle until `shutdown` is cancelled: a relay node that
/// only serves its peers. See [`spawn`] to control it.
pub async fn run<P: Policy, S: BlockStore<P::Payload>>(
    listener: TcpListener,
    config: NodeConfig,
    ledger: Ledger<P, S>,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    spawn(listener, config, ledger, shutdown)?.join().await
}
