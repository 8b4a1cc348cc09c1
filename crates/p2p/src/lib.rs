//! `p2p`: the healthchain node runtime, generic over the ledger's
//! [`Policy`](ledger_core::Policy) (it never knows about doctors).
//!
//! - [`protocol`]: the wire [`Message`]s, decoded through the core's canonical codec
//!   with a byte limit; [`limits`]: every limit, with its reason.
//! - [`session`]: one peer on a length-delimited framed TCP stream; an unauthenticated
//!   [`Connection`] becomes a [`Session`] only through a timed handshake, in which
//!   each side also proves which roster key it holds ([`protocol::KeyProof`]: a
//!   signature over both sides' fresh challenges and its side of the connection).
//! - [`node`]: the node. One task owns the [`Ledger`](ledger_core::Ledger); a
//!   cloneable [`NodeHandle`] submits transactions, mines, syncs, reads snapshots or
//!   runs any read-only [`query`](NodeHandle::query) on the ledger, and
//!   [`subscribe`](NodeHandle::subscribe)s to [`NodeEvent`]s. Around it: a listener
//!   with a cap on inbound connections, dialers that redial configured and learnt
//!   peers with exponential back-off, peer exchange, gossip with de-duplication that relays only
//!   what the ledger accepted, locator-based sync in pipelined batches, and bans for
//!   peers that misbehave (bad frames, protocol violations, invalid data).
//! - [`store`]: the [`BlockStore`] trait, [`RedbStore`] in the node's data directory,
//!   [`MemoryStore`] for tests. A block is committed before it is announced or
//!   acknowledged: alone before the ledger accepts it, or, for a sync batch, with the
//!   whole batch in one durable commit before any of it is reported; [`open_ledger`]
//!   reloads the store on start, re-checking hashes, links and state but not
//!   signatures.
//! - [`vault`]: the sealed bodies a node may read ([`Vault`], `vault.redb` beside the
//!   blocks), kept only if they match the reference on the chain. The node pushes a
//!   transaction's bodies ([`NodeHandle::submit_sealed`]) to the peers whose proven key
//!   they are sealed to, pulls those it lacks when blocks arrive, and serves a
//!   `GetBodies` only against the asker's proof and the policy's consent
//!   ([`Policy::body_access`](ledger_core::Policy::body_access), on the chain as it is
//!   when the answer goes): anything else gets `Denied`, and every body served is
//!   reported ([`NodeEvent::BodiesServed`]). The policy names and labels a payload's
//!   bodies ([`Policy::labelled_refs`](ledger_core::Policy::labelled_refs)); the vault
//!   keeps the label, a body of an erased subject is neither asked for nor kept, and a
//!   front end may give the node a [`Rewrap`] so it can serve a body to a reader
//!   consent now admits but the body was not sealed to. The runtime itself never opens
//!   a body.
//! - Throughput: transactions are admitted in batches (submissions and relays queue,
//!   bounded, with a typed [`NodeError::Busy`]; each batch's signatures are verified
//!   once, off the ledger task, and the batch is relayed as `Txs` messages); a node
//!   configured with [`NodeConfig::block_interval`] produces blocks at a steady pace in
//!   turn with the other producers ([`pace`]); blocks are announced by their
//!   transaction ids and rebuilt from the mempool ([`compact`], after BIP 152).
//!
//! # Layers
//!
//! Files of one job each, from the pure core out to the sockets:
//!
//! | file | layer | holds |
//! |------|-------|-------|
//! | `protocol.rs`, `limits.rs` | wire | messages, codec, every limit |
//! | `gossip.rs` | decisions (pure) | de-duplication, ban list, duplicate rule, offences, back-off |
//! | `peers.rs` | decisions (pure) | `PeerTable`: admission, bans, dial choices as actions; `Redialer` |
//! | `sync.rs` | decisions (pure) | `SyncState`: whom to sync from, requests in flight and deferred, pipelining under [`limits::SYNC_BATCHES`], as actions |
//! | `session.rs` | one peer (I/O) | framed stream, timed handshake, read/write loop |
//! | `store.rs` | storage | [`BlockStore`], [`RedbStore`], [`MemoryStore`] |
//! | `reload.rs` | storage, at start | [`open_ledger`], [`reload`](fn@reload), [`ReloadReport`] |
//! | `node.rs` | the actor | the ledger task: sessions' events and commands in, frames and events out; carries out the peer and sync actions |
//! | `net.rs` | network I/O | listener, dialers with back-off, one task per connection |
//! | `serve.rs` | storage I/O | the storage thread reading `GetBlocks` replies off the actor |
//! | `vault.rs`, `node/bodies.rs` | sealed bodies | the vault; pushing, pulling and serving bodies against the key proof, vault work on the blocking pool |
//! | `admission.rs`, `node/admit.rs` | transactions in | `Admission` (pure): the bounded queue and when a batch is ready; the verifier task, admission and `Txs` relay |
//! | `pace.rs` | decisions (pure) | which producer makes the next block, and when |
//! | `compact.rs`, `node/relay.rs` | blocks out and in | `CompactBlock` and `Reassembly` (pure); announcing compact, rebuilding, serving missing transactions |
//! | `handle.rs` | surface | [`NodeConfig`], [`NodeEvent`], errors, [`NodeHandle`], [`spawn`], [`run`] |
//!
//! A block from a socket to the store: `net` accepts or dials a connection and runs
//! its handshake (`session`), then the session task reads frames under the frame
//! limit and decodes each into a [`Message`] (`protocol`, with a byte limit); a
//! `Block` goes as a session event over the bounded node queue to the ledger task
//! (`node`), which drops what it has seen (`gossip`) and submits the block to the
//! [`Ledger`](ledger_core::Ledger). The ledger decides and writes nothing: it keeps an
//! accepted block in memory, and the task hands it to its write queue (`persist`),
//! whose writer thread commits it through the store's [`BlockWriter`] together with
//! whatever else was accepted meanwhile. Once the commit is durable the task emits
//! [`NodeEvent::BlockAccepted`] and puts the block's frame on every other session's
//! bounded outbound queue; an invalid block instead costs its sender a ban at once. A
//! `Blocks` batch (sync) is first prepared and its signatures verified on the blocking
//! pool, then applied on the ledger task, written as one commit, and reported and
//! announced after it. Serving goes the other way: for a `GetBlocks` the ledger task
//! picks the best-chain hashes that are durable and a storage thread (`serve`) reads
//! them through a [`BlockReader`] and encodes the reply, off the ledger task.
//!
//! Start a node with [`spawn`] (it returns a [`RunningNode`] with its handle) or
//! [`run`] (no handle, until shut down). The
//! [`CancellationToken`](tokio_util::sync::CancellationToken) passed to either shuts
//! everything down: listener, dialers, sessions, mining; accepted blocks not yet
//! written are written, the writer thread is waited for, then the store is closed.
//!
//! What the node decides about peers:
//!
//! - **Relay**: only transactions and blocks the ledger accepted, once (de-duplicated
//!   by id); blocks that arrive in a sync batch are announced as the new tip only.
//! - **Sync**: a peer whose `Hello` announces a tip that wins fork choice, a block
//!   whose parent is unknown, or [`NodeHandle::sync`] start a `GetBlocks` with a
//!   block locator; each non-empty batch is answered by the next request before it is
//!   processed (pipelining, up to [`limits::SYNC_BATCHES`] batches held at once), its
//!   signatures are verified together off the ledger task while the previous batch is
//!   applied, and it is applied under one durable store commit.
//! - **Bans** (for [`NodeConfig::ban_duration`]): oversize or undecodable frames (an
//!   unknown message tag included), protocol violations (anything before `Hello`, a
//!   second `Hello`, counts above [`limits`]), transactions that are invalid in
//!   themselves (bad signature, too large, zero amount, from the reserve) and invalid
//!   blocks (except a timestamp ahead of this node's clock). A transaction refused
//!   for reasons that honest peers can race into (stale nonce, overdraft, duplicate,
//!   application rule) is dropped without penalty. A wrong genesis, another protocol
//!   version or a handshake timeout closes the connection without a ban. Bans attach
//!   only to the address the node observed (the connection's remote address, or the
//!   address it dialled), never to the listen address a peer announces: on loopback
//!   the exact socket address, since the host's nodes share 127.0.0.1, elsewhere the
//!   whole IP address, since inbound ports are ephemeral (see [`node`]). A configured
//!   peer is dialled again once its ban ends.
//! - **Duplicates and redials**: a connection claiming an established peer's address
//!   never displaces it; two nodes dialling each other keep one connection. Addresses
//!   learnt from peers are redialled with back-off after their session drops (see
//!   [`node`]).
//! - **Slow peers**: a peer whose outbound queue ([`limits::OUTBOUND_QUEUE`] frames)
//!   fills, or that does not accept a frame within the write timeout, is dropped.
//!   Reading has a deadline too: each frame must be complete within the idle timeout
//!   ([`SessionConfig::idle_timeout`]) of the previous one, so a peer trickling bytes
//!   too slowly is dropped (without a ban), while time this node spends busy does not
//!   count against the peer.
//! - **Limits without a ban**: a frame of exactly the frame limit is accepted; a
//!   `GetBlocks` is answered with at most [`limits::MAX_BLOCKS_PER_REPLY`] best-chain
//!   blocks after the first locator entry this node knows (genesis if none), whatever
//!   the limit or order asked; a `Blocks` reply nobody asked for is ignored; blocks
//!   with unknown parents wait in the ledger's bounded orphan pool.
//! - **Storage failures** are the node's, never a verdict on a block or its sender.
//!   If a write fails, the ledger holds blocks the store could not keep: the node
//!   stops with [`NodeError::Store`] before reporting, announcing or serving any of
//!   them (after a failed fsync nothing since the last good commit can be trusted), and
//!   a restart reloads what is durable and fetches the rest from peers. A read the
//!   ledger needs for a branch switch that fails stops it the same way
//!   ([`NodeError::Unreadable`]). A stored block that fails its checks on start is
//!   reported in the [`ReloadReport`] and not served; the node syncs it (and what
//!   follows it) again from peers, overwriting the bad copy.
//!
//! The mempool is not persisted: pending transactions are lost on restart (their
//! authors may resubmit them), blocks are not.
//!
//! # Example
//!
//! Two nodes on 127.0.0.1: the second dials the first; a transaction submitted at one
//! and a block mined there reach the other.
//!
//! ```
//! use ledger_core::{AccountId, Amount, Applied, Genesis, Keypair, Policy, Timestamp,
//!     Transaction, TxBody, TxContext};
//! use p2p::{MemoryStore, NodeConfig, NodeEvent, open_ledger, spawn};
//! use tokio_util::sync::CancellationToken;
//!
//! /// Notes anyone may post.
//! struct Notes;
//! #[derive(Debug, thiserror::Error, Clone, PartialEq)]
//! #[error("never")]
//! struct Never;
//! impl Policy for Notes {
//!     type Payload = String;
//!     type State = ();
//!     type Undo = ();
//!     type Error = Never;
//!     fn genesis_state(&self, _: &Genesis) {}
//!     fn apply(&self, _: &TxContext<'_>, _: &mut (), _: &String) -> Result<Applied<()>, Never> {
//!         Ok(Applied::new(()))
//!     }
//!     fn undo(&self, _: &mut (), _: ()) {}
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let genesis = Genesis {
//!     network: "notes".into(),
//!     timestamp: Timestamp(0),
//!     pow_bits: 4,
//!     producers: None,
//!     roster: vec![],
//!     balances: vec![(AccountId::unspendable("reserve"), Amount(1_000))],
//!     reserve: AccountId::unspendable("reserve"),
//!     parameters: Default::default(),
//! };
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let shutdown = CancellationToken::new();
//!     let (ledger, _report) = open_ledger(genesis.clone(), Notes, MemoryStore::new())?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let first = spawn(listener, NodeConfig::new("first"), ledger, shutdown.clone())?;
//!     let a = first.handle();
//!     let mut first_events = a.subscribe(); // before anyone dials it
//!
//!     let (ledger, _) = open_ledger(genesis, Notes, MemoryStore::new())?;
//!     let mut config = NodeConfig::new("second");
//!     config.peers = vec![a.local_addr()];
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let second = spawn(listener, config, ledger, shutdown.clone())?;
//!     let b = second.handle();
//!     let mut events = b.subscribe();
//!     // Wait until each node has the other as a peer.
//!     while !matches!(first_events.recv().await?, NodeEvent::PeerUp(_)) {}
//!     while b.peers().await?.is_empty() {
//!         let _ = events.recv().await?;
//!     }
//!
//!     let alice = Keypair::from_seed([1; 32]);
//!     let genesis_hash = a.query(|ledger| ledger.genesis_hash()).await?;
//!     let note = Transaction::new_signed(
//!         &genesis_hash, &alice, 1, Timestamp(1_000), TxBody::App("hello".to_string()),
//!     );
//!     a.submit_transaction(note).await??;
//!     let mined = a.mine(alice.clone()).await??;
//!     loop {
//!         if let NodeEvent::BlockAccepted { hash, .. } = events.recv().await? {
//!             if hash == mined.hash { break; }
//!         }
//!     }
//!     assert_eq!(b.tip().await?.hash, mined.hash);
//!
//!     shutdown.cancel();
//!     first.join().await?;
//!     second.join().await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```

mod admission;
pub mod compact;
mod gossip;
mod handle;
pub mod limits;
mod net;
pub mod node;
pub mod pace;
mod peers;
mod persist;
pub mod protocol;
mod reload;
mod serve;
pub mod session;
pub mod store;
mod sync;
pub mod vault;

pub use gossip::Offence;
pub use node::{
    Clock, DisconnectReason, MineError, Mined, NodeConfig, NodeError, NodeEvent, NodeHandle,
    OpenError, Opened, ReloadFailure, ReloadReport, Rewrap, RunningNode, SystemClock, open_ledger,
    reload, run, spawn,
};
pub use protocol::{Hello, Message, TipInfo};
pub use session::{Connection, Direction, PeerInfo, Session, SessionConfig, SessionError};
pub use store::{BlockReader, BlockStore, BlockWriter, MemoryStore, RedbStore, StoreError};
pub use vault::{Vault, VaultError};
