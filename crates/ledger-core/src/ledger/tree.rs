//! The block tree and fork choice: tree entries and their [`Finality`], ranking
//! chains, refusing branches that conflict with the final block, switching branch
//! (rewinding and connecting blocks), the invalid-block memory, and replay from
//! genesis.

use std::collections::HashSet;
use std::sync::Arc;

use crate::block::{Block, BlockHeader, work};
use crate::codec;
use crate::error::{BlockError, BodyFault, StoreFailure};
use crate::hash::{BlockHash, TxId};
use crate::limits;
use crate::mempool::PendingTx;
use crate::policy::Policy;
use crate::prepared::Digest;
use crate::state::{ChainState, Rules, Slot};
use crate::store::BodySource;
use crate::units::{Height, Timestamp};

use super::validate::{compare_rewards, tx_error};
use super::{BlockOutcome, Ledger, Origin, ReplayError, SharedBlock, TipChange, ValidatedBlock};

/// Why adding a block to the tree stopped: a verdict on a block, or this node's
/// failure to read a body it holds, which says nothing about any block.
#[derive(Debug)]
pub(super) enum Stop<E> {
    /// A block is invalid.
    Invalid(BlockError<E>),
    /// A body could not be read.
    Fault(BodyFault),
}

impl<E> From<BlockError<E>> for Stop<E> {
    fn from(error: BlockError<E>) -> Self {
        Stop::Invalid(error)
    }
}

impl<E> From<BodyFault> for Stop<E> {
    fn from(fault: BodyFault) -> Self {
        Stop::Fault(fault)
    }
}

/// A node of the block tree: what is kept resident for every known block.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) height: Height,
    pub(super) parent: BlockHash,
    pub(super) timestamp: Timestamp,
    /// Cumulative work from genesis.
    pub(super) work: u128,
    /// `None` for the genesis entry.
    pub(super) header: Option<BlockHeader>,
    /// Finality of the chain that ends at this block.
    pub(super) finality: Finality,
}

/// How final the chain ending at a block is: a block that a majority of the authorised
/// producers have built on (produced a descendant of) is final.
///
/// Kept per block of the tree in `O(majority)` space, and derived from the parent's in
/// `O(majority)` time: the latest distinct producers of the chain, newest first, with
/// the height of each one's latest block. When `majority` of them are known, every
/// block below the oldest one's latest block has been built on by all of them.
#[derive(Clone, Debug, Default)]
pub(super) struct Finality {
    /// Height of the highest final block (genesis, 0, when none is).
    pub(super) final_height: Height,
    /// The chain's latest distinct producers (by index in the genesis list), newest
    /// first, with the height of each one's latest block; at most `majority` of them.
    pub(super) recent: Box<[(u32, Height)]>,
}

