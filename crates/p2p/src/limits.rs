//! Every limit the node enforces on what peers send and on its own queues, in one
//! place, each with the reason for its value.
//!
//! Limits that are part of validity (block size, transactions per block, locator
//! length the ledger reads) live in [`ledger_core::limits`]; these only bound what a
//! peer can make this node allocate, compute or wait for. Timeouts and the ban
//! duration are defaults of [`NodeConfig`](crate::NodeConfig), which tests shorten.

use std::time::Duration;

/// Version of the wire protocol this node speaks; a peer announcing another one is
/// refused during the handshake, since message layouts may differ. Version 2: one
/// signature rule (ZIP-215), finality, and the final height in the announced tip.
/// Version 3: the handshake's key proof, and sealed bodies between nodes.
/// Version 4: a consultation orders several tests, and sealed bodies carry coded data.
/// Version 5: transactions relayed in batches (`Txs`), compact block announcements.
/// Version 6: registrations carry the patient's keys, and the patient's consent,
/// reads and erasure are events; bodies are served only under consent.
pub const PROTOCOL_VERSION: u32 = 6;

/// Most sealed bodies (or body hashes) in one message; a sender splits longer lists.
pub const MAX_BODIES_PER_MESSAGE: usize = 64;

/// Most bodies a node waits for at once (ciphertext hashes it lacks and may read).
pub const MAX_WANTED_BODIES: usize = 65_536;

/// Most asks for bodies a node did not hold yet that it remembers, to serve them
/// when the bodies arrive (a peer may ask before the body reached this node).
pub const MAX_AWAITED_BODIES: usize = 16_384;

/// Most peers remembered as waiting for one body.
pub const MAX_PEERS_AWAITING: usize = 16;

/// Most recent sealed references a node remembers, to check bodies pushed to it.
pub const MAX_RECENT_REFS: usize = 100_000;

/// Default largest frame (payload after the 4-byte length prefix), inclusive: twice
/// the largest valid block, so any block fits with its envelope, while a length prefix
/// claiming more is refused (and its sender banned) before a byte of it is buffered.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Largest frame accepted before the handshake completes (the peer's `Hello`, or
/// whatever it sends instead): the largest `Hello` encodes to about 200 bytes, and a
/// connection that has not identified itself cannot make this node buffer more than
/// this, however many such connections the inbound cap admits.
pub const MAX_HELLO_FRAME_BYTES: usize = 1024;

/// Most blocks in one `Blocks` reply (and the largest `limit` honoured in
/// `GetBlocks`): enough to sync quickly in pipelined batches, small enough that a reply
/// stays far below the frame limit for typical blocks and one batch is verified at once.
pub const MAX_BLOCKS_PER_REPLY: usize = 128;

/// Bytes of block encodings put in one `Blocks` reply: leaves room under
/// [`MAX_FRAME_BYTES`] for the envelope whatever the blocks' sizes.
pub const MAX_REPLY_BYTES: usize = MAX_FRAME_BYTES / 2;

/// Sync batches a node holds at once, over all its peers: requested and not yet
/// received, having their signatures verified off the ledger task, or waiting to be
/// applied. Enough for the next batch to travel and be verified while one is applied;
/// it bounds what a sync buffers to this many replies of at most [`MAX_REPLY_BYTES`]
/// each. A request that would exceed it waits until a batch has been applied.
pub const SYNC_BATCHES: usize = 4;

/// Longest block locator accepted in `GetBlocks`: the ledger's own locators never
/// exceed it, and it bounds the lookups one request can cause.
pub const MAX_LOCATOR_HASHES: usize = ledger_core::limits::MAX_LOCATOR_HASHES;

/// Most addresses in one `Peers` message, and most addresses remembered from peer
/// exchange and `Hello`s: a peer cannot flood the address book.
pub const MAX_PEER_ADDRS: usize = 64;

/// Longest node name in a `Hello`: names are for logs and prompts, not payloads.
pub const MAX_NODE_NAME: usize = 64;

/// Most orphan blocks the ledger keeps while their ancestors are fetched (set by the
/// ledger core; restated here so the closing list of limits is complete).
pub const MAX_ORPHANS: usize = ledger_core::limits::MAX_ORPHANS;

/// Default cap on inbound connections, counted from accept (handshakes included):
/// connections beyond it are closed at once, so idle sockets cannot exhaust the node.
pub const MAX_INBOUND: usize = 64;

/// Default cap on addresses learnt by peer exchange (or from a peer's `Hello`) that the
/// node dials and redials at once (configured peers are always dialled).
pub const MAX_OUTBOUND_DISCOVERED: usize = 8;

/// Frames queued for one peer's socket; a peer that lets the queue fill (it does not
/// read) is disconnected rather than buffered without bound.
pub const OUTBOUND_QUEUE: usize = 1_024;

