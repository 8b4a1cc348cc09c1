//! The ledger: block tree, fork choice, incremental state, mempool.
//!
//! One type, [`Ledger`], split by concern over these files, each adding an
//! `impl Ledger` block:
//!
//! - `mod.rs`: the [`Ledger`] struct, construction, queries, and the outcome types.
//! - `admit.rs`: mempool admission ([`Ledger::submit_transaction`]) and re-checking the
//!   pool after the best chain changes.
//! - `import.rs`: the one entry point for a block ([`Ledger::submit`], whose
//!   [`BlockInput`] says whether it is fresh, stored or prepared), the orphan
//!   hand-off, and the bulk import pipeline built on it ([`Ledger::import_blocks`],
//!   [`Ledger::import_stream`]).
//! - `validate.rs`: the checks a block passes, cheap to expensive, and
//!   [`Ledger::validate_block`].
//! - `tree.rs`: the block tree, finality, fork choice, branch switches, the memory of
//!   invalid blocks, the bodies waiting to be stored, and replay from genesis.
//! - `orphans.rs`: the bounded pool of blocks waiting for their parent.
//! - `produce.rs`: [`Ledger::may_produce`], block templates and mining.

mod admit;
mod import;
mod orphans;
mod produce;
mod tree;
mod validate;

pub use import::BlockInput;

use std::collections::HashMap;
use std::sync::Arc;

use crate::block::{Block, BlockHeader};
use crate::bounded::BoundedSet;
use crate::error::{BlockError, BodyFault, TxError};
use crate::genesis::{Genesis, GenesisError};
use crate::hash::{BlockHash, TxId};
use crate::keys::AccountId;
use crate::limits;
use crate::mempool::{Mempool, PendingTx};
use crate::policy::Policy;
use crate::state::{ChainState, Undo};
use crate::store::{BodySource, MemoryBodies};
use crate::units::{Amount, Height, Timestamp};
use crate::verify::KeyCache;

use orphans::Orphans;
use tree::{Entry, Finality};

/// A block body shared between the ledger, its store and its callers.
pub type SharedBlock<P> = Arc<Block<<P as Policy>::Payload>>;

/// A block this ledger has checked: everything a block is checked against its parent
/// for (limits, work, links, producer, Merkle root, signatures), with its hash and
/// transaction ids computed once.
///
/// Only the ledger creates one: decoding gives a [`Block`], checking turns it into
/// this type, and nothing else enters the block tree or the best chain, where the
/// state rules are applied to it. [`Ledger::validate_block`] returns one that also
/// passed the state rules on the tip.
#[derive(Clone, Debug)]
pub struct ValidatedBlock<T> {
    block: Arc<Block<T>>,
    hash: BlockHash,
    ids: Arc<[TxId]>,
}

impl<T: serde::Serialize> ValidatedBlock<T> {
    /// A block of this ledger's tree read back from memory or the store: it was checked
    /// on entry, and its hash was checked on reading.
    fn of_stored(block: Arc<Block<T>>) -> Self {
        let ids: Arc<[TxId]> = block.transactions.iter().map(|tx| tx.id()).collect();
        ValidatedBlock {
            hash: block.hash(),
            block,
            ids,
        }
    }
}

impl<T> ValidatedBlock<T> {
    /// The block.
    pub fn block(&self) -> &Arc<Block<T>> {
        &self.block
    }

    /// Its hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// The ids of its transactions, in order.
    pub fn tx_ids(&self) -> &[TxId] {
        &self.ids
    }
}

/// The current best chain's tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Hash of the tip block (the genesis hash for an empty chain).
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Cumulative work of the chain up to it.
    pub work: u128,
    /// Height of the chain's final block (see [`Ledger::final_height`]).
    pub final_height: Height,
}

/// A change of the best chain.
#[derive(Clone, Debug, PartialEq)]
pub struct TipChange<E> {
    /// The tip before.
    pub old_tip: BlockHash,
    /// The tip after.
    pub new_tip: BlockHash,
    /// Height of the new tip.
    pub new_height: Height,
    /// Blocks that left the best chain, newest first (empty when the chain just grew).
    pub disconnected: Vec<BlockHash>,
    /// Blocks that joined the best chain, oldest first.
    pub connected: Vec<BlockHash>,
    /// Transactions of disconnected blocks that are back in the mempool.
    pub returned: Vec<TxId>,
    /// Transactions that left the mempool (or did not return to it) because they are
    /// invalid on the new chain, or no longer fit in it
    /// ([`TxError::MempoolFull`]), with the reason.
    pub dropped: Vec<TxError<E>>,
}

impl<E> TipChange<E> {
    /// Whether blocks were abandoned (a branch switch), not just added.
    pub fn is_reorg(&self) -> bool {
        !self.disconnected.is_empty()
    }
}

