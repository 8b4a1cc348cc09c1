//! Every size and count limit the ledger enforces, in one place, with its reason.
//!
//! Each limit bounds what an untrusted party (a peer, a file, a user) can make the ledger
//! allocate or compute. They come in two kinds, told apart by one question: could two
//! nodes with different values disagree on whether a block is valid?
//!
//! - [`consensus`]: yes. Block and transaction sizes and counts, the future drift of a
//!   block's timestamp, the genesis limits. Every node of a network must use the same
//!   values; changing one changes the network's rules.
//! - [`policy`]: no. The mempool's size, the signature and key caches, signature batch
//!   sizes, the orphan pool's caps, the undo depth kept in memory, how many invalid
//!   blocks are remembered, import batch sizes, the locator length served. A node may
//!   tune them; they change what it spends, not what it accepts.
//!
//! Both are re-exported here, so `limits::MAX_BLOCK_BYTES` and
//! `limits::MAX_MEMPOOL_TXS` name the same constants as their modules do.

pub mod consensus;
pub mod policy;

pub use consensus::*;
pub use policy::*;
