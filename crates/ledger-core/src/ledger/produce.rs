//! Block production: who may produce on the tip, block templates, and mining.

use std::collections::HashMap;

use crate::block::{Block, BlockHeader, BlockTemplate, MineStatus, Reward, merkle_entries};
use crate::error::ProduceError;
use crate::hash::TxId;
use crate::keys::{AccountId, Keypair};
use crate::limits;
use crate::merkle::merkle_root;
use crate::policy::Policy;
use crate::state::{Rules, Slot};
use crate::store::BodySource;
use crate::units::{Height, Timestamp};

use super::Ledger;

/// Encoded size of one [`Reward`] (account, amount, cause: 32 + 8 + 32 bytes), counted
/// for every transaction a template takes, so the rewards it earns always fit.
const REWARD_BYTES: usize = 32 + 8 + 32;

/// Bytes of a block a template leaves for everything but transactions and rewards:
/// the header ([`HEADER_BYTES`](crate::HEADER_BYTES)), the producer's signature and
/// the length prefixes, with ample slack, so a template never exceeds
/// [`MAX_BLOCK_BYTES`](limits::MAX_BLOCK_BYTES).
const TEMPLATE_HEADROOM: usize = 4096;

// The header, a 64-byte signature and two 8-byte length prefixes fit in the headroom.
const _: () = assert!(crate::HEADER_BYTES + 64 + 2 * 8 <= TEMPLATE_HEADROOM);

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
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
        let reward_bytes = REWARD_BYTES;
        let budget = limits::MAX_BLOCK_BYTES - TEMPLATE_HEADROOM;
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
            genesis_hash: self.genesis_hash,
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

/// How many of the transactions `ids` (of encoded `sizes`), taken in order, fit in a
/// block together with the rewards `paid` for them: at most
/// [`MAX_REWARDS_PER_BLOCK`](limits::MAX_REWARDS_PER_BLOCK) rewards and `budget` bytes.
pub(super) fn fitting_prefix(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::units::Amount;

    #[test]
    fn reward_bytes_is_the_encoded_size_of_a_reward() {
        let reward = Reward {
            to: AccountId::default(),
            amount: Amount(u64::MAX),
            cause: TxId::default(),
        };
        assert_eq!(codec::encoded_len(&reward), REWARD_BYTES);
    }
}
