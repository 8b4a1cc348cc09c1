//! Batched, optionally parallel, signature verification with caches, and
//! [`preverify`] for checking many blocks' signatures ahead of their validation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::block::{Block, block_signing_message};
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::{AccountId, Signature};
use crate::limits;
use crate::prepared::{Digest, PreparedBlock};
use crate::tx::{signing_message, unsigned_part};

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
        // than the limit, sized so that every core gets the same number of batches (no
        // core is left idle while another finishes a last, lone batch).
        let threads = rayon::current_num_threads().max(1);
        let rounds = items
            .len()
            .div_ceil(threads * limits::SIGNATURE_BATCH)
            .max(1);
        let size = items
            .len()
            .div_ceil(threads * rounds)
            .clamp(MIN_PARALLEL_BATCH, limits::SIGNATURE_BATCH);
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

/// Remembers which signatures were already verified (transactions by id, producer
/// signatures by [`producer_key`]), so a transaction checked in the mempool is not
/// checked again in its block. Bounded: the oldest entries are forgotten first.
#[derive(Debug)]
pub(crate) struct SigCache<K> {
    seen: HashSet<K>,
    order: VecDeque<K>,
}

impl<K> Default for SigCache<K> {
    fn default() -> Self {
        SigCache {
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> SigCache<K> {
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.seen.contains(key)
    }

    pub(crate) fn insert(&mut self, key: K) {
        if self.seen.insert(key) {
            self.order.push_back(key);
            while self.order.len() > limits::MAX_SIG_CACHE {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

/// The cache key of a producer's signature: the block hash alone does not cover the
/// signature, so both are hashed together.
pub(crate) fn producer_key(block: &BlockHash, signature: &Signature) -> Hash {
    Hash::of_parts(&[
        b"healthchain/producer-sig",
        block.hash().as_bytes(),
        signature.as_bytes(),
    ])
}

/// Signatures checked ahead of block validation by [`preverify`], to hand to
/// [`Ledger::accept_preverified`](crate::Ledger::accept_preverified).
///
/// It records only signatures that verified; an invalid one is simply absent, so the
/// block carrying it is verified again, and refused with a precise error, when it is
/// submitted. It also records the network it was checked for: a transaction id does
/// not name its network, so a ledger of another network must not trust it.
#[derive(Debug, Default)]
pub struct Preverified {
    pub(crate) genesis: BlockHash,
    pub(crate) txs: Vec<TxId>,
    pub(crate) producers: Vec<Hash>,
}

impl Preverified {
    /// Number of signatures that verified.
    pub fn len(&self) -> usize {
        self.txs.len() + self.producers.len()
    }

    /// Whether no signature verified.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whose signature an item is.
enum Owner {
    Tx(TxId),
    Producer(Hash),
}

/// Verifies the producer and transaction signatures of `blocks` for the network named
/// by `genesis`, batched and (with the `parallel` feature) on every core. Pure: it
/// needs no ledger, so it can run while the ledger applies earlier blocks.
pub fn preverify<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
) -> Preverified {
    prepare_and_preverify(genesis, blocks, Remember::All).1
}

/// Prepares `blocks` (see [`prepare_blocks`](crate::prepare_blocks)) and verifies all
/// their signatures for the network named by `genesis`, batched and on every core,
/// from the same encodings. Pure, like [`preverify`]: run it off the ledger (a
/// syncing node's verifier task, say) and hand the blocks to
/// [`Ledger::submit_prepared`](crate::Ledger::submit_prepared). A block whose
/// signatures all verified carries that fact, for this genesis only; the ledger checks
/// the others' signatures itself (and refuses the bad ones as usual).
pub fn prepare_and_verify<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
) -> Vec<PreparedBlock<T>> {
    prepare_and_preverify(genesis, blocks, Remember::PartlySigned).0
}

/// Which valid signatures [`prepare_and_preverify`] lists in its [`Preverified`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remember {
    /// Every one.
    All,
    /// Only those of blocks not wholly signed: a wholly signed block carries that fact
    /// itself, so listing its signatures would only fill the signature cache.
    PartlySigned,
}

/// [`preverify`], and each block [prepared](crate::prepare_blocks) from the same
/// encodings: what a bulk import needs before the ledger applies the blocks.
pub(crate) fn prepare_and_preverify<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
    remember: Remember,
) -> (Vec<PreparedBlock<T>>, Preverified) {
    let Prepared {
        owners,
        items,
        blocks: spans,
        ..
    } = prepare(genesis, blocks);
    let mut verified = Preverified {
        genesis: *genesis,
        ..Preverified::default()
    };
    let valid = valid_items(&items);
    // Items are in block order; a block is wholly signed when every key it names was
    // usable and every one of its items is valid.
    let mut prepared = Vec::with_capacity(spans.len());
    let mut owners = owners.into_iter().zip(valid.iter().copied());
    let mut next = 0;
    for (mut block, count, keys_usable) in spans {
        let end = next + count;
        let signed = keys_usable && valid[next..end].iter().all(|ok| *ok);
        if signed {
            block.digest.signed_for = Some(*genesis);
        }
        let own = owners.by_ref().take(count);
        if signed && remember == Remember::PartlySigned {
            own.for_each(drop);
        } else {
            for (owner, ok) in own {
                match (owner, ok) {
                    (Owner::Tx(id), true) => verified.txs.push(id),
                    (Owner::Producer(key), true) => verified.producers.push(key),
                    (_, false) => {}
                }
            }
        }
        prepared.push(block);
        next = end;
    }
    (prepared, verified)
}

/// What [`prepare`] builds.
struct Prepared<T> {
    /// Whose each item is.
    owners: Vec<Owner>,
    /// The signatures to verify, block after block.
    items: Vec<SigItem>,
    /// Signatures left out because their key is unusable (those are invalid).
    unusable: usize,
    /// Each block prepared, with how many items it contributed and whether all its
    /// keys were usable.
    blocks: Vec<(PreparedBlock<T>, usize, bool)>,
}

/// Builds the items to verify for `blocks`, and prepares the blocks from the same
/// encodings.
fn prepare<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
) -> Prepared<T> {
    // Decompress each signer's key once (it costs about a tenth of a verification).
    // A set, not a sort: a batch has thousands of signatures from a few signers.
    let signers: Vec<AccountId> = blocks
        .iter()
        .flat_map(|b| {
            std::iter::once(b.header.producer).chain(b.transactions.iter().map(|t| t.author))
        })
        .collect::<HashSet<AccountId>>()
        .into_iter()
        .collect();
    let keys: HashMap<AccountId, VerifyingKey> =
        maybe_par_map(&signers, |a| a.verifying_key().map(|k| (*a, k)))
            .into_iter()
            .flatten()
            .collect();

    let per_block = maybe_par_map(blocks, |block| {
        let mut out = Vec::with_capacity(block.transactions.len() + 1);
        let mut unusable = 0;
        let hash = block.header.hash();
        match keys.get(&block.header.producer) {
            Some(key) => out.push((
                Owner::Producer(producer_key(&hash, &block.signature)),
                SigItem {
                    key: *key,
                    message: block_signing_message(&hash).to_vec(),
                    signature: block.signature.to_dalek(),
                },
            )),
            None => unusable += 1,
        }
        let digest = Digest::of(block, |_, tx, encoded, id| {
            let Some(key) = keys.get(&tx.author) else {
                unusable += 1;
                return;
            };
            out.push((
                Owner::Tx(id),
                SigItem {
                    key: *key,
                    message: signing_message(genesis, unsigned_part(encoded)),
                    signature: tx.signature.to_dalek(),
                },
            ));
        });
        let prepared = PreparedBlock {
            block: Arc::clone(block),
            hash,
            digest,
        };
        (out, unusable, prepared)
    });
    let mut all = Prepared {
        owners: Vec::new(),
        items: Vec::new(),
        unusable: 0,
        blocks: Vec::with_capacity(per_block.len()),
    };
    for (out, bad, block) in per_block {
        all.unusable += bad;
        all.blocks.push((block, out.len(), bad == 0));
        for (owner, item) in out {
            all.owners.push(owner);
            all.items.push(item);
        }
    }
    all
}

/// The signatures of a run of blocks (producers' and transactions'), prepared for
/// verification: keys decompressed, messages built. [`SignatureSet::verify`] then does
/// nothing but batch verification, which makes it the floor against which the cost of
/// full validation is measured (`healthchain verify --floor`, the `chain_validation`
/// benchmark).
pub struct SignatureSet {
    items: Vec<SigItem>,
    unusable_keys: usize,
}

impl SignatureSet {
    /// Prepares the signatures of `blocks` on the network named by `genesis`.
    pub fn of_blocks<T: Serialize + Send + Sync>(
        genesis: &BlockHash,
        blocks: &[Arc<Block<T>>],
    ) -> SignatureSet {
        let Prepared {
            items,
            unusable: unusable_keys,
            ..
        } = prepare(genesis, blocks);
        SignatureSet {
            items,
            unusable_keys,
        }
    }

    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.items.len() + self.unusable_keys
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch-verifies every signature (on every core with the `parallel` feature);
    /// `true` if all are valid.
    pub fn verify(&self) -> bool {
        self.unusable_keys == 0 && first_invalid(&self.items).is_none()
    }
}

/// Whether each item's signature is valid: one batched pass, re-entered after each
/// invalid signature found (rare: only forged data has any).
pub(crate) fn valid_items(items: &[SigItem]) -> Vec<bool> {
    let mut valid = vec![true; items.len()];
    let mut start = 0;
    while start < items.len() {
        match first_invalid(&items[start..]) {
            Some(bad) => {
                valid[start + bad] = false;
                start += bad + 1;
            }
            None => break,
        }
    }
    valid
}

/// `items.map(f)`, in parallel with the `parallel` feature.
fn maybe_par_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync + Send) -> Vec<O> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.iter().map(f).collect()
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
