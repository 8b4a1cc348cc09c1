//! Validation errors. Every failure names the block and transaction it concerns.

use crate::block::Reward;
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::AccountId;
use crate::units::{Amount, Height, Timestamp};

/// Why a transaction is refused, in the mempool or inside a block. `E` is the policy's
/// error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError<E> {
    /// The encoded transaction is above [`MAX_TX_BYTES`](crate::limits::MAX_TX_BYTES).
    #[error("transaction {tx} is {size} bytes, above the {max}-byte limit")]
    TooLarge {
        /// The transaction.
        tx: TxId,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The signature does not verify for the author on this network.
    #[error("transaction {tx} has an invalid signature")]
    BadSignature {
        /// The transaction.
        tx: TxId,
    },
    /// The nonce is not above the author's last one (a replay or an out-of-order send).
    #[error("transaction {tx}: nonce {nonce} of {author} is not above the last used nonce {last}")]
    StaleNonce {
        /// The transaction.
        tx: TxId,
        /// Its author.
        author: AccountId,
        /// The author's last nonce.
        last: u64,
        /// The nonce given.
        nonce: u64,
    },
    /// A transfer of nothing.
    #[error("transaction {tx} transfers a zero amount")]
    ZeroAmount {
        /// The transaction.
        tx: TxId,
    },
    /// The author cannot afford the transfer.
    #[error("transaction {tx}: {account} has {balance}, cannot pay {amount}")]
    Overdraft {
        /// The transaction.
        tx: TxId,
        /// The paying account.
        account: AccountId,
        /// Its balance.
        balance: Amount,
        /// The amount asked.
        amount: Amount,
    },
    /// A credit would overflow the receiving balance.
    #[error("transaction {tx}: crediting {account} would overflow")]
    Overflow {
        /// The transaction.
        tx: TxId,
        /// The receiving account.
        account: AccountId,
    },
    /// The reserve cannot author transactions; it pays only through rewards.
    #[error("transaction {tx} is authored by the reserve account")]
    FromReserve {
        /// The transaction.
        tx: TxId,
    },
    /// The transaction's timestamp is too far after the block's (or the node's clock).
    #[error("transaction {tx} is dated {timestamp}, after the limit {limit}")]
    FromTheFuture {
        /// The transaction.
        tx: TxId,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The latest acceptable timestamp.
        limit: Timestamp,
    },
    /// The same transaction is already pending or appears twice in a block.
    #[error("transaction {tx} is a duplicate")]
    Duplicate {
        /// The transaction.
        tx: TxId,
    },
    /// The mempool is full.
    #[error("transaction {tx} refused: the mempool is full ({capacity} transactions)")]
    MempoolFull {
        /// The transaction.
        tx: TxId,
        /// The mempool's capacity.
        capacity: usize,
    },
    /// The application policy refused the payload.
    #[error("transaction {tx} refused by the application rules: {error}")]
    Policy {
        /// The transaction.
        tx: TxId,
        /// The policy's reason.
        error: E,
    },
}

impl<E> TxError<E> {
    /// The transaction concerned.
    pub fn tx(&self) -> TxId {
        match self {
            TxError::TooLarge { tx, .. }
            | TxError::BadSignature { tx }
            | TxError::StaleNonce { tx, .. }
            | TxError::ZeroAmount { tx }
            | TxError::Overdraft { tx, .. }
            | TxError::Overflow { tx, .. }
            | TxError::FromReserve { tx }
            | TxError::FromTheFuture { tx, .. }
            | TxError::Duplicate { tx }
            | TxError::MempoolFull { tx, .. }
            | TxError::Policy { tx, .. } => *tx,
        }
    }
}