impl Finality {
    /// The finality of a chain that adds a block at `height` by the producer at
    /// `index` to the chain whose finality is `parent`, on a network of `majority`.
    pub(super) fn after(
        parent: &Finality,
        index: u32,
        height: Height,
        majority: usize,
    ) -> Finality {
        let recent: Box<[(u32, Height)]> = std::iter::once((index, height))
            .chain(parent.recent.iter().copied().filter(|(p, _)| *p != index))
            .take(majority)
            .collect();
        // `recent` holds at most `majority` producers: the last one, when there are
        // that many, is the oldest of a majority.
        let built_on = match recent.get(majority.saturating_sub(1)) {
            Some((_, oldest)) => Height(oldest.0.saturating_sub(1)),
            None => Height(0),
        };
        Finality {
            final_height: built_on.max(parent.final_height),
            recent,
        }
    }
}

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
    /// Adds a block whose parent is in the tree; runs fork choice. A block from outside
    /// waits in memory for the runtime to store it (see [`Ledger::unstored_block`]).
    ///
    /// On [`Stop::Fault`] the block is in the tree and the best chain is as it was.
    pub(super) fn accept(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
        outcome: &mut BlockOutcome<P::Error>,
    ) -> Result<(), Stop<P::Error>> {
        if self.invalid.contains(&block.header.prev) {
            self.mark_invalid(hash);
            return Err(BlockError::KnownInvalid { block: hash }.into());
        }
        if let Err(error) = self.check_final(&block.header.prev, hash) {
            self.remember_if_condemned(hash, &error);
            return Err(error.into());
        }
        let checked = match self.check_in_context(block, hash, digest, now, origin) {
            Ok(checked) => checked,
            Err(error) => {
                self.remember_if_condemned(hash, &error);
                return Err(error.into());
            }
        };
        if origin == Origin::Untrusted && self.retain {
            self.unstored.insert(hash, Arc::clone(&checked.block));
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
    pub(super) fn rank(&self, hash: &BlockHash) -> (Height, u128, std::cmp::Reverse<BlockHash>) {
        let entry = &self.tree[hash];
        let work = entry.work;
        (entry.finality.final_height, work, std::cmp::Reverse(*hash))
    }

    pub(super) fn is_better_than_tip(&self, hash: &BlockHash) -> bool {
        self.rank(hash) > self.rank(&self.tip().hash)
    }

    /// Refuses a block whose parent `prev` is not a descendant of (or is) the final
    /// block: its branch would revert finality. Walks back from `prev` only as far as
    /// the best chain or the final height, whichever comes first.
    pub(super) fn check_final(
        &self,
        prev: &BlockHash,
        hash: BlockHash,
    ) -> Result<(), BlockError<P::Error>> {
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

    pub(super) fn rules(&self) -> Rules<'_, P> {
        Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            genesis_hash: self.genesis_hash,
            members: &self.members,
        }
    }

    /// Makes `target` the tip: disconnects down to the fork point, connects the branch.
    /// If a branch block turns out invalid it and its descendants are removed, and the
    /// best of the old chain and the valid part of the branch is kept. If a body cannot
    /// be read, the old chain is kept.
    pub(super) fn switch_to(
        &mut self,
        target: BlockHash,
        mut in_hand: Option<ValidatedBlock<P::Payload>>,
        now: Timestamp,
        outcome: &mut BlockOutcome<P::Error>,
    ) -> Result<(), Stop<P::Error>> {
        let old_tip = self.tip().hash;
        let mut branch = Vec::new();
        let mut cursor = target;
        while !self.is_on_main_chain(&cursor) {
            branch.push(cursor);
            cursor = self.tree[&cursor].parent;
        }
        branch.reverse();
        let fork = self.tree[&cursor].height;

        // Disconnect.
        let disconnected: Vec<BlockHash> = self.chain[fork.0 as usize + 1..]
            .iter()
            .rev()
            .copied()
            .collect();
        let mut abandoned = Vec::new();
        for hash in &disconnected {
            abandoned.push(self.body(hash)?);
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
                    Err(fault) => {
                        failure = Some(Stop::Fault(fault));
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
                    failure = Some(Stop::Invalid(error));
                    break;
                }
            }
        }

        if let Some(stop) = failure.take() {
            // Keep the valid part of a branch that holds an invalid block only if it
            // beats the old chain; after a fault, keep the old chain.
            let keep = match &stop {
                Stop::Invalid(error) => {
                    self.remove_invalid_subtree(error.block(), outcome);
                    self.tip().hash != old_tip
                        && !connected.is_empty()
                        && self.rank(&self.tip().hash) > self.rank(&old_tip)
                }
                Stop::Fault(_) => false,
            };
            if !keep {
                self.rewind_to(fork)?;
                for body in abandoned.into_iter().rev() {
                    let checked = ValidatedBlock::of_stored(body);
                    self.connect(&checked)?;
                }
                return Err(stop);
            }
            failure = Some(stop);
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

    /// The body of a block of the tree: from memory while it waits to be stored, else
    /// from the source, which must return the block that hashes to `hash`.
    pub(super) fn body(&self, hash: &BlockHash) -> Result<SharedBlock<P>, BodyFault> {
        if let Some(block) = self.unstored.get(hash) {
            return Ok(Arc::clone(block));
        }
        let block = self
            .source
            .get(hash)
            .map_err(|e| BodyFault {
                block: *hash,
                source: StoreFailure::new(e),
            })?
            .ok_or_else(|| missing_body(*hash))?;
        if block.hash() != *hash {
            return Err(missing_body(*hash));
        }
        Ok(block)
    }

    /// Reads a block of the tree back as checked (it was checked on entry).
    pub(super) fn load_checked(
        &self,
        hash: &BlockHash,
    ) -> Result<ValidatedBlock<P::Payload>, BodyFault> {
        Ok(ValidatedBlock::of_stored(self.body(hash)?))
    }

    /// Applies a checked block on top of the tip: every state rule, then the rewards.
    pub(super) fn connect(
        &mut self,
        checked: &ValidatedBlock<P::Payload>,
    ) -> Result<(), BlockError<P::Error>> {
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

    /// Disconnects best-chain blocks down to `height`, using undo records, or by
    /// replaying from genesis when they were pruned.
    pub(super) fn rewind_to(&mut self, height: Height) -> Result<(), Stop<P::Error>> {
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
            ReplayError::MissingBody(h) => Stop::Fault(missing_body(h)),
            ReplayError::Block(b) => Stop::Invalid(b),
            ReplayError::Unreadable(fault) => Stop::Fault(fault),
        })?;
        Ok(())
    }

    /// Recomputes the state of the best chain's first `len` entries from genesis.
    pub(super) fn replay(&self, len: usize) -> Result<ChainState<P::State>, ReplayError<P::Error>> {
        let mut state = ChainState::genesis(&self.policy, &self.genesis);
        for (height, hash) in self.chain.iter().enumerate().take(len).skip(1) {
            let block = match self.body(hash) {
                Ok(block) => block,
                Err(fault) if fault.source.0.is::<MissingBody>() => {
                    return Err(ReplayError::MissingBody(*hash));
                }
                Err(fault) => return Err(fault.into()),
            };
            if block.header.prev != self.chain[height - 1] {
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

    /// Remembers `hash` as invalid (the oldest are forgotten first, see
    /// [`limits::MAX_INVALID_REMEMBERED`]).
    pub(super) fn mark_invalid(&mut self, hash: BlockHash) {
        self.invalid.insert(hash);
    }

    /// Removes an invalid block and all its descendants from the tree, and discards
    /// (reporting them) the orphans waiting on any of them.
    pub(super) fn remove_invalid_subtree(
        &mut self,
        bad: BlockHash,
        outcome: &mut BlockOutcome<P::Error>,
    ) {
        let mut stack = vec![bad];
        while let Some(hash) = stack.pop() {
            self.mark_invalid(hash);
            self.unstored.remove(&hash);
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
}

/// A body of the tree is missing or does not hash to its key: the store lost or
/// corrupted it.
pub(super) fn missing_body(hash: BlockHash) -> BodyFault {
    BodyFault {
        block: hash,
        source: StoreFailure::new(MissingBody(hash)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("block {0} is missing from the store or corrupted")]
struct MissingBody(BlockHash);

#[cfg(test)]
mod tests {
    use super::*;

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
