//! Compact block relay, after Bitcoin's BIP 152: a new block is announced as its
//! header, signature, rewards and transaction ids; a peer rebuilds it from the
//! transactions it already holds (its mempool and admission queue) and asks the
//! announcer only for those it lacks. A plain state machine, no I/O.
//!
//! Unlike BIP 152 the ids are the full 32-byte transaction ids, not short salted ones:
//! no collision can be crafted, so a rebuilt block is exactly the announced one or its
//! Merkle root check fails. A rebuilt block is then validated like any other.
//!
//! Blocks waiting for missing transactions are bounded ([`limits::MAX_PARTIAL_BLOCKS`]),
//! the oldest forgotten first; a block whose transactions never come is fetched by the
//! ordinary sync when the next block arrives as an orphan.

use std::collections::{HashMap, VecDeque};

use ledger_core::{Block, BlockHash, BlockHeader, Reward, Signature, Transaction, TxId};
use serde::{Deserialize, Serialize};

use crate::limits;

/// A block announced by its transaction ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBlock {
    /// The header.
    pub header: BlockHeader,
    /// The producer's signature.
    pub signature: Signature,
    /// The reward entries, in order.
    pub rewards: Vec<Reward>,
    /// The transactions' ids, in order.
    pub txids: Vec<TxId>,
}

impl CompactBlock {
    /// The compact form of `block`.
    pub fn of<T: Serialize>(block: &Block<T>) -> CompactBlock {
        CompactBlock {
            header: block.header.clone(),
            signature: block.signature,
            rewards: block.rewards.clone(),
            txids: block.transactions.iter().map(Transaction::id).collect(),
        }
    }

    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The block, given its transactions in order.
    fn assemble<T>(self, transactions: Vec<Transaction<T>>) -> Block<T> {
        Block {
            header: self.header,
            signature: self.signature,
            transactions,
            rewards: self.rewards,
        }
    }
}

/// What [`Reassembly::start`] made of an announcement.
#[derive(Debug, PartialEq)]
pub enum Rebuilt<T> {
    /// Every transaction was at hand: the block.
    Complete(Box<Block<T>>),
    /// These positions are missing; ask the announcer for them.
    Missing(Vec<u32>),
}

/// A peer answered with transactions that are not the ones asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("block {block}: {reason}")]
pub struct CompactError {
    /// The block.
    pub block: BlockHash,
    /// What was wrong.
    pub reason: String,
}

/// A block waiting for some of its transactions.
#[derive(Debug)]
struct Partial<T> {
    compact: CompactBlock,
    txs: Vec<Option<Transaction<T>>>,
    /// The peer asked for the missing ones.
    from: u64,
}

/// The blocks being rebuilt from compact announcements, each waiting for its missing
/// transactions from the peer that announced it.
#[derive(Debug)]
pub struct Reassembly<T> {
    partials: HashMap<BlockHash, Partial<T>>,
    order: VecDeque<BlockHash>,
    capacity: usize,
}