/// What became of a submitted block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Valid so far and in the block tree (on the best chain or a side branch).
    Accepted,
    /// Its parent is unknown; it waits in the orphan pool for `missing`.
    Orphan {
        /// The parent to fetch.
        missing: BlockHash,
    },
    /// Already known.
    Duplicate,
    /// Invalid, or descending from an invalid block (see [`BlockOutcome::invalid`]).
    Invalid,
}

/// The result of [`Ledger::submit`].
#[derive(Clone, Debug)]
pub struct BlockOutcome<E> {
    /// The submitted block's hash.
    pub hash: BlockHash,
    /// What became of it.
    pub status: BlockStatus,
    /// Blocks added to the tree, in order: this one and orphans it unlocked.
    pub accepted: Vec<BlockHash>,
    /// Best-chain changes, in the order they happened.
    pub tip_changes: Vec<TipChange<E>>,
    /// Blocks found invalid while processing (this one, an ancestor, or an orphan).
    pub invalid: Vec<(BlockHash, BlockError<E>)>,
    /// This node could not read a block body it holds, so processing stopped early:
    /// blocks listed in [`BlockOutcome::accepted`] are in the tree, but a branch switch
    /// they called for did not happen (the best chain is as it was) and orphans they
    /// would have unlocked still wait. Not a verdict on any block; the node should stop.
    pub fault: Option<BodyFault>,
}

impl<E: Clone> BlockOutcome<E> {
    /// `Err` with the reason if the submitted block was invalid, else the outcome.
    ///
    /// The reason is the submitted block's own entry in [`BlockOutcome::invalid`]; failing
    /// that (an ancestor was at fault), the first entry that is not merely "descends
    /// from an invalid block", since orphans that fell with it are listed too.
    pub fn into_result(self) -> Result<Self, BlockError<E>> {
        if self.status == BlockStatus::Invalid {
            let own = self.invalid.iter().find(|(h, _)| *h == self.hash);
            let root = || {
                self.invalid
                    .iter()
                    .find(|(_, e)| !matches!(e, BlockError::KnownInvalid { .. }))
            };
            let error = own
                .or_else(root)
                .or(self.invalid.first())
                .map(|(_, e)| e.clone())
                .unwrap_or(BlockError::KnownInvalid { block: self.hash });
            return Err(error);
        }
        Ok(self)
    }

    /// Whether the best chain changed.
    pub fn tip_changed(&self) -> bool {
        !self.tip_changes.is_empty()
    }
}

/// Why replaying the chain from genesis failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError<E> {
    /// The store does not have a block of the best chain.
    #[error("block {0} of the best chain is missing from the store")]
    MissingBody(BlockHash),
    /// A stored block does not match the chain (wrong hash or link) or is invalid.
    #[error("replay failed: {0}")]
    Block(#[from] BlockError<E>),
    /// The store failed to read a block of the best chain.
    #[error("replay failed: {0}")]
    Unreadable(#[from] BodyFault),
}

/// Where a submitted block comes from, which decides what is re-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// From a peer or a user: every check.
    Untrusted,
    /// Reloaded from this node's own store, where only fully verified blocks are put:
    /// hashes, links and state are re-checked, signatures and the clock are not.
    OwnStore,
}

/// The ledger of one network: every valid block it has seen, the best chain among
/// them, the state that chain implies, and the pool of pending transactions.
///
/// Generic over the application [`Policy`] `P` and the [`BodySource`] `B` it reads
/// stored block bodies from. Never reads a clock: operations that depend on time take
/// `now`. Never writes: blocks it accepts wait in memory until the runtime stores them
/// (see [`Ledger::unstored_block`] and [`Ledger::mark_stored`]).
pub struct Ledger<P: Policy, B: BodySource<P::Payload> = MemoryBodies<<P as Policy>::Payload>> {
    policy: P,
    genesis: Genesis,
    genesis_hash: BlockHash,
    members: HashMap<AccountId, usize>,
    /// The authorised producers with their index in the genesis list; `None` for open
    /// mining, which has no finality.
    producers: Option<HashMap<AccountId, u32>>,
    /// Each producer's highest block in the tree (any branch): its parent is the
    /// block the producer last built on, which [`Ledger::may_produce`] keeps it to.
    latest_by: HashMap<AccountId, (Height, BlockHash)>,
    tree: HashMap<BlockHash, Entry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// The best chain, indexed by height; `chain[0]` is the genesis hash.
    chain: Vec<BlockHash>,
    undo: HashMap<BlockHash, Undo<P::Undo>>,
    state: ChainState<P::State>,
    /// Blocks known invalid, so a peer resending one is refused at once.
    invalid: BoundedSet<BlockHash>,
    orphans: Orphans<P::Payload>,
    mempool: Mempool<P>,
    /// Transactions whose signature was verified, so a transaction checked in the
    /// mempool is not checked again in its block.
    sigs: BoundedSet<TxId>,
    /// Producer signatures verified, by [`producer_key`](crate::verify::producer_key).
    producer_sigs: BoundedSet<crate::Hash>,
    keys: KeyCache,
    /// Where stored bodies are read.
    source: B,
    /// Bodies of blocks accepted into the tree that the runtime has not reported
    /// stored: every read looks here before `source`.
    unstored: HashMap<BlockHash, SharedBlock<P>>,
    /// Whether accepted bodies are kept in `unstored` (see [`Ledger::retain_unstored`]).
    retain: bool,
}