/// Why a block is invalid. Listed in the order the checks run, cheapest first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError<E> {
    /// The encoded block is above [`MAX_BLOCK_BYTES`](crate::limits::MAX_BLOCK_BYTES).
    #[error("block {block} is {size} bytes, above the {max}-byte limit")]
    TooLarge {
        /// The block.
        block: BlockHash,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Too many transactions or reward entries.
    #[error("block {block} has {count} entries, above the limit of {max}")]
    TooManyEntries {
        /// The block.
        block: BlockHash,
        /// Entries found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The header hash does not meet the proof-of-work target.
    #[error("block {block} has {bits} bits of work, {required} required")]
    InsufficientWork {
        /// The block.
        block: BlockHash,
        /// Leading zero bits of its hash.
        bits: u32,
        /// Bits required by the genesis.
        required: u8,
    },
    /// The height is not the parent's plus one.
    #[error("block {block} claims height {found}, expected {expected}")]
    WrongHeight {
        /// The block.
        block: BlockHash,
        /// The parent's height plus one.
        expected: Height,
        /// The claimed height.
        found: Height,
    },
    /// The timestamp is before the parent's.
    #[error("block {block} is dated {timestamp}, before its parent ({parent})")]
    BeforeParent {
        /// The block.
        block: BlockHash,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The parent's timestamp.
        parent: Timestamp,
    },
    /// The timestamp is more than two hours after the validating node's clock.
    #[error("block {block} is dated {timestamp}, after the limit {limit}")]
    FromTheFuture {
        /// The block.
        block: BlockHash,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The latest acceptable timestamp.
        limit: Timestamp,
    },
    /// The producer is not in the genesis list of authorised producers.
    #[error("block {block} was produced by {producer}, who is not authorised")]
    UnauthorisedProducer {
        /// The block.
        block: BlockHash,
        /// The producer.
        producer: AccountId,
    },
    /// The block's branch leaves the best chain below its final block: finality is
    /// never reverted, whatever the branch's work. Not a proof of malice (a node cut off
    /// from the majority builds such branches honestly), so it costs no ban.
    #[error("block {block} conflicts with the final block {final_hash} at height {final_height}")]
    ConflictsWithFinal {
        /// The block.
        block: BlockHash,
        /// Height of this node's final block.
        final_height: Height,
        /// Its hash.
        final_hash: BlockHash,
    },
    /// The producer's signature over the block hash does not verify.
    #[error("block {block} has an invalid producer signature")]
    BadProducerSignature {
        /// The block.
        block: BlockHash,
    },
    /// The Merkle root does not match the block's entries.
    #[error("block {block} has Merkle root {found}, its entries give {expected}")]
    MerkleMismatch {
        /// The block.
        block: BlockHash,
        /// Root computed from the entries.
        expected: Hash,
        /// Root in the header.
        found: Hash,
    },
    /// A transaction is invalid.
    #[error("block {block}, transaction #{index}: {error}")]
    Transaction {
        /// The block.
        block: BlockHash,
        /// Position of the transaction in the block.
        index: usize,
        /// Why it is invalid.
        error: TxError<E>,
    },
    /// The block lists fewer reward entries than its transactions earn.
    #[error("block {block} omits the reward of {} to {} for {}", expected.amount, expected.to, expected.cause)]
    RewardMissing {
        /// The block.
        block: BlockHash,
        /// The first reward left out.
        expected: Box<Reward>,
    },
    /// The block lists a reward entry its transactions do not earn.
    #[error("block {block} lists an unearned reward of {} to {}", found.amount, found.to)]
    RewardUnexpected {
        /// The block.
        block: BlockHash,
        /// The extra reward entry.
        found: Box<Reward>,
    },
    /// A reward entry differs from the one the rules compute.
    #[error("block {block}, reward #{index}: expected {} to {}, found {} to {}", expected.amount, expected.to, found.amount, found.to)]
    RewardMismatch {
        /// The block.
        block: BlockHash,
        /// Position of the reward entry.
        index: usize,
        /// What the rules compute.
        expected: Box<Reward>,
        /// What the block lists.
        found: Box<Reward>,
    },
    /// The block is, or descends from, a block already found invalid.
    #[error("block {block} is, or descends from, an invalid block")]
    KnownInvalid {
        /// The block.
        block: BlockHash,
    },
}

impl<E> BlockError<E> {
    /// The block concerned.
    pub fn block(&self) -> BlockHash {
        match self {
            BlockError::TooLarge { block, .. }
            | BlockError::TooManyEntries { block, .. }
            | BlockError::InsufficientWork { block, .. }
            | BlockError::WrongHeight { block, .. }
            | BlockError::BeforeParent { block, .. }
            | BlockError::FromTheFuture { block, .. }
            | BlockError::UnauthorisedProducer { block, .. }
            | BlockError::ConflictsWithFinal { block, .. }
            | BlockError::BadProducerSignature { block }
            | BlockError::MerkleMismatch { block, .. }
            | BlockError::Transaction { block, .. }
            | BlockError::RewardMissing { block, .. }
            | BlockError::RewardUnexpected { block, .. }
            | BlockError::RewardMismatch { block, .. }
            | BlockError::KnownInvalid { block } => *block,
        }
    }
}

/// Why a producer should not produce on the current tip (see
/// [`Ledger::may_produce`](crate::Ledger::may_produce)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The account is not an authorised producer of this network.
    #[error("{producer} is not an authorised producer of this network")]
    NotAuthorised {
        /// The account.
        producer: AccountId,
    },
    /// The producer already built on a block that the best chain has left, and no
    /// block that conflicts with it is final yet: building here too would count its
    /// vote on both branches, which is how two conflicting blocks could both become
    /// final.
    #[error(
        "{producer} built on block {voted} at height {height}, which the best chain has left; \
         it may produce again once that block or a block conflicting with it is final"
    )]
    Locked {
        /// The producer.
        producer: AccountId,
        /// The block it built on (the parent of its latest block).
        voted: BlockHash,
        /// That block's height.
        height: Height,
    },
}

/// This node could not read the body of a block it holds (its store failed, lost the
/// block, or returned another block): a fault of the node, not a verdict on the block.
///
/// The ledger stops the work that needed the body and keeps its best chain as it was
/// when it can (see [`BlockOutcome::fault`](crate::BlockOutcome::fault)). A node should
/// stop on it, as it would on any failing disk, and resync what it lacks on restart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read block {block} from this node's store: {source}")]
pub struct BodyFault {
    /// The block whose body was needed.
    pub block: BlockHash,
    /// What the store reported.
    pub source: StoreFailure,
}

/// A failure of the block store, kept with its source error.
///
/// Two failures compare equal when their messages do: enough for tests, since the store
/// error itself need not be comparable.
#[derive(Debug, Clone)]
pub struct StoreFailure(pub std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl StoreFailure {
    /// Wraps a store error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreFailure(std::sync::Arc::new(error))
    }
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for StoreFailure {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for StoreFailure {}