impl<T: Clone + Serialize> Reassembly<T> {
    /// At most `capacity` blocks waiting at once.
    pub fn new(capacity: usize) -> Self {
        Reassembly {
            partials: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Rebuilds the block `compact` announces from the transactions `at_hand` finds;
    /// if some are missing, keeps it to finish when peer `from` sends them.
    pub fn start(
        &mut self,
        compact: CompactBlock,
        from: u64,
        at_hand: impl Fn(&TxId) -> Option<Transaction<T>>,
    ) -> Rebuilt<T> {
        let txs: Vec<Option<Transaction<T>>> = compact.txids.iter().map(&at_hand).collect();
        let missing: Vec<u32> = txs
            .iter()
            .enumerate()
            .filter(|(_, tx)| tx.is_none())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        if missing.is_empty() {
            let txs = txs.into_iter().flatten().collect();
            return Rebuilt::Complete(Box::new(compact.assemble(txs)));
        }
        let hash = compact.hash();
        if self.partials.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.partials.remove(&oldest);
        }
        if self
            .partials
            .insert(hash, Partial { compact, txs, from })
            .is_none()
        {
            self.order.push_back(hash);
        }
        Rebuilt::Missing(missing)
    }

    /// The missing transactions of `block` arrived from peer `from`, in the order they
    /// were asked for: the block, once complete. An answer nobody waits for (another
    /// peer's, or for a forgotten block) is ignored; one that does not hold exactly the
    /// transactions asked for is an error, and the block is forgotten.
    pub fn fill(
        &mut self,
        block: BlockHash,
        from: u64,
        txs: Vec<Transaction<T>>,
    ) -> Result<Option<Block<T>>, CompactError> {
        if self.partials.get(&block).is_none_or(|p| p.from != from) {
            return Ok(None);
        }
        let Some(mut partial) = self.partials.remove(&block) else {
            return Ok(None);
        };
        self.order.retain(|h| *h != block);
        let error = |reason: String| CompactError { block, reason };
        let gaps: Vec<usize> = (partial.txs.iter().enumerate())
            .filter(|(_, tx)| tx.is_none())
            .map(|(i, _)| i)
            .collect();
        if gaps.len() != txs.len() {
            return Err(error(format!(
                "{} transactions sent for {} missing",
                txs.len(),
                gaps.len()
            )));
        }
        for (index, tx) in gaps.into_iter().zip(txs) {
            if tx.id() != partial.compact.txids[index] {
                return Err(error(format!(
                    "transaction {index} is not the one announced"
                )));
            }
            partial.txs[index] = Some(tx);
        }
        let txs = partial.txs.into_iter().flatten().collect();
        Ok(Some(partial.compact.assemble(txs)))
    }

    /// Forgets what peer `from` was to send.
    pub fn forget_peer(&mut self, from: u64) {
        self.partials.retain(|_, p| p.from != from);
        let partials = &self.partials;
        self.order.retain(|h| partials.contains_key(h));
    }
}

impl<T: Clone + Serialize> Default for Reassembly<T> {
    fn default() -> Self {
        Reassembly::new(limits::MAX_PARTIAL_BLOCKS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{Height, Keypair, Timestamp, TxBody};
    use proptest::prelude::*;

    fn tx(n: u64) -> Transaction<String> {
        Transaction::new_signed(
            &BlockHash::default(),
            &Keypair::from_seed([4; 32]),
            n,
            Timestamp(n),
            TxBody::App(format!("note {n}")),
        )
    }

    fn block(txs: Vec<Transaction<String>>) -> Block<String> {
        // Blocks of different transactions get different headers.
        let nonce = txs.iter().map(|t| t.nonce).sum();
        Block {
            header: BlockHeader {
                height: Height(txs.len() as u64),
                prev: BlockHash::default(),
                merkle_root: ledger_core::Hash::of(b"root"),
                timestamp: Timestamp(7),
                producer: Keypair::from_seed([1; 32]).account(),
                nonce,
            },
            signature: Signature([5; 64]),
            transactions: txs,
            rewards: Vec::new(),
        }
    }

    fn pool(txs: &[Transaction<String>]) -> HashMap<TxId, Transaction<String>> {
        txs.iter().map(|t| (t.id(), t.clone())).collect()
    }

    #[test]
    fn a_block_whose_transactions_are_all_at_hand_is_rebuilt_at_once() {
        let original = block((1..=5).map(tx).collect());
        let held = pool(&original.transactions);
        let mut reassembly = Reassembly::new(4);
        let rebuilt = reassembly.start(CompactBlock::of(&original), 1, |id| held.get(id).cloned());
        assert_eq!(rebuilt, Rebuilt::Complete(Box::new(original.clone())));
        assert_eq!(CompactBlock::of(&original).hash(), original.hash());
    }

    #[test]
    fn missing_transactions_are_asked_for_and_complete_the_block() {
        let original = block((1..=6).map(tx).collect());
        let held = pool(&[tx(1), tx(3), tx(6)]);
        let mut reassembly = Reassembly::new(4);
        let compact = CompactBlock::of(&original);
        let hash = compact.hash();
        let rebuilt = reassembly.start(compact, 9, |id| held.get(id).cloned());
        assert_eq!(rebuilt, Rebuilt::Missing(vec![1, 3, 4]));
        // Another peer's answer is not waited for.
        assert_eq!(
            reassembly.fill(hash, 8, vec![tx(2), tx(4), tx(5)]),
            Ok(None)
        );
        let done = reassembly.fill(hash, 9, vec![tx(2), tx(4), tx(5)]);
        assert_eq!(done, Ok(Some(original)));
        // Done and forgotten: a second answer is ignored.
        assert_eq!(
            reassembly.fill(hash, 9, vec![tx(2), tx(4), tx(5)]),
            Ok(None)
        );
    }

    #[test]
    fn an_answer_with_other_transactions_is_refused_and_forgets_the_block() {
        let original = block((1..=3).map(tx).collect());
        let mut reassembly = Reassembly::new(4);
        let compact = CompactBlock::of(&original);
        let hash = compact.hash();
        assert_eq!(
            reassembly.start(compact.clone(), 2, |_| None),
            Rebuilt::Missing(vec![0, 1, 2])
        );
        let swapped = reassembly.fill(hash, 2, vec![tx(1), tx(3), tx(2)]);
        assert!(matches!(swapped, Err(e) if e.reason.contains("transaction 1")));
        assert_eq!(
            reassembly.fill(hash, 2, vec![tx(1), tx(2), tx(3)]),
            Ok(None)
        );
        reassembly.start(compact, 2, |_| None);
        let short = reassembly.fill(hash, 2, vec![tx(1)]);
        assert!(matches!(short, Err(e) if e.reason.contains("1 transactions sent for 3")));
    }

    #[test]
    fn waiting_blocks_are_bounded_and_a_departed_peer_s_are_forgotten() {
        let mut reassembly: Reassembly<String> = Reassembly::new(2);
        let blocks: Vec<Block<String>> = (1..=3).map(|n| block(vec![tx(n)])).collect();
        for (peer, b) in blocks.iter().enumerate() {
            reassembly.start(CompactBlock::of(b), peer as u64, |_| None);
        }
        assert_eq!(reassembly.partials.len(), 2);
        assert!(
            !reassembly.partials.contains_key(&blocks[0].hash()),
            "oldest first"
        );
        reassembly.forget_peer(1);
        assert_eq!(reassembly.partials.len(), 1);
        assert_eq!(reassembly.order.len(), 1);
        assert_eq!(
            reassembly.fill(blocks[2].hash(), 2, vec![tx(3)]),
            Ok(Some(blocks[2].clone()))
        );
    }

    #[test]
    fn a_completed_block_leaves_the_bound_intact() {
        let mut reassembly: Reassembly<String> = Reassembly::new(2);
        let blocks: Vec<Block<String>> = (1..=4).map(|n| block(vec![tx(n)])).collect();
        reassembly.start(CompactBlock::of(&blocks[0]), 1, |_| None);
        reassembly.start(CompactBlock::of(&blocks[1]), 1, |_| None);
        let done = reassembly.fill(blocks[0].hash(), 1, vec![tx(1)]);
        assert_eq!(done, Ok(Some(blocks[0].clone())));
        assert_eq!(
            reassembly.order.len(),
            1,
            "the completed block left the order"
        );
        reassembly.start(CompactBlock::of(&blocks[2]), 1, |_| None);
        reassembly.start(CompactBlock::of(&blocks[3]), 1, |_| None);
        assert_eq!(reassembly.partials.len(), 2);
        assert!(
            !reassembly.partials.contains_key(&blocks[1].hash()),
            "the oldest went"
        );
        assert_eq!(reassembly.order.len(), 2);
    }

    proptest! {
        /// Whatever part of a block's transactions is at hand, asking for the rest and
        /// filling them in gives back exactly the announced block.
        #[test]
        fn any_split_rebuilds_the_same_block(
            count in 0u64..40,
            held in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let original = block((1..=count).map(tx).collect());
            let at_hand: Vec<Transaction<String>> = original
                .transactions
                .iter()
                .zip(&held)
                .filter(|(_, h)| **h)
                .map(|(t, _)| t.clone())
                .collect();
            let at_hand = pool(&at_hand);
            let mut reassembly = Reassembly::new(4);
            let compact = CompactBlock::of(&original);
            let hash = compact.hash();
            match reassembly.start(compact, 1, |id| at_hand.get(id).cloned()) {
                Rebuilt::Complete(b) => prop_assert_eq!(*b, original),
                Rebuilt::Missing(indexes) => {
                    let sent: Vec<Transaction<String>> = indexes
                        .iter()
                        .map(|i| original.transactions[*i as usize].clone())
                        .collect();
                    prop_assert_eq!(reassembly.fill(hash, 1, sent), Ok(Some(original)));
                }
            }
        }
    }
}
