//! Consensus limits: every node of a network must use the same values.
//!
//! Each bounds what a block, a transaction or a genesis may be, so it decides validity:
//! two nodes with different values would disagree on whether a block is valid, and
//! split the network. Changing one is a change of the network's rules.

/// Largest encoded transaction: free-text clinical notes fit comfortably, and a single
/// transaction can never crowd out a block.
pub const MAX_TX_BYTES: usize = 64 * 1024;

/// Largest encoded block: well under the network's 8 MiB frame limit, so any valid
/// block can always be sent in one frame together with its envelope.
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// Most transactions in one block: bounds the Merkle tree and the signature batch a
/// single block can demand.
pub const MAX_TXS_PER_BLOCK: usize = 10_000;

/// Most reward entries in one block: at most one per transaction that earns one.
pub const MAX_REWARDS_PER_BLOCK: usize = MAX_TXS_PER_BLOCK;

/// Largest encoded genesis: a roster of thousands of members still fits.
pub const MAX_GENESIS_BYTES: usize = 1024 * 1024;

/// How far (in milliseconds) a block's timestamp may lie ahead of the validating node's
/// clock: two hours, as in the design, tolerating badly set clocks but not far-future
/// blocks that would freeze timestamp rules.
pub const MAX_FUTURE_DRIFT_MS: u64 = 2 * 60 * 60 * 1000;

/// Largest proof-of-work difficulty (leading zero bits) a genesis may set; keeps the
/// cumulative work of any realistic chain inside a `u128`.
pub const MAX_POW_BITS: u8 = 64;

/// Longest network name in a genesis.
pub const MAX_NETWORK_NAME: usize = 64;

/// Longest roster username, display name or role label in a genesis.
pub const MAX_ROSTER_TEXT: usize = 128;