/// `GetBlocks` replies the storage thread holds at once (queued or being read):
/// beyond that the ledger task reads a reply itself, so a flood of requests cannot
/// grow a queue.
pub const SERVE_QUEUE: usize = 16;

/// Messages queued from all sessions and handles to the ledger task: when it is full,
/// sessions stop reading their sockets (back-pressure) instead of buffering.
pub const NODE_INPUT_QUEUE: usize = 1_024;

/// Transactions waiting for admission (their signature check, then the mempool), the
/// batch being verified included. A client submission that does not fit is answered
/// [`NodeError::Busy`](crate::NodeError::Busy); relayed transactions that do not fit
/// are dropped and counted (they arrive in their block).
pub const ADMISSION_QUEUE: usize = 32_768;

/// Most transactions verified in one admission batch: what waited while the previous
/// batch was verified, up to this many.
pub const ADMISSION_BATCH: usize = 8_192;

/// An admission batch smaller than this waits up to [`ADMISSION_LINGER`] for more:
/// batch verification costs a fraction of a single check per signature only in batches.
pub const ADMISSION_MIN_BATCH: usize = 256;

/// The longest a transaction waits for its admission batch to grow.
pub const ADMISSION_LINGER: Duration = Duration::from_millis(5);

/// Blocks rebuilt from compact announcements that may wait for missing transactions
/// at once; the oldest is forgotten first (sync fetches it if need be).
pub const MAX_PARTIAL_BLOCKS: usize = 16;

/// A block with at least this many transactions is announced compact (its
/// transaction ids); a smaller one whole, as its ids would save little.
pub const COMPACT_MIN_TXS: usize = 8;

/// Most transactions in one `Txs` relay message.
pub const MAX_TXS_PER_MESSAGE: usize = 8_192;

/// Most encoded bytes of transactions a node puts in one `Txs` relay message (a larger
/// batch goes as several).
pub const MAX_RELAY_BYTES: usize = 1024 * 1024;

/// Events buffered per subscriber; a subscriber slower than that misses the oldest
/// and is told how many it missed (`broadcast` lag), the node never waits for it.
pub const EVENT_BUFFER: usize = 4_096;

/// Transaction ids and block hashes remembered as already seen for gossip
/// de-duplication; the oldest are forgotten first (the ledger still rejects
/// duplicates, so forgetting costs only some work).
pub const MAX_SEEN: usize = 100_000;

/// Most addresses banned at once; past it the ban ending soonest is dropped, so a
/// flood of misbehaving sockets cannot grow the list without bound.
pub const MAX_BANNED: usize = 10_000;

/// Nonces tried per mining round on the blocking pool before checking for
/// cancellation: a few milliseconds of hashing, so a tip change stops mining quickly.
pub const MINE_ROUND: u64 = 1 << 14;

/// Default time a peer has to complete the handshake: long enough for a slow link,
/// short enough that sockets which never speak do not hold inbound slots.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default silence after which an established peer is dropped; pings are sent at a
/// third of it, so a live peer is never silent that long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default time one frame may take to be written to a peer before it is dropped as
/// too slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

/// Default time a dial may take before it is abandoned and retried later.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default ban for a misbehaving address: long enough to make abuse pointless, short
/// enough that a configured peer that was broken and fixed comes back on its own.
pub const BAN_DURATION: Duration = Duration::from_secs(15 * 60);

/// Failed dials in a row (refused, timed out, no handshake, or a session the node
/// would not keep) after which the address of a peer learnt from `Hello` or `Peers` is
/// forgotten: a peer cannot keep this node dialling junk addresses for ever, while a
/// node that is only restarting is back long before (with the back-off, 8 failures
/// span about two minutes at the default delays).
pub const LEARNED_DIAL_FAILURES: u32 = 8;

/// Default first delay before redialling a configured peer; it doubles per failure.
pub const RECONNECT_MIN: Duration = Duration::from_millis(500);

/// Default longest delay between redials of a configured peer.
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);

/// Stored blocks read, decoded and hashed together when a node reloads its store: many
/// enough to spread the hashing over every core, few enough that the chunks in flight
/// stay a small part of memory.
pub const RELOAD_CHUNK: usize = 256;

/// Chunks read ahead of the ledger when reloading.
pub const RELOAD_READ_AHEAD: usize = 2;

/// Memory the block store may use to cache pages (redb's default is 1 GiB): blocks are
/// read once when reloading or serving a sync and rarely again, so a large cache would
/// only make a node's memory grow with its history.
pub const STORE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Page cache for a store read once from end to end (`healthchain verify`): each page
/// is read once, so a cache larger than a few pages only adds to memory.
pub const SCAN_CACHE_BYTES: usize = 4 * 1024 * 1024;
