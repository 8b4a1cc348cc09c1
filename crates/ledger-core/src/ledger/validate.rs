//! Block validation, cheap to expensive: checks that need only the block, checks
//! before a block may wait as an orphan, checks against the parent's header
//! (signatures included), then the state rules and the rewards.

use std::sync::Arc;

use crate::block::{Block, BlockHeader, Reward, block_signing_message};
use crate::codec;
use crate::error::{BlockError, TxError};
use crate::hash::{BlockHash, TxId};
use crate::keys::verify_with;
use crate::limits;
use crate::merkle::merkle_root;
use crate::policy::Policy;
use crate::prepared::Digest;
use crate::state::{Rules, Slot, Undo};
use crate::store::BodySource;
use crate::tx::{Transaction, signed_parts, unsigned_part};
use crate::units::Timestamp;
use crate::verify::{self, SigItems};

use super::{Ledger, Origin, ValidatedBlock};

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
    /// Checks before a block waits for its parent that need no parent: the producer is
    /// authorised, the body is the one the header names (Merkle root) and the producer
    /// signed it. Otherwise a mangled copy could hold the genuine block's place in the
    /// orphan pool (same hash, so the genuine one would be a duplicate), and junk could
    /// crowd out real orphans.
    pub(super) fn check_orphan(
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
    pub(super) fn check_standalone(
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
    pub(super) fn check_in_context(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
    ) -> Result<ValidatedBlock<P::Payload>, BlockError<P::Error>> {
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
        Ok(ValidatedBlock { block, hash, ids })
    }

    /// Runs a block's state rules on the current state; on success the state includes
    /// the block and its undo record is returned.
    pub(super) fn execute_checked(
        &mut self,
        checked: &ValidatedBlock<P::Payload>,
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
            genesis_hash: self.genesis_hash,
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
        Ok(checked)
    }
}

pub(super) fn tx_error<E>(block: BlockHash, index: usize, error: TxError<E>) -> BlockError<E> {
    BlockError::Transaction {
        block,
        index,
        error,
    }
}

/// Compares the rewards a block lists with those its transactions earned.
pub(super) fn compare_rewards<E>(
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