impl<P: Policy> Ledger<P> {
    /// A ledger for the network `genesis` with no store: it keeps every block body it
    /// accepts in memory.
    pub fn new(genesis: Genesis, policy: P) -> Result<Self, GenesisError> {
        Ledger::with_store(genesis, policy, MemoryBodies::default())
    }
}

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
    /// A ledger for the network `genesis` that reads stored block bodies from `source`.
    ///
    /// The source's existing content is not read: reload stored blocks with
    /// [`BlockInput::Stored`].
    pub fn with_store(genesis: Genesis, policy: P, source: B) -> Result<Self, GenesisError> {
        genesis.check()?;
        let genesis_hash = genesis.hash();
        let members = genesis
            .roster
            .iter()
            .enumerate()
            .map(|(i, m)| (m.account, i))
            .collect();
        let producers = genesis.producers.as_ref().map(|p| {
            (p.iter().copied())
                .zip(0..)
                .collect::<HashMap<AccountId, u32>>()
        });
        let state = ChainState::genesis(&policy, &genesis);
        let mut tree = HashMap::new();
        tree.insert(
            genesis_hash,
            Entry {
                height: Height(0),
                parent: BlockHash::default(),
                timestamp: genesis.timestamp,
                work: 0,
                header: None,
                finality: Finality::default(),
            },
        );
        Ok(Ledger {
            policy,
            genesis,
            genesis_hash,
            members,
            producers,
            latest_by: HashMap::new(),
            tree,
            children: HashMap::new(),
            chain: vec![genesis_hash],
            undo: HashMap::new(),
            state,
            invalid: BoundedSet::new(limits::MAX_INVALID_REMEMBERED),
            orphans: Orphans::default(),
            mempool: Mempool::default(),
            sigs: BoundedSet::new(limits::MAX_SIG_CACHE),
            producer_sigs: BoundedSet::new(limits::MAX_SIG_CACHE),
            keys: KeyCache::default(),
            source,
            unstored: HashMap::new(),
            retain: true,
        })
    }

    // ----- queries -------------------------------------------------------------------

    /// The network's genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis hash, which names the network.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis_hash
    }

    /// The application policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The source stored block bodies are read from.
    pub fn store(&self) -> &B {
        &self.source
    }

    /// The body of a block this ledger accepted (it is in [`BlockOutcome::accepted`])
    /// and that has not been reported stored with [`Ledger::mark_stored`]: what the
    /// runtime is to write. `None` for blocks that came from the store itself
    /// ([`BlockInput::Stored`]) and for blocks already stored.
    pub fn unstored_block(&self, hash: &BlockHash) -> Option<&SharedBlock<P>> {
        self.unstored.get(hash)
    }

    /// Whether `hash` is a block of the tree still waiting to be stored (see
    /// [`Ledger::unstored_block`]).
    pub fn is_unstored(&self, hash: &BlockHash) -> bool {
        self.unstored.contains_key(hash)
    }

    /// Every block waiting to be stored, in no particular order: what a runtime that
    /// takes over a ledger built without it (a test's, a tool's) must write first.
    pub fn unstored_blocks(&self) -> impl ExactSizeIterator<Item = &SharedBlock<P>> {
        self.unstored.values()
    }

    /// Number of blocks waiting to be stored.
    pub fn unstored_count(&self) -> usize {
        self.unstored.len()
    }

    /// Whether the ledger keeps the body of each block it accepts until it is reported
    /// stored (`true`, the default). With `false` it keeps none, and the caller vouches
    /// that its source holds every block it submits: a tool that verifies a store,
    /// reading each block from that store, needs no second copy in memory. A branch
    /// switch that needs a body the source lacks is then a [`BodyFault`].
    pub fn retain_unstored(&mut self, retain: bool) {
        self.retain = retain;
        if !retain {
            self.unstored.clear();
        }
    }

    /// The runtime made these blocks durable in the [`BodySource`]: the ledger drops
    /// its own copies and reads them from the source from now on. Hashes it does not
    /// hold are ignored.
    pub fn mark_stored(&mut self, hashes: impl IntoIterator<Item = BlockHash>) {
        for hash in hashes {
            self.unstored.remove(&hash);
        }
    }

    /// The best chain's tip.
    pub fn tip(&self) -> Tip {
        let hash = *self.chain.last().expect("the chain always holds genesis");
        let entry = &self.tree[&hash];
        Tip {
            hash,
            height: entry.height,
            timestamp: entry.timestamp,
            work: entry.work,
            final_height: entry.finality.final_height,
        }
    }

    /// Height of the best chain's final block: the highest block that a majority of
    /// the genesis's authorised producers have built on (produced a descendant of). Fork
    /// choice never crosses it, and a branch that conflicts with it is refused whatever
    /// its work ([`BlockError::ConflictsWithFinal`]). Always genesis (0) on a network
    /// with open mining, which has no finality.
    pub fn final_height(&self) -> Height {
        self.tip().final_height
    }

    /// The hash of the final block ([`Ledger::final_height`]).
    pub fn final_hash(&self) -> BlockHash {
        self.chain[self.final_height().0 as usize]
    }

    /// The confirmed state at the tip.
    pub fn state(&self) -> &ChainState<P::State> {
        &self.state
    }

    /// The confirmed balance of `account`.
    pub fn balance(&self, account: &AccountId) -> Amount {
        self.state.balance(account)
    }

    /// The next nonce `account` should use: above its confirmed and pending ones.
    /// Once an account has used `u64::MAX` no nonce is above it, and this returns
    /// `u64::MAX`, which is refused as stale.
    pub fn next_nonce(&self, account: &AccountId) -> u64 {
        let pending = self.mempool.nonces.get(account).copied().unwrap_or(0);
        self.state.nonce(account).max(pending).saturating_add(1)
    }

    /// The best chain's block hashes, indexed by height (`[0]` is the genesis hash).
    pub fn main_chain(&self) -> &[BlockHash] {
        &self.chain
    }

    /// Whether `hash` is on the best chain.
    pub fn is_on_main_chain(&self, hash: &BlockHash) -> bool {
        self.tree
            .get(hash)
            .is_some_and(|e| self.chain.get(e.height.0 as usize) == Some(hash))
    }

    /// The header of a known block (`None` for unknown blocks and for genesis).
    pub fn header(&self, hash: &BlockHash) -> Option<&BlockHeader> {
        self.tree.get(hash).and_then(|e| e.header.as_ref())
    }

    /// The height of a block in the tree.
    pub fn height_of(&self, hash: &BlockHash) -> Option<Height> {
        self.tree.get(hash).map(|e| e.height)
    }

    /// Whether the block is in the tree, waiting as an orphan, or known invalid.
    pub fn knows_block(&self, hash: &BlockHash) -> bool {
        self.tree.contains_key(hash)
            || self.orphans.blocks.contains_key(hash)
            || self.invalid.contains(hash)
    }

    /// Number of blocks waiting for a parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.blocks.len()
    }

    /// Number of blocks in the tree, genesis included.
    pub fn tree_size(&self) -> usize {
        self.tree.len()
    }

    /// A block's body: from memory while it waits to be stored, else from the source.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<SharedBlock<P>>, B::Error> {
        match self.unstored.get(hash) {
            Some(block) => Ok(Some(Arc::clone(block))),
            None => self.source.get(hash),
        }
    }

    /// The pending transactions, in the order they would be mined.
    pub fn mempool(&self) -> impl ExactSizeIterator<Item = &PendingTx<P::Payload>> {
        self.mempool.txs.iter()
    }

    /// Whether a transaction is pending.
    pub fn is_pending(&self, id: &TxId) -> bool {
        self.mempool.ids.contains(id)
    }

    /// A block locator for the best chain: the tip, then hashes at exponentially
    /// growing distances, ending with genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut hashes = Vec::new();
        let mut height = self.chain.len() - 1;
        let mut step = 1;
        while height > 0 && hashes.len() < limits::MAX_LOCATOR_HASHES - 1 {
            hashes.push(self.chain[height]);
            if hashes.len() >= 10 {
                step *= 2;
            }
            height = height.saturating_sub(step);
        }
        hashes.push(self.genesis_hash);
        hashes
    }

    /// Best-chain hashes following the first locator entry that is on the best chain
    /// (genesis if none is), at most `limit` of them: the answer to a sync request.
    pub fn hashes_after(&self, locator: &[BlockHash], limit: usize) -> Vec<BlockHash> {
        let start = locator
            .iter()
            .take(limits::MAX_LOCATOR_HASHES)
            .find(|h| self.is_on_main_chain(h))
            .and_then(|h| self.height_of(h))
            .map_or(0, |h| h.0 as usize);
        self.chain
            .iter()
            .skip(start + 1)
            .take(limit)
            .copied()
            .collect()
    }
}
