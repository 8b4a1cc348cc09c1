//! Batched, optionally parallel, signature verification with caches.

use std::collections::{HashMap, HashSet, VecDeque};

use ed25519_dalek::VerifyingKey;

use crate::hash::TxId;
use crate::keys::{AccountId, Signature};
use crate::limits;

/// Smallest batch worth sending to another core: below it, batching gains little and
/// the hand-off costs more than it saves.
#[cfg(feature = "parallel")]
const MIN_PARALLEL_BATCH: usize = 32;

/// One signature to check.
pub(crate) struct SigItem {
    pub(crate) key: VerifyingKey,
    pub(crate) message: Vec<u8>,
    pub(crate) signature: ed25519_dalek::Signature,
}

/// Verifies `items` in batches (in parallel with the `parallel` feature) and returns
/// the index of the first item whose signature is invalid, if any.
///
/// A batch that fails is re-checked one signature at a time with the strict rules, which
/// are the consensus rule; the batch is only a faster way to reach the same answer.
pub(crate) fn first_invalid(items: &[SigItem]) -> Option<usize> {
    let check_chunk = |n: usize, chunk: &[SigItem], size: usize| -> Option<usize> {
        let messages: Vec<&[u8]> = chunk.iter().map(|i| i.message.as_slice()).collect();
        let signatures: Vec<_> = chunk.iter().map(|i| i.signature).collect();
        let keys: Vec<_> = chunk.iter().map(|i| i.key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return None;
        }
        chunk
            .iter()
            .position(|i| i.key.verify_strict(&i.message, &i.signature).is_err())
            .map(|p| n * size + p)
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        // Spread even a single block's signatures over every core, in batches no larger
        // than the limit.
        let per_thread = items.len().div_ceil(rayon::current_num_threads()).max(1);
        let size = per_thread.clamp(MIN_PARALLEL_BATCH, limits::SIGNATURE_BATCH);
        items
            .par_chunks(size)
            .enumerate()
            .filter_map(|(n, chunk)| check_chunk(n, chunk, size))
            .min()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items
            .chunks(limits::SIGNATURE_BATCH)
            .enumerate()
            .find_map(|(n, chunk)| check_chunk(n, chunk, limits::SIGNATURE_BATCH))
    }
}

/// Remembers which transactions already had their signature verified, so a transaction
/// checked in the mempool is not checked again in its block. Bounded: the oldest
/// entries are forgotten first.
#[derive(Debug, Default)]
pub(crate) struct SigCache {
    seen: HashSet<TxId>,
    order: VecDeque<TxId>,
}

impl SigCache {
    pub(crate) fn contains(&self, id: &TxId) -> bool {
        self.seen.contains(id)
    }

    pub(crate) fn insert(&mut self, id: TxId) {
        if self.seen.insert(id) {
            self.order.push_back(id);
            while self.order.len() > limits::MAX_SIG_CACHE {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

/// Decompressed public keys, so a signer seen again is not decompressed again.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: HashMap<AccountId, VerifyingKey>,
}

impl KeyCache {
    /// The verifying key of `account`, or `None` if it is not a usable key.
    pub(crate) fn get(&mut self, account: &AccountId) -> Option<VerifyingKey> {
        if let Some(key) = self.keys.get(account) {
            return Some(*key);
        }
        let key = account.verifying_key()?;
        if self.keys.len() >= limits::MAX_KEY_CACHE {
            // Simple and bounded: start over rather than track recency.
            self.keys.clear();
        }
        self.keys.insert(*account, key);
        Some(key)
    }
}

/// Builds the item for `signature` by `account` over `message`, or `None` if the
/// account is not a usable key (which makes the signature invalid).
pub(crate) fn item(
    keys: &mut KeyCache,
    account: &AccountId,
    message: Vec<u8>,
    signature: &Signature,
) -> Option<SigItem> {
    Some(SigItem {
        key: keys.get(account)?,
        message,
        signature: signature.to_dalek(),
    })
}
