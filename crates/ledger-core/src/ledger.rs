//! The ledger: block tree, fork choice, incremental state, mempool.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::block::{
    Block, BlockHeader, BlockTemplate, MineStatus, Reward, block_signing_message, merkle_entries,
    work,
};
use crate::codec;
use crate::error::{BlockError, ProduceError, StoreFailure, TxError};
use crate::genesis::{Genesis, GenesisError};
use crate::hash::{BlockHash, TxId};
use crate::keys::{AccountId, Keypair, verify_with};
use crate::limits;
use crate::mempool::{Mempool, PendingTx};
use crate::merkle::merkle_root;
use crate::policy::Policy;
use crate::prepared::{Digest, PreparedBlock};
use crate::state::{ChainState, Rules, Slot, Undo};
use crate::store::{BodyStore, MemoryBodies};
use crate::tx::{Transaction, signed_parts, signing_message, unsigned_part};
use crate::units::{Amount, Height, Timestamp};
use crate::verify::{self, KeyCache, Preverified, Remember, SigCache, SigItems};

/// A block body shared between the ledger, its store and its callers.
pub type SharedBlock<P> = Arc<Block<<P as Policy>::Payload>>;

/// A block the ledger has fully validated against its parent's state.
///
/// Only the ledger creates one: decoding gives a [`Block`], validation turns it into
/// this type.
#[derive(Clone, Debug)]
pub struct ValidatedBlock<T> {
    block: Arc<Block<T>>,
    hash: BlockHash,
    ids: Arc<[TxId]>,
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

/// A block that passed every check that does not need state (limits, work, links,
/// producer, Merkle root, signatures): it may enter the block tree.
struct CheckedBlock<T> {
    block: Arc<Block<T>>,
    hash: BlockHash,
    ids: Arc<[TxId]>,
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

/// The result of [`Ledger::submit_block`].
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

/// A node of the block tree: what is kept resident for every known block.
#[derive(Clone, Debug)]
struct Entry {
    height: Height,
    parent: BlockHash,
    timestamp: Timestamp,
    /// Cumulative work from genesis.
    work: u128,
    /// `None` for the genesis entry.
    header: Option<BlockHeader>,
    /// Finality of the chain that ends at this block.
    finality: Finality,
}

/// How final the chain ending at a block is: a block that a majority of the authorised
/// producers have built on (produced a descendant of) is final.
///
/// Kept per block of the tree in `O(majority)` space, and derived from the parent's in
/// `O(majority)` time: the latest distinct producers of the chain, newest first, with
/// the height of each one's latest block. When `majority` of them are known, every
/// block below the oldest one's latest block has been built on by all of them.
#[derive(Clone, Debug, Default)]
struct Finality {
    /// Height of the highest final block (genesis, 0, when none is).
    final_height: Height,
    /// The chain's latest distinct producers (by index in the genesis list), newest
    /// first, with the height of each one's latest block; at most `majority` of them.
    recent: Box<[(u32, Height)]>,
}

impl Finality {
    /// The finality of a chain that adds a block at `height` by the producer at
    /// `index` to the chain whose finality is `parent`, on a network of `majority`.
    fn after(parent: &Finality, index: u32, height: Height, majority: usize) -> Finality {
        let recent: Box<[(u32, Height)]> = std::iter::once((index, height))
            .chain(parent.recent.iter().copied().filter(|(p, _)| *p != index))
            .take(majority)
            .collect();
        let built_on = match recent.get(majority.saturating_sub(1)) {
            Some((_, oldest)) if recent.len() == majority => Height(oldest.0.saturating_sub(1)),
            _ => Height(0),
        };
        Finality {
            final_height: built_on.max(parent.final_height),
            recent,
        }
    }
}

/// A block waiting for its parent, with how it arrived: once the parent comes it is
/// checked as its own origin requires, whoever brought the parent.
struct Orphan<T> {
    block: Arc<Block<T>>,
    origin: Origin,
    /// The `now` it was submitted with.
    received: Timestamp,
    /// Its encoded size, counted against [`limits::MAX_ORPHAN_BYTES`].
    size: usize,
}

/// Blocks waiting for their parent, bounded in number and in bytes.
struct Orphans<T> {
    blocks: HashMap<BlockHash, Orphan<T>>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: VecDeque<BlockHash>,
    /// Total encoded size of `blocks`.
    bytes: usize,
}

impl<T> Default for Orphans<T> {
    fn default() -> Self {
        Orphans {
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Orphans<T> {
    fn insert(&mut self, hash: BlockHash, orphan: Orphan<T>) {
        if self.blocks.contains_key(&hash) {
            return;
        }
        self.by_parent
            .entry(orphan.block.header.prev)
            .or_default()
            .push(hash);
        self.bytes += orphan.size;
        self.blocks.insert(hash, orphan);
        self.order.push_back(hash);
        // Orphans that left through `children_of` stay in `order` until evicted; drop
        // them now and then so that `order` stays bounded too (amortised O(1)).
        if self.order.len() > 2 * limits::MAX_ORPHANS {
            self.order.retain(|h| self.blocks.contains_key(h));
        }
        while self.blocks.len() > limits::MAX_ORPHANS || self.bytes > limits::MAX_ORPHAN_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Orphan<T>> {
        let orphan = self.blocks.remove(hash)?;
        self.bytes -= orphan.size;
        let prev = orphan.block.header.prev;
        if let Some(siblings) = self.by_parent.get_mut(&prev) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&prev);
            }
        }
        Some(orphan)
    }

    fn children_of(&mut self, parent: &BlockHash) -> Vec<Orphan<T>> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        hashes.iter().filter_map(|h| self.remove(h)).collect()
    }
}

/// The ledger of one network: every valid block it has seen, the best chain among
/// them, the state that chain implies, and the pool of pending transactions.
///
/// Generic over the application [`Policy`] `P` and the [`BodyStore`] `B` that holds
/// block bodies. Never reads a clock: operations that depend on time take `now`.
pub struct Ledger<P: Policy, B: BodyStore<P::Payload> = MemoryBodies<<P as Policy>::Payload>> {
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
    invalid: HashSet<BlockHash>,
    invalid_order: VecDeque<BlockHash>,
    orphans: Orphans<P::Payload>,
    mempool: Mempool<P>,
    sigs: SigCache<TxId>,
    producer_sigs: SigCache<crate::Hash>,
    keys: KeyCache,
    bodies: B,
}

impl<P: Policy> Ledger<P> {
    /// A ledger for the network `genesis`, keeping block bodies in memory.
    pub fn new(genesis: Genesis, policy: P) -> Result<Self, GenesisError> {
        Ledger::with_store(genesis, policy, MemoryBodies::default())
    }
}

impl<P: Policy, B: BodyStore<P::Payload>> Ledger<P, B> {
    /// A ledger for the network `genesis` keeping block bodies in `bodies`.
    ///
    /// The store's existing content is not read: reload stored blocks with
    /// [`Ledger::submit_stored_block`].
    pub fn with_store(genesis: Genesis, policy: P, bodies: B) -> Result<Self, GenesisError> {
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
            invalid: HashSet::new(),
            invalid_order: VecDeque::new(),
            orphans: Orphans::default(),
            mempool: Mempool::default(),
            sigs: SigCache::default(),
            producer_sigs: SigCache::default(),
            keys: KeyCache::default(),
            bodies,
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

    /// The block-body store.
    pub fn store(&self) -> &B {
        &self.bodies
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

    /// A block's body from the store.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<SharedBlock<P>>, B::Error> {
        self.bodies.get(hash)
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

    // ----- transactions --------------------------------------------------------------

    /// Validates a transaction against the tip and the pending ones, and adds it to
    /// the mempool.
    pub fn submit_transaction(
        &mut self,
        tx: Transaction<P::Payload>,
        now: Timestamp,
    ) -> Result<TxId, TxError<P::Error>> {
        let encoded = codec::encode(&tx);
        let id = TxId(crate::Hash::of(&encoded));
        if encoded.len() > limits::MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                tx: id,
                size: encoded.len(),
                max: limits::MAX_TX_BYTES,
            });
        }
        if self.mempool.ids.contains(&id) {
            return Err(TxError::Duplicate { tx: id });
        }
        if self.mempool.txs.len() >= limits::MAX_MEMPOOL_TXS {
            return Err(TxError::MempoolFull {
                tx: id,
                capacity: limits::MAX_MEMPOOL_TXS,
            });
        }
        if !self.sigs.contains(&id) {
            let message = signing_message(&self.genesis_hash, unsigned_part(&encoded));
            let signed = (self.keys.get(&tx.author))
                .is_some_and(|key| verify_with(&key, &message, &tx.signature));
            if !signed {
                return Err(TxError::BadSignature { tx: id });
            }
            self.sigs.insert(id);
        }
        let slot = self.mempool_slot(now);
        let rules = Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            members: &self.members,
        };
        let mut undo = Undo::default();
        if let Some(pending) = self.mempool.pending.as_mut() {
            pending.apply_tx(rules, slot, id, &tx, &mut undo)?;
        } else {
            // Lay the pending transactions over the confirmed state, try this one on
            // top, and take them all off again: O(pending), no copy of the state.
            for entry in &self.mempool.txs {
                // They applied when admitted; one that no longer does is left out here
                // just as the next revalidation will drop it.
                let _ = self
                    .state
                    .apply_tx(rules, slot, entry.id, &entry.tx, &mut undo);
            }
            let applied = self.state.apply_tx(rules, slot, id, &tx, &mut undo);
            let snapshot = (applied.is_ok()
                && self.mempool.txs.len() + 1 >= limits::PENDING_SNAPSHOT_MIN)
                .then(|| self.state.clone());
            self.state.revert(&self.policy, undo);
            applied?;
            self.mempool.pending = snapshot;
        }
        self.mempool.push(PendingTx {
            id,
            size: encoded.len(),
            tx,
        });
        Ok(id)
    }

