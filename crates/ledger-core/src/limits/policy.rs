//! Node policy: knobs one node may tune without disagreeing with others on validity.
//!
//! Each bounds the memory or the work of this node (its mempool, caches, orphan pool,
//! signature batches, import batches, how much it remembers), never what a valid
//! block is: two nodes with different values accept and refuse the same blocks. (Node
//! policy in rust-bitcoin's sense, not the application's [`Policy`](crate::Policy).)

/// Most transactions the mempool holds; past it new transactions are refused (the
/// sender may retry), so a flood cannot exhaust memory.
pub const MAX_MEMPOOL_TXS: usize = 50_000;

/// Most blocks with an unknown parent kept while their ancestors are fetched; the
/// oldest is evicted first, so a peer sending junk orphans cannot grow the pool.
pub const MAX_ORPHANS: usize = 1_024;

/// Most bytes of blocks kept in the orphan pool: without it, [`MAX_ORPHANS`] blocks of
/// up to [`MAX_BLOCK_BYTES`](super::MAX_BLOCK_BYTES) each could hold 4 GiB. A sync
/// brings parents in order, so an honest node rarely holds more than a few orphans at
/// once.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;

/// Most transaction ids remembered as already signature-checked; the oldest are
/// forgotten first (a forgotten one is simply verified again).
pub const MAX_SIG_CACHE: usize = 200_000;

/// Most decompressed public keys cached; decompression costs about as much as a
/// quarter of a signature check, so signers seen again are not decompressed again.
pub const MAX_KEY_CACHE: usize = 100_000;

/// Most signatures verified together in one ed25519 batch: large enough to amortise
/// the multiscalar multiplication (1,024 verifies about 4% faster than 256 here), small
/// enough to spread over cores and to localise a failure cheaply.
pub const SIGNATURE_BATCH: usize = 1024;

/// Longest block locator (list of block hashes describing a chain) accepted: enough
/// to describe a chain of 2^32 blocks with exponential spacing.
pub const MAX_LOCATOR_HASHES: usize = 64;

/// Blocks below the tip whose undo records are kept in memory. A branch switch deeper
/// than this rebuilds the state from genesis instead (rare and slower, never wrong), so
/// memory stays bounded however long the chain grows.
pub const MAX_UNDO_DEPTH: usize = 1_000;

/// Blocks remembered as invalid, so a peer resending one is refused at once; the
/// oldest are forgotten first.
pub const MAX_INVALID_REMEMBERED: usize = 10_000;

/// Blocks whose signatures are verified together while the previous batch is applied
/// (see `Ledger::import_blocks`): 12,800 signatures at 100 transactions a block, enough
/// to keep every core busy and make the hand-over between batches rare, small enough
/// to bound the memory of the three batches in flight (a few MiB each).
pub const IMPORT_BATCH: usize = 128;

/// Pending transactions from which the mempool keeps its own copy of the state with
/// them applied. Below it, each admission re-applies the pending transactions over the
/// confirmed state and takes them off again (cheap for a small pool, and no copy of a
/// large state after every block); above it, one copy per block is cheaper than
/// re-applying a large pool for every admission.
pub const PENDING_SNAPSHOT_MIN: usize = 256;