    fn mempool_slot(&self, now: Timestamp) -> Slot {
        let tip = self.tip();
        Slot {
            height: tip.height.next(),
            time: now.max(tip.timestamp),
        }
    }

    /// Re-applies the pending transactions in order over the confirmed state, drops
    /// (and returns) those that no longer apply, and restores the confirmed state.
    /// Costs O(pending), never a copy of the whole state, except that a large pool
    /// keeps the result as a snapshot so that each admission stays O(1) (see
    /// [`limits::PENDING_SNAPSHOT_MIN`]).
    fn revalidate_pending(&mut self, now: Timestamp) -> Vec<TxError<P::Error>> {
        let slot = self.mempool_slot(now);
        let txs = self.mempool.take_all();
        let rules = Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            members: &self.members,
        };
        let mut undo = Undo::default();
        let mut dropped = Vec::new();
        let mut kept = Vec::with_capacity(txs.len());
        for entry in txs {
            match self
                .state
                .apply_tx(rules, slot, entry.id, &entry.tx, &mut undo)
            {
                Ok(_) => kept.push(entry),
                Err(e) => dropped.push(e),
            }
        }
        let snapshot = (kept.len() >= limits::PENDING_SNAPSHOT_MIN).then(|| self.state.clone());
        self.state.revert(&self.policy, undo);
        for entry in kept {
            self.mempool.push(entry);
        }
        self.mempool.pending = snapshot;
        dropped
    }

    /// After a tip change: removes mined transactions, puts `returned` ones first, and
    /// re-checks the rest against the new tip.
    fn refresh_mempool(
        &mut self,
        mined: &HashSet<TxId>,
        returned: Vec<PendingTx<P::Payload>>,
        now: Timestamp,
    ) -> (Vec<TxId>, Vec<TxError<P::Error>>) {
        let old = self.mempool.take_all();
        let mut dropped = Vec::new();
        // A returned transaction is relayed again, so its signature must hold under the
        // network's rule even if this node never checked it (a block reloaded from its
        // own store, or a signature since forgotten by the cache): an honest node must
        // never relay what a peer would ban it for.
        let returned: Vec<PendingTx<P::Payload>> = returned
            .into_iter()
            .filter(|entry| {
                let signed = self.sigs.contains(&entry.id) || {
                    let message = entry.tx.signing_bytes(&self.genesis_hash);
                    (self.keys.get(&entry.tx.author))
                        .is_some_and(|key| verify_with(&key, &message, &entry.tx.signature))
                };
                if !signed {
                    dropped.push(TxError::BadSignature { tx: entry.id });
                }
                signed
            })
            .collect();
        let returned_ids: Vec<TxId> = returned.iter().map(|p| p.id).collect();
        for entry in returned.into_iter().chain(old) {
            if mined.contains(&entry.id) || self.mempool.ids.contains(&entry.id) {
                continue;
            }
            // Returned transactions can outnumber the room left: the pool stays bounded,
            // and what does not fit is reported, not silently lost.
            if self.mempool.txs.len() >= limits::MAX_MEMPOOL_TXS {
                dropped.push(TxError::MempoolFull {
                    tx: entry.id,
                    capacity: limits::MAX_MEMPOOL_TXS,
                });
                continue;
            }
            self.mempool.push(entry);
        }
        if self.mempool.txs.is_empty() {
            return (Vec::new(), dropped);
        }
        dropped.extend(self.revalidate_pending(now));
        let gone: HashSet<TxId> = dropped.iter().map(TxError::tx).collect();
        let back = returned_ids
            .into_iter()
            .filter(|id| !gone.contains(id) && self.mempool.ids.contains(id))
            .collect();
        (back, dropped)
    }

    // ----- blocks --------------------------------------------------------------------

    /// Validates a block and adds it to the tree; switches the best chain if it now
    /// leads to more work. A block with an unknown parent is kept as an orphan (see
    /// [`BlockStatus::Orphan`]) and connected once the parent arrives.
    #[must_use = "the outcome says whether the block was valid and what changed"]
    pub fn submit_block(
        &mut self,
        block: Block<P::Payload>,
        now: Timestamp,
    ) -> BlockOutcome<P::Error> {
        self.submit(Arc::new(block), now, Origin::Untrusted)
    }

    /// Like [`Ledger::submit_block`] for a block this node's own store returned: the
    /// store only ever holds fully verified blocks, so signatures and the clock are not
    /// checked again, while hashes, links and every state rule are, and the block is
    /// not written back.
    #[must_use = "the outcome says whether the stored block was still valid"]
    pub fn submit_stored_block(&mut self, block: Arc<Block<P::Payload>>) -> BlockOutcome<P::Error> {
        let now = block.header.timestamp;
        self.submit(block, now, Origin::OwnStore)
    }

    /// Like [`Ledger::submit_block`] for a block prepared ahead (see
    /// [`prepare_blocks`](crate::prepare_blocks)): every check and the same outcome,
    /// without encoding and hashing its transactions again.
    #[must_use = "the outcome says whether the block was valid and what changed"]
    pub fn submit_prepared(
        &mut self,
        prepared: PreparedBlock<P::Payload>,
        now: Timestamp,
    ) -> BlockOutcome<P::Error> {
        self.submit_prepared_as(prepared, now, Origin::Untrusted)
    }

    /// Like [`Ledger::submit_stored_block`] for a block prepared ahead: hashes, links
    /// and every state rule checked, signatures not, nothing encoded again.
    #[must_use = "the outcome says whether the stored block was still valid"]
    pub fn submit_stored_prepared(
        &mut self,
        prepared: PreparedBlock<P::Payload>,
    ) -> BlockOutcome<P::Error> {
        let now = prepared.block.header.timestamp;
        self.submit_prepared_as(prepared, now, Origin::OwnStore)
    }

    fn submit_prepared_as(
        &mut self,
        prepared: PreparedBlock<P::Payload>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let PreparedBlock {
            block,
            hash,
            digest,
        } = prepared;
        self.submit_with(block, hash, Some(digest), now, origin)
    }

    /// Verifies the producer and transaction signatures of many blocks at once (in
    /// parallel with the `parallel` feature) and remembers the valid ones, so
    /// submitting these blocks afterwards does not verify them again. For syncing and
    /// bulk verification; [`Ledger::import_blocks`] also overlaps this with validation.
    pub fn preverify_signatures(&mut self, blocks: &[Arc<Block<P::Payload>>]) {
        let verified = verify::preverify(&self.genesis_hash, blocks);
        self.accept_preverified(verified);
    }

    /// Remembers signatures [`preverify`](crate::preverify) found valid. Signatures
    /// checked for another network (another genesis hash) are ignored: a transaction
    /// signed for that network has the same id here, but no valid signature.
    pub fn accept_preverified(&mut self, verified: Preverified) {
        if verified.genesis != self.genesis_hash {
            return;
        }
        for id in verified.txs {
            self.sigs.insert(id);
        }
        for key in verified.producers {
            self.producer_sigs.insert(key);
        }
    }

    /// Submits a run of blocks, parent first, as a syncing or verifying node receives
    /// them: the signatures of each batch of [`limits::IMPORT_BATCH`] blocks are
    /// verified on every core while the previous batch is validated and applied, so
    /// state work hides behind signature checks. Returns each block's outcome, in order.
    pub fn import_blocks(
        &mut self,
        blocks: &[Arc<Block<P::Payload>>],
        now: Timestamp,
    ) -> Vec<BlockOutcome<P::Error>>
    where
        B: Send,
    {
        let mut outcomes = Vec::with_capacity(blocks.len());
        self.import_stream(blocks.iter().cloned(), now, |_, outcome| {
            outcomes.push(outcome);
            ControlFlow::Continue(())
        });
        outcomes
    }

    /// [`Ledger::import_blocks`] for a stream of blocks of any length, read as the
    /// import goes (from a reader thread's channel, say), so the pipeline never drains
    /// between reads and only a few batches are in memory. `each` receives every
    /// block's outcome in order and may stop the import with
    /// [`ControlFlow::Break`]; blocks not yet read are then left unread (it reads at
    /// most two batches ahead of the one being applied).
    pub fn import_stream<I>(
        &mut self,
        blocks: I,
        now: Timestamp,
        mut each: impl FnMut(&Arc<Block<P::Payload>>, BlockOutcome<P::Error>) -> ControlFlow<()> + Send,
    ) where
        B: Send,
        I: IntoIterator<Item = Arc<Block<P::Payload>>>,
        I::IntoIter: Send,
    {
        let genesis = self.genesis_hash;
        // Blocks that fail the cheap checks have no signature verified ahead.
        let screen = verify::Screen::new(&self.genesis);
        let mut blocks = blocks.into_iter();
        let read = |blocks: &mut I::IntoIter| -> Vec<Arc<Block<P::Payload>>> {
            blocks.by_ref().take(limits::IMPORT_BATCH).collect()
        };
        // Each batch is encoded once: ids, sizes and Merkle roots for validation come
        // from the same encodings as the signed messages.
        let prepare = |batch: &[Arc<Block<P::Payload>>]| {
            (!batch.is_empty()).then(|| {
                verify::prepare_and_preverify(
                    &genesis,
                    Some(&screen),
                    batch,
                    Remember::PartlySigned,
                )
            })
        };
        // A three-stage pipeline: while one batch is applied, the next one's signatures
        // are verified and the one after it is read, so reading (which runs in order)
        // overlaps the verification on every core instead of holding it up.
        let first = read(&mut blocks);
        let (prepared, mut unverified) = join(|| prepare(&first), || read(&mut blocks));
        drop(first);
        let Some((mut current, verified)) = prepared else {
            return;
        };
        self.accept_preverified(verified);
        loop {
            let (flow, (upcoming, next)) = join(
                || {
                    for prepared in current.drain(..) {
                        let block = Arc::clone(prepared.block());
                        let outcome = self.submit_prepared(prepared, now);
                        each(&block, outcome)?;
                    }
                    ControlFlow::Continue(())
                },
                || join(|| prepare(&unverified), || read(&mut blocks)),
            );
            if flow.is_break() {
                return;
            }
            let Some((prepared, verified)) = upcoming else {
                return;
            };
            self.accept_preverified(verified);
            current = prepared;
            unverified = next;
        }
    }

    fn submit(
        &mut self,
        block: Arc<Block<P::Payload>>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let hash = block.hash();
        self.submit_with(block, hash, None, now, origin)
    }

    /// [`Ledger::submit`] with the block's hash, and its digest when it was prepared.
    fn submit_with(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let mut outcome = BlockOutcome {
            hash,
            status: BlockStatus::Accepted,
            accepted: Vec::new(),
            tip_changes: Vec::new(),
            invalid: Vec::new(),
        };
        if self.tree.contains_key(&hash) || self.orphans.blocks.contains_key(&hash) {
            outcome.status = BlockStatus::Duplicate;
            return outcome;
        }
        if self.invalid.contains(&hash) || self.invalid.contains(&block.header.prev) {
            self.mark_invalid(hash);
            outcome.status = BlockStatus::Invalid;
            outcome
                .invalid
                .push((hash, BlockError::KnownInvalid { block: hash }));
            // Orphans that were waiting for it can never connect either.
            self.discard_orphans_of(&hash, &mut outcome);
            return outcome;
        }
        let size = match &digest {
            Some(digest) => digest.size,
            None => codec::encoded_len(&*block),
        };
        if let Err(error) = self.check_standalone(&block, hash, size) {
            return self.refuse(hash, error, outcome);
        }
        if !self.tree.contains_key(&block.header.prev) {
            if let Err(error) = self.check_orphan(&block, hash, origin) {
                return self.refuse(hash, error, outcome);
            }
            outcome.status = BlockStatus::Orphan {
                missing: block.header.prev,
            };
            let orphan = Orphan {
                block,
                origin,
                received: now,
                size,
            };
            self.orphans.insert(hash, orphan);
            return outcome;
        }
        // The block and then any orphans it unlocks, breadth first, each checked as
        // its own origin requires.
        let call_origin = origin;
        let mut queue = VecDeque::from([(block, hash, digest, origin, now)]);
        while let Some((block, hash, digest, origin, at)) = queue.pop_front() {
            let is_first = hash == outcome.hash;
            match self.accept(block, hash, digest, at, origin, &mut outcome) {
                Ok(()) => {
                    outcome.accepted.push(hash);
                    for child in self.orphans.children_of(&hash) {
                        let child_hash = child.block.hash();
                        // The clock reads at least what it read when the orphan came;
                        // a call for a stored block carries no clock reading at all.
                        let at = match call_origin {
                            Origin::Untrusted => child.received.max(now),
                            Origin::OwnStore => child.received,
                        };
                        queue.push_back((child.block, child_hash, None, child.origin, at));
                    }
                }
                Err(error) => {
                    // Orphans waiting on an invalid block are invalid too; not so when
                    // only this copy of their parent was bad (see `condemns_hash`).
                    if condemns_hash(&error) {
                        self.discard_orphans_of(&hash, &mut outcome);
                    }
                    if is_first || error.block() == outcome.hash {
                        outcome.status = BlockStatus::Invalid;
                    }
                    outcome.invalid.push((error.block(), error));
                }
            }
        }
        outcome
    }

    /// Remembers `hash` as invalid when `error` condemns the hash itself (not only this
    /// copy of the block: see `condemns_hash`).
    fn remember_if_condemned(&mut self, hash: BlockHash, error: &BlockError<P::Error>) {
        if condemns_hash(error) {
            self.mark_invalid(hash);
        }
    }

    /// The outcome of a block refused, before it reached the tree, for `error`.
    fn refuse(
        &mut self,
        hash: BlockHash,
        error: BlockError<P::Error>,
        mut outcome: BlockOutcome<P::Error>,
    ) -> BlockOutcome<P::Error> {
        self.remember_if_condemned(hash, &error);
        outcome.status = BlockStatus::Invalid;
        outcome.invalid.push((hash, error));
        outcome
    }

    fn discard_orphans_of(&mut self, hash: &BlockHash, outcome: &mut BlockOutcome<P::Error>) {
        let mut stack = vec![*hash];
        while let Some(parent) = stack.pop() {
            for child in self.orphans.children_of(&parent) {
                let child_hash = child.block.hash();
                self.mark_invalid(child_hash);
                outcome
                    .invalid
                    .push((child_hash, BlockError::KnownInvalid { block: child_hash }));
                stack.push(child_hash);
            }
        }
    }

    /// Checks before a block waits for its parent that need no parent: the producer is
    /// authorised, the body is the one the header names (Merkle root) and the producer
    /// signed it. Otherwise a mangled copy could hold the genuine block's place in the
    /// orphan pool (same hash, so the genuine one would be a duplicate), and junk could
    /// crowd out real orphans.
    fn check_orphan(
        &mut self,
        block: &Block<P::Payload>,
        hash: BlockHash,
        origin: Origin,
    ) -> Result<(), BlockError<P::Error>> {
        let header = &block.header;
        if let Some(producers) = &self.producers
            && !producers.contains_key(&header.producer)
        {
            return Err(BlockError::UnauthorisedProducer {
                block: hash,
                producer: header.producer,
            });
        }
        let root = merkle_root(&block.merkle_entries());
        if root != header.merkle_root {
            return Err(BlockError::MerkleMismatch {
                block: hash,
                expected: root,
                found: header.merkle_root,
            });
        }
        if origin == Origin::Untrusted {
            let key = verify::producer_key(&hash, &block.signature);
            if !self.producer_sigs.contains(&key) {
                let message = block_signing_message(&hash);
                let signed = (self.keys.get(&header.producer))
                    .is_some_and(|key| verify_with(&key, &message, &block.signature));
                if !signed {
                    return Err(BlockError::BadProducerSignature { block: hash });
                }
                self.producer_sigs.insert(key);
            }
        }
        Ok(())
    }

    /// Checks needing nothing but the block: limits and proof of work.
    fn check_standalone(
        &self,
        block: &Block<P::Payload>,
        hash: BlockHash,
        size: usize,
    ) -> Result<(), BlockError<P::Error>> {
        let entries = block.transactions.len().max(block.rewards.len());
        if block.transactions.len() > limits::MAX_TXS_PER_BLOCK
            || block.rewards.len() > limits::MAX_REWARDS_PER_BLOCK
        {
            return Err(BlockError::TooManyEntries {
                block: hash,
                count: entries,
                max: limits::MAX_TXS_PER_BLOCK,
            });
        }
        if size > limits::MAX_BLOCK_BYTES {
            return Err(BlockError::TooLarge {
                block: hash,
                size,
                max: limits::MAX_BLOCK_BYTES,
            });
        }
        if !BlockHeader::meets_target(&hash, self.genesis.pow_bits) {
            return Err(BlockError::InsufficientWork {
                block: hash,
                bits: hash.hash().leading_zero_bits(),
                required: self.genesis.pow_bits,
            });
        }
        Ok(())
    }

    /// Checks that need the parent's header but no state: height, time, producer,
    /// Merkle root, signatures.
    fn check_in_context(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
    ) -> Result<CheckedBlock<P::Payload>, BlockError<P::Error>> {
        let header = &block.header;
        let parent = &self.tree[&header.prev];
        let expected = parent.height.next();
        if header.height != expected {
            return Err(BlockError::WrongHeight {
                block: hash,
                expected,
                found: header.height,
            });
        }
        if header.timestamp < parent.timestamp {
            return Err(BlockError::BeforeParent {
                block: hash,
                timestamp: header.timestamp,
                parent: parent.timestamp,
            });
        }
        let limit = now.plus_millis(limits::MAX_FUTURE_DRIFT_MS);
        if origin == Origin::Untrusted && header.timestamp > limit {
            return Err(BlockError::FromTheFuture {
                block: hash,
                timestamp: header.timestamp,
                limit,
            });
        }
        if let Some(producers) = &self.producers
            && !producers.contains_key(&header.producer)
        {
            return Err(BlockError::UnauthorisedProducer {
                block: hash,
                producer: header.producer,
            });
        }
        // One encoding per transaction gives its size, its id and its signed bytes; a
        // prepared block brings the first two, so only signatures not yet verified
        // need an encoding here.
        let mut items = SigItems::default();
        let mut item_tx: Vec<usize> = Vec::new();
        let mut bad_key: Option<usize> = None;
        // Signatures need checking for an untrusted block, unless the bulk import's own
        // preparation verified all of them for this network from these encodings.
        let signed = digest
            .as_ref()
            .is_some_and(|d| d.signed_for == Some(self.genesis_hash));
        let untrusted = origin == Origin::Untrusted && !signed;
        let producer_key = untrusted.then(|| verify::producer_key(&hash, &block.signature));
        let check_producer = producer_key.is_some_and(|key| !self.producer_sigs.contains(&key));
        // The producer's signature rides in the same batch, first, so it is reported
        // before any transaction's; an unusable producer key is reported once the body
        // is known to be the one the header names.
        let mut producer_usable = true;
        if check_producer {
            if self.keys.usable(&header.producer) {
                let message = block_signing_message(&hash);
                items.push(&header.producer, &[&message], &block.signature);
            } else {
                producer_usable = false;
            }
        }
        let (genesis_hash, sigs, keys) = (&self.genesis_hash, &self.sigs, &mut self.keys);
        let unverified = |id: &TxId| untrusted && !sigs.contains(id);
        let mut sign_item = |index: usize, tx: &Transaction<P::Payload>, encoded: &[u8]| {
            if keys.usable(&tx.author) {
                let message = signed_parts(genesis_hash, unsigned_part(encoded));
                items.push(&tx.author, &message, &tx.signature);
                item_tx.push(index);
            } else {
                bad_key.get_or_insert(index);
            }
        };
        let digest = match digest {
            Some(digest) => {
                for (index, (tx, id)) in block.transactions.iter().zip(&*digest.ids).enumerate() {
                    if unverified(id) {
                        sign_item(index, tx, &codec::encode(tx));
                    }
                }
                digest
            }
            None => Digest::of(&block, |index, tx, encoded, id| {
                if unverified(&id) {
                    sign_item(index, tx, encoded);
                }
            }),
        };
        let ids = digest.ids;
        // Reported only once the Merkle root shows the body is the one the header names.
        let malformed = digest
            .malformed
            .map(|(index, problem)| tx_error(hash, index, problem.error(ids[index])));
        let root = digest.merkle_root;
        if root != header.merkle_root {
            return Err(BlockError::MerkleMismatch {
                block: hash,
                expected: root,
                found: header.merkle_root,
            });
        }
        if let Some(error) = malformed {
            return Err(error);
        }
        if let Some(producer_key) = producer_key {
            if !producer_usable {
                return Err(BlockError::BadProducerSignature { block: hash });
            }
            let offset = usize::from(check_producer);
            let first_bad = items.first_invalid();
            if first_bad == Some(0) && check_producer {
                return Err(BlockError::BadProducerSignature { block: hash });
            }
            let bad_tx = first_bad.map(|i| item_tx[i - offset]);
            if let Some(index) = [bad_tx, bad_key].into_iter().flatten().min() {
                return Err(tx_error(
                    hash,
                    index,
                    TxError::BadSignature { tx: ids[index] },
                ));
            }
            // Remember what was verified here (cached ones are remembered already),
            // should a reorganisation bring these transactions back to the mempool.
            for index in item_tx {
                self.sigs.insert(ids[index]);
            }
            self.producer_sigs.insert(producer_key);
        }
        Ok(CheckedBlock { block, hash, ids })
    }

    /// Adds a block whose parent is in the tree; runs fork choice.
    fn accept(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
        outcome: &mut BlockOutcome<P::Error>,
    ) -> Result<(), BlockError<P::Error>> {
        if self.invalid.contains(&block.header.prev) {
            self.mark_invalid(hash);
            return Err(BlockError::KnownInvalid { block: hash });
        }
        if let Err(error) = self.check_final(&block.header.prev, hash) {
            self.remember_if_condemned(hash, &error);
            return Err(error);
        }
        let checked = match self.check_in_context(block, hash, digest, now, origin) {
            Ok(checked) => checked,
            Err(error) => {
                self.remember_if_condemned(hash, &error);
                return Err(error);
            }
        };
        if origin == Origin::Untrusted
            && let Err(e) = self.bodies.put(&hash, &checked.block)
        {
            return Err(BlockError::Store {
                block: hash,
                source: StoreFailure::new(e),
            });
        }
        let header = checked.block.header.clone();
        let parent = &self.tree[&header.prev];
        let finality = match &self.producers {
            Some(producers) => {
                let index = producers[&header.producer];
                Finality::after(
                    &parent.finality,
                    index,
                    header.height,
                    producers.len() / 2 + 1,
                )
            }
            None => Finality::default(),
        };
        let entry = Entry {
            height: header.height,
            parent: header.prev,
            timestamp: header.timestamp,
            work: parent.work.saturating_add(work(self.genesis.pow_bits)),
            header: Some(header.clone()),
            finality,
        };
        self.tree.insert(hash, entry);
        if self.producers.is_some() {
            let latest = self
                .latest_by
                .entry(header.producer)
                .or_insert((Height(0), hash));
            if header.height >= latest.0 {
                *latest = (header.height, hash);
            }
        }
        self.children.entry(header.prev).or_default().push(hash);
        if self.is_better_than_tip(&hash) {
            self.switch_to(hash, Some(checked), now, outcome)?;
        }
        Ok(())
    }

    /// Fork choice: the chain with the higher final block wins; then more cumulative
    /// work; then, on equal work, the smaller tip hash. Every node that has seen the
    /// same blocks ranks them the same, whatever the order they came in.
    fn rank(&self, hash: &BlockHash) -> (Height, u128, std::cmp::Reverse<BlockHash>) {
        let entry = &self.tree[hash];
        let work = entry.work;
        (entry.finality.final_height, work, std::cmp::Reverse(*hash))
    }

    fn is_better_than_tip(&self, hash: &BlockHash) -> bool {
        self.rank(hash) > self.rank(&self.tip().hash)
    }

    /// Refuses a block whose parent `prev` is not a descendant of (or is) the final
    /// block: its branch would revert finality. Walks back from `prev` only as far as
    /// the best chain or the final height, whichever comes first.
    fn check_final(&self, prev: &BlockHash, hash: BlockHash) -> Result<(), BlockError<P::Error>> {
        let final_height = self.final_height();
        let mut cursor = *prev;
        loop {
            let entry = &self.tree[&cursor];
            if self.is_on_main_chain(&cursor) {
                if entry.height >= final_height {
                    return Ok(());
                }
                break;
            }
            if entry.height <= final_height {
                break;
            }
            cursor = entry.parent;
        }
        Err(BlockError::ConflictsWithFinal {
            block: hash,
            final_height,
            final_hash: self.final_hash(),
        })
    }

    fn rules(&self) -> Rules<'_, P> {
        Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            members: &self.members,
        }
    }

    /// Makes `target` the tip: disconnects down to the fork point, connects the branch.
    /// If a branch block turns out invalid it and its descendants are removed, and the
    /// best of the old chain and the valid part of the branch is kept.
    fn switch_to(
        &mut self,
        target: BlockHash,
        mut in_hand: Option<CheckedBlock<P::Payload>>,
        now: Timestamp,
        outcome: &mut BlockOutcome<P::Error>,
    ) -> Result<(), BlockError<P::Error>> {
        let old_tip = self.tip().hash;
        let mut branch = Vec::new();
        let mut cursor = target;
        while !self.is_on_main_chain(&cursor) {
            branch.push(cursor);
            cursor = self.tree[&cursor].parent;
        }
        branch.reverse();
        let fork = self.tree[&cursor].height;
        let store_err = |hash: BlockHash, e: B::Error| BlockError::Store {
            block: hash,
            source: StoreFailure::new(e),
        };

        // Disconnect.
        let disconnected: Vec<BlockHash> = self.chain[fork.0 as usize + 1..]
            .iter()
            .rev()
            .copied()
            .collect();
        let mut abandoned = Vec::new();
        for hash in &disconnected {
            let body = self
                .bodies
                .get(hash)
                .map_err(|e| store_err(*hash, e))?
                .ok_or_else(|| missing_body(*hash))?;
            abandoned.push(body);
        }
        self.rewind_to(fork)?;

        // Connect.
        let mut connected = Vec::new();
        let mut mined_ids: Vec<Arc<[TxId]>> = Vec::new();
        let mut failure = None;
        for hash in &branch {
            let checked = match in_hand.take_if(|c| c.hash == *hash) {
                Some(checked) => checked,
                None => match self.load_checked(hash) {
                    Ok(checked) => checked,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
            };
            match self.connect(&checked) {
                Ok(()) => {
                    connected.push(*hash);
                    mined_ids.push(Arc::clone(&checked.ids));
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }

        if let Some(error) = &failure {
            if error.is_invalid_block() {
                self.remove_invalid_subtree(error.block(), outcome);
            }
            // Keep the valid part of the branch only if it beats the old chain.
            let keep = self.tip().hash != old_tip
                && !connected.is_empty()
                && self.rank(&self.tip().hash) > self.rank(&old_tip);
            if !keep {
                self.rewind_to(fork)?;
                for body in abandoned.iter().rev() {
                    let checked = self.load_checked(&body.hash())?;
                    self.connect(&checked)?;
                }
                return Err(error.clone());
            }
        }

        // Mempool: mined transactions leave, abandoned ones come back. (With neither
        // pending nor abandoned transactions, as in a sync, there is nothing to look up.)
        let mined: HashSet<TxId> = if self.mempool.txs.is_empty() && abandoned.is_empty() {
            HashSet::new()
        } else {
            mined_ids
                .iter()
                .flat_map(|ids| ids.iter().copied())
                .collect()
        };
        let returned: Vec<PendingTx<P::Payload>> = abandoned
            .iter()
            .rev()
            .flat_map(|b| b.transactions.iter())
            .map(|tx| PendingTx {
                id: tx.id(),
                size: codec::encoded_len(tx),
                tx: tx.clone(),
            })
            .filter(|p| !mined.contains(&p.id))
            .collect();
        let (returned, dropped) = self.refresh_mempool(&mined, returned, now);
        let tip = self.tip();
        outcome.tip_changes.push(TipChange {
            old_tip,
            new_tip: tip.hash,
            new_height: tip.height,
            disconnected,
            connected,
            returned,
            dropped,
        });
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Reads a stored block of the tree back as checked (it was checked on entry).
    fn load_checked(
        &self,
        hash: &BlockHash,
    ) -> Result<CheckedBlock<P::Payload>, BlockError<P::Error>> {
        let block = self
            .bodies
            .get(hash)
            .map_err(|e| BlockError::Store {
                block: *hash,
                source: StoreFailure::new(e),
            })?
            .ok_or_else(|| missing_body(*hash))?;
        if block.hash() != *hash {
            return Err(missing_body(*hash));
        }
        let ids: Arc<[TxId]> = block.transactions.iter().map(|tx| tx.id()).collect();
        Ok(CheckedBlock {
            block,
            hash: *hash,
            ids,
        })
    }

    /// Applies a checked block on top of the tip: every state rule, then the rewards.
    fn connect(&mut self, checked: &CheckedBlock<P::Payload>) -> Result<(), BlockError<P::Error>> {
        let undo = self.execute_checked(checked)?;
        self.chain.push(checked.hash);
        self.undo.insert(checked.hash, undo);
        // Bound memory: forget undo records deeper than the limit.
        if let Some(old) = self
            .chain
            .len()
            .checked_sub(limits::MAX_UNDO_DEPTH + 1)
            .and_then(|i| self.chain.get(i))
        {
            self.undo.remove(old);
        }
        Ok(())
    }

    /// Runs a block's state rules on the current state; on success the state includes
    /// the block and its undo record is returned.
    fn execute_checked(
        &mut self,
        checked: &CheckedBlock<P::Payload>,
    ) -> Result<Undo<P::Undo>, BlockError<P::Error>> {
        let block = &checked.block;
        let hash = checked.hash;
        let slot = Slot {
            height: block.header.height,
            time: block.header.timestamp,
        };
        let rules = Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            members: &self.members,
        };
        let (undo, paid) = self
            .state
            .execute(rules, slot, &block.transactions, &checked.ids)
            .map_err(|(index, error)| tx_error(hash, index, error))?;
        if let Err(error) = compare_rewards(hash, &paid, &block.rewards) {
            self.state.revert(&self.policy, undo);
            return Err(error);
        }
        Ok(undo)
    }

    /// Disconnects best-chain blocks down to `height`, using undo records, or by
    /// replaying from genesis when they were pruned.
    fn rewind_to(&mut self, height: Height) -> Result<(), BlockError<P::Error>> {
        let keep = height.0 as usize + 1;
        if self.chain[keep..].iter().all(|h| self.undo.contains_key(h)) {
            while self.chain.len() > keep {
                let hash = self.chain.pop().expect("length checked above");
                let undo = self.undo.remove(&hash).expect("presence checked above");
                self.state.revert(&self.policy, undo);
            }
            return Ok(());
        }
        self.chain.truncate(keep);
        self.undo.clear();
        self.state = self.replay(keep).map_err(|e| match e {
            ReplayError::MissingBody(h) => missing_body(h),
            ReplayError::Block(b) => b,
        })?;
        Ok(())
    }

    /// Recomputes the state of the best chain's first `len` entries from genesis.
    fn replay(&self, len: usize) -> Result<ChainState<P::State>, ReplayError<P::Error>> {
        let mut state = ChainState::genesis(&self.policy, &self.genesis);
        for (height, hash) in self.chain.iter().enumerate().take(len).skip(1) {
            let block = self
                .bodies
                .get(hash)
                .map_err(|e| {
                    ReplayError::Block(BlockError::Store {
                        block: *hash,
                        source: StoreFailure::new(e),
                    })
                })?
                .ok_or(ReplayError::MissingBody(*hash))?;
            if block.hash() != *hash || block.header.prev != self.chain[height - 1] {
                return Err(ReplayError::MissingBody(*hash));
            }
            let ids: Vec<TxId> = block.transactions.iter().map(|tx| tx.id()).collect();
            let slot = Slot {
                height: block.header.height,
                time: block.header.timestamp,
            };
            let (_, paid) = state
                .execute(self.rules(), slot, &block.transactions, &ids)
                .map_err(|(index, error)| tx_error(*hash, index, error))?;
            compare_rewards(*hash, &paid, &block.rewards)?;
        }
        Ok(state)
    }

    /// Recomputes the best chain's state from genesis, reading every block body again.
    /// Must equal [`Ledger::state`]; the `recalc_balances` command and a property test
    /// check that it does.
    pub fn replay_from_genesis(&self) -> Result<ChainState<P::State>, ReplayError<P::Error>> {
        self.replay(self.chain.len())
    }

    fn mark_invalid(&mut self, hash: BlockHash) {
        if self.invalid.insert(hash) {
            self.invalid_order.push_back(hash);
            while self.invalid_order.len() > limits::MAX_INVALID_REMEMBERED {
                if let Some(old) = self.invalid_order.pop_front() {
                    self.invalid.remove(&old);
                }
            }
        }
    }

    /// Removes an invalid block and all its descendants from the tree, and discards
    /// (reporting them) the orphans waiting on any of them.
    fn remove_invalid_subtree(&mut self, bad: BlockHash, outcome: &mut BlockOutcome<P::Error>) {
        let mut stack = vec![bad];
        while let Some(hash) = stack.pop() {
            self.mark_invalid(hash);
            if let Some(entry) = self.tree.remove(&hash)
                && let Some(siblings) = self.children.get_mut(&entry.parent)
            {
                siblings.retain(|h| *h != hash);
            }
            if let Some(children) = self.children.remove(&hash) {
                stack.extend(children);
            }
            self.discard_orphans_of(&hash, outcome);
        }
    }

    /// Fully validates `block` as the next block on the tip without changing anything.
    pub fn validate_block(
        &mut self,
        block: Block<P::Payload>,
        now: Timestamp,
    ) -> Result<ValidatedBlock<P::Payload>, BlockError<P::Error>> {
        let block = Arc::new(block);
        let hash = block.hash();
        self.check_standalone(&block, hash, codec::encoded_len(&*block))?;
        if block.header.prev != self.tip().hash {
            return Err(BlockError::WrongHeight {
                block: hash,
                expected: self.tip().height.next(),
                found: block.header.height,
            });
        }
        let checked = self.check_in_context(block, hash, None, now, Origin::Untrusted)?;
        let undo = self.execute_checked(&checked)?;
        self.state.revert(&self.policy, undo);
        Ok(ValidatedBlock {
            block: checked.block,
            hash: checked.hash,
            ids: checked.ids,
        })
    }

    // ----- producing -----------------------------------------------------------------

    /// Whether `producer` may produce on the current tip: it must be an authorised
    /// producer, and it must not have built on a block that the best chain has left
    /// (its *lock*, the parent of its highest block), unless the best chain holds that
    /// block, or a block at its height is final (which settles that the lock's branch
    /// can never be final).
    ///
    /// Honest producers call this before producing. Under it a producer's blocks never
    /// count for two conflicting branches, so two conflicting blocks can only both
    /// become final if a producer breaks it (equivocates). Producing on a tip after a
    /// switch of branch to one's own or a tied block is allowed: the lock is on the
    /// parent, which both branches share.
    pub fn may_produce(&self, producer: &AccountId) -> Result<(), ProduceError> {
        let Some(producers) = &self.producers else {
            return Ok(());
        };
        if !producers.contains_key(producer) {
            return Err(ProduceError::NotAuthorised {
                producer: *producer,
            });
        }
        let Some((_, latest)) = self.latest_by.get(producer) else {
            return Ok(());
        };
        let Some(entry) = self.tree.get(latest) else {
            return Ok(());
        };
        let (voted, height) = (entry.parent, entry.height.0.saturating_sub(1));
        let held = self.chain.get(height as usize) == Some(&voted);
        if held || self.final_height().0 >= height {
            return Ok(());
        }
        Err(ProduceError::Locked {
            producer: *producer,
            voted,
            height: Height(height),
        })
    }

    /// A block template on the tip for `producer`: pending transactions in order (as
    /// many as the limits allow) and the rewards they earn. Mine it with
    /// [`BlockTemplate::mine`] and seal it with the producer's key.
    pub fn block_template(
        &mut self,
        producer: AccountId,
        now: Timestamp,
    ) -> BlockTemplate<P::Payload> {
        let tip = self.tip();
        let slot = Slot {
            height: tip.height.next(),
            time: now.max(tip.timestamp),
        };
        // Leave room for the header, the signature and one reward per transaction.
        let reward_bytes = 32 + 8 + 32;
        let budget = limits::MAX_BLOCK_BYTES - 4096;
        let mut used = 0;
        let mut txs = Vec::new();
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        for entry in self.mempool.txs.iter().take(limits::MAX_TXS_PER_BLOCK) {
            if used + entry.size + reward_bytes > budget {
                break;
            }
            used += entry.size + reward_bytes;
            txs.push(entry.tx.clone());
            ids.push(entry.id);
            sizes.push(entry.size);
        }
        let rules = Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            members: &self.members,
        };
        // Mempool transactions are valid in order on the tip, so this succeeds; should
        // one not (a policy that depends on the block time), it is left out.
        let rewards = loop {
            match self.state.execute(rules, slot, &txs, &ids) {
                Ok((undo, paid)) => {
                    self.state.revert(&self.policy, undo);
                    // A policy may award several rewards per transaction: keep the
                    // longest prefix whose rewards still fit the block's limits, and
                    // recompute (fewer transactions can change what the reserve pays).
                    let keep = fitting_prefix(&ids, &sizes, &paid, reward_bytes, budget);
                    if keep == txs.len() {
                        break paid;
                    }
                    txs.truncate(keep);
                    ids.truncate(keep);
                    sizes.truncate(keep);
                }
                Err((index, _)) => {
                    txs.remove(index);
                    ids.remove(index);
                    sizes.remove(index);
                }
            }
        };
        let header = BlockHeader {
            height: slot.height,
            prev: tip.hash,
            merkle_root: merkle_root(&merkle_entries(ids.iter().copied(), &rewards)),
            timestamp: slot.time,
            producer,
            nonce: 0,
        };
        BlockTemplate::new(header, txs, rewards, self.genesis.pow_bits)
    }

    /// Builds a template, mines it to completion and seals it: a convenience for tests,
    /// examples and low-difficulty networks (mining time grows as 2^`pow_bits`). The
    /// block is returned, not submitted.
    pub fn mine_block(&mut self, keys: &Keypair, now: Timestamp) -> Block<P::Payload> {
        let mut template = self.block_template(keys.account(), now);
        while template.mine(1 << 16) == MineStatus::Continue {}
        template
            .seal(keys)
            .expect("mining loop ends only when a nonce is found")
    }
}

/// Whether `error` is a verdict on every block with this hash, to be remembered.
///
/// A block hash commits to the header and, through the Merkle root, to the
/// transactions and rewards, but not to the producer's signature. A failure found
/// before the body is known to match the header (size limits, the Merkle root itself),
/// a bad producer signature, or a timestamp ahead of this node's clock (which time
/// cures) may concern only this copy: remembering it would let anyone get a valid
/// block refused everywhere by sending a mangled copy first. A store failure is this
/// node's fault, not the block's.
fn condemns_hash<E>(error: &BlockError<E>) -> bool {
    !matches!(
        error,
        BlockError::TooLarge { .. }
            | BlockError::TooManyEntries { .. }
            | BlockError::FromTheFuture { .. }
            | BlockError::BadProducerSignature { .. }
            | BlockError::MerkleMismatch { .. }
            | BlockError::Store { .. }
    )
}

/// How many of the transactions `ids` (of encoded `sizes`), taken in order, fit in a
/// block together with the rewards `paid` for them: at most
/// [`MAX_REWARDS_PER_BLOCK`](limits::MAX_REWARDS_PER_BLOCK) rewards and `budget` bytes.
fn fitting_prefix(
    ids: &[TxId],
    sizes: &[usize],
    paid: &[Reward],
    reward_bytes: usize,
    budget: usize,
) -> usize {
    let mut earned: HashMap<TxId, usize> = HashMap::new();
    for reward in paid {
        *earned.entry(reward.cause).or_default() += 1;
    }
    let (mut bytes, mut rewards) = (0usize, 0usize);
    for (index, (id, size)) in ids.iter().zip(sizes).enumerate() {
        let count = earned.get(id).copied().unwrap_or(0);
        bytes += size + count * reward_bytes;
        rewards += count;
        if rewards > limits::MAX_REWARDS_PER_BLOCK || bytes > budget {
            return index;
        }
    }
    ids.len()
}

fn tx_error<E>(block: BlockHash, index: usize, error: TxError<E>) -> BlockError<E> {
    BlockError::Transaction {
        block,
        index,
        error,
    }
}

/// A best-chain body is missing or does not hash to its key: the store lost or
/// corrupted it.
fn missing_body<E>(hash: BlockHash) -> BlockError<E> {
    BlockError::Store {
        block: hash,
        source: StoreFailure::new(MissingBody(hash)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("block {0} is missing from the store or corrupted")]
struct MissingBody(BlockHash);

/// Compares the rewards a block lists with those its transactions earned.
fn compare_rewards<E>(
    block: BlockHash,
    expected: &[Reward],
    found: &[Reward],
) -> Result<(), BlockError<E>> {
    for (index, (e, f)) in expected.iter().zip(found).enumerate() {
        if e != f {
            return Err(BlockError::RewardMismatch {
                block,
                index,
                expected: Box::new(e.clone()),
                found: Box::new(f.clone()),
            });
        }
    }
    if let Some(missing) = expected.get(found.len()) {
        return Err(BlockError::RewardMissing {
            block,
            expected: Box::new(missing.clone()),
        });
    }
    if let Some(extra) = found.get(expected.len()) {
        return Err(BlockError::RewardUnexpected {
            block,
            found: Box::new(extra.clone()),
        });
    }
    Ok(())
}

/// Runs `a` and `b` in parallel with the `parallel` feature, one after the other
/// without it.
fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    #[cfg(feature = "parallel")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "parallel"))]
    {
        (a(), b())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::Signature;

    fn orphan(n: u64) -> (BlockHash, Arc<Block<()>>) {
        let block = Block {
            header: BlockHeader {
                height: Height(n),
                prev: BlockHash(Hash::of(&n.to_le_bytes())),
                merkle_root: Hash::ZERO,
                timestamp: Timestamp(0),
                producer: AccountId::default(),
                nonce: 0,
            },
            signature: Signature::default(),
            transactions: Vec::new(),
            rewards: Vec::new(),
        };
        (block.hash(), Arc::new(block))
    }

    fn untrusted(block: Arc<Block<()>>) -> Orphan<()> {
        sized(block, 200)
    }

    fn sized(block: Arc<Block<()>>, size: usize) -> Orphan<()> {
        Orphan {
            block,
            origin: Origin::Untrusted,
            received: Timestamp(0),
            size,
        }
    }

    #[test]
    fn orphan_bookkeeping_stays_bounded_as_orphans_come_and_go() {
        let mut orphans = Orphans::default();
        for n in 0..(10 * limits::MAX_ORPHANS as u64) {
            let (hash, block) = orphan(n);
            let parent = block.header.prev;
            orphans.insert(hash, untrusted(block));
            // The parent arrives: the orphan leaves the pool.
            assert_eq!(orphans.children_of(&parent).len(), 1);
        }
        assert!(orphans.blocks.is_empty() && orphans.by_parent.is_empty());
        assert!(orphans.order.len() <= 2 * limits::MAX_ORPHANS + 1);
    }

    #[test]
    fn the_oldest_orphan_is_evicted_first() {
        let mut orphans = Orphans::default();
        let all: Vec<_> = (0..=limits::MAX_ORPHANS as u64).map(orphan).collect();
        for (hash, block) in &all {
            orphans.insert(*hash, untrusted(Arc::clone(block)));
        }
        assert_eq!(orphans.blocks.len(), limits::MAX_ORPHANS);
        assert!(!orphans.blocks.contains_key(&all[0].0));
        assert!(orphans.blocks.contains_key(&all[1].0));
        assert!(!orphans.by_parent.contains_key(&all[0].1.header.prev));
    }

    #[test]
    fn orphans_are_bounded_in_bytes_oldest_evicted_first() {
        let mut orphans = Orphans::default();
        let big = limits::MAX_BLOCK_BYTES;
        let fit = limits::MAX_ORPHAN_BYTES / big;
        let all: Vec<_> = (0..fit as u64 + 3).map(orphan).collect();
        for (hash, block) in &all {
            orphans.insert(*hash, sized(Arc::clone(block), big));
            assert!(orphans.bytes <= limits::MAX_ORPHAN_BYTES);
        }
        assert_eq!(orphans.blocks.len(), fit);
        assert_eq!(orphans.bytes, fit * big);
        for (hash, _) in &all[..3] {
            assert!(!orphans.blocks.contains_key(hash), "the oldest go first");
        }
        let (_, last) = &all[all.len() - 1];
        orphans.children_of(&last.header.prev);
        assert_eq!(
            orphans.bytes,
            (fit - 1) * big,
            "a block leaving frees its bytes"
        );
    }

    fn finality(producers: &[u32], majority: usize) -> Vec<Height> {
        let mut at = Finality::default();
        let mut finals = Vec::new();
        for (h, p) in producers.iter().enumerate() {
            at = Finality::after(&at, *p, Height(h as u64 + 1), majority);
            finals.push(at.final_height);
        }
        finals
    }

    #[test]
    fn a_block_is_final_once_a_majority_of_producers_built_on_it() {
        // Three producers, majority two: A B C A in turn. Block 1 (A's) is final once
        // B and C have built on it, at height 3.
        assert_eq!(finality(&[0, 1, 2, 0], 2), [0, 0, 1, 2].map(Height));
        // One producer alone never makes anything final.
        assert_eq!(finality(&[0; 6], 2), [Height(0); 6]);
        // A B B B: block 1 (A's) has been built on by B alone, however often.
        assert_eq!(finality(&[0, 1, 1, 1], 2), [Height(0); 4]);
        // Five producers, majority three.
        assert_eq!(
            finality(&[0, 1, 0, 1, 2, 3], 3),
            [0, 0, 0, 0, 2, 3].map(Height)
        );
        // A lone producer network: every block but the tip is final.
        assert_eq!(finality(&[0, 0, 0], 1), [0, 1, 2].map(Height));
    }

    proptest::proptest! {
        /// Finality never goes back as a chain grows, and agrees with its definition:
        /// the highest height above which a majority of producers produced.
        #[test]
        fn finality_is_monotone_and_matches_its_definition(
            producers in proptest::collection::vec(0u32..5, 1..60),
            majority in 1usize..=5,
        ) {
            let finals = finality(&producers, majority);
            for (i, f) in finals.iter().enumerate() {
                if i > 0 {
                    proptest::prop_assert!(*f >= finals[i - 1]);
                }
                // Definition: largest h with >= majority distinct producers above h.
                let chain = &producers[..=i];
                let expected = (0..=i)
                    .rev()
                    .find(|&h| {
                        let above: HashSet<u32> = chain[h..].iter().copied().collect();
                        above.len() >= majority
                    })
                    .map_or(0, |h| h as u64);
                proptest::prop_assert_eq!(f.0, expected);
            }
        }
    }
}
