//! Batched, optionally parallel, signature verification with caches, and
//! [`preverify`] for checking many blocks' signatures ahead of their validation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::block::{Block, block_signing_message};
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::{AccountId, Signature};
use crate::limits;
use crate::prepared::{Digest, PreparedBlock};
use crate::tx::{signed_parts, unsigned_part};

/// Smallest batch worth sending to another core: below it, batching gains little and
/// the hand-off costs more than it saves.
#[cfg(feature = "parallel")]
const MIN_PARALLEL_BATCH: usize = 32;

/// How many signers are told apart by comparing them one by one (a block's signers,
/// the latest keys of a [`SigItems`]) before their ids are hashed instead, or a key is
/// stored again: a batch has thousands of signatures from a few signers.
const KEY_SEARCH: usize = 16;

/// Room reserved for a transaction's signed message before its length is known: the
/// genesis hash and a typical encoded transaction.
const MESSAGE_ROOM: usize = 256;

/// Signatures to check. Each key is stored once per signer and every message lives in
/// one buffer, so building a batch of thousands allocates nothing per signature.
#[derive(Default)]
pub(crate) struct SigItems {
    keys: Vec<VerifyingKey>,
    messages: Vec<u8>,
    items: Vec<SigRef>,
}

/// One signature of [`SigItems`]: its key and message, by position.
struct SigRef {
    key: usize,
    message: Range<usize>,
    signature: ed25519_dalek::Signature,
}

impl SigItems {
    /// Room for `signatures` signatures whose messages total `bytes`.
    pub(crate) fn with_capacity(signatures: usize, bytes: usize) -> SigItems {
        SigItems {
            keys: Vec::new(),
            messages: Vec::with_capacity(bytes),
            items: Vec::with_capacity(signatures),
        }
    }

    /// Total length of the messages.
    pub(crate) fn message_bytes(&self) -> usize {
        self.messages.len()
    }

    /// Number of signatures.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Adds `signature` by `key` over the concatenation of `message`.
    pub(crate) fn push(&mut self, key: VerifyingKey, message: &[&[u8]], signature: &Signature) {
        let key = self.key_index(key);
        let start = self.messages.len();
        for part in message {
            self.messages.extend_from_slice(part);
        }
        self.items.push(SigRef {
            key,
            message: start..self.messages.len(),
            signature: signature.to_dalek(),
        });
    }

    /// Appends every signature of `other`, in order.
    pub(crate) fn append(&mut self, other: SigItems) {
        let base = self.messages.len();
        self.messages.extend_from_slice(&other.messages);
        let keys: Vec<usize> = other.keys.into_iter().map(|k| self.key_index(k)).collect();
        self.items
            .extend(other.items.into_iter().map(|item| SigRef {
                key: keys[item.key],
                message: item.message.start + base..item.message.end + base,
                signature: item.signature,
            }));
    }

    /// Where `key` is stored: among the latest keys if it is one of them, else added.
    fn key_index(&mut self, key: VerifyingKey) -> usize {
        let recent = self.keys.len().saturating_sub(KEY_SEARCH);
        match self.keys[recent..].iter().rposition(|k| *k == key) {
            Some(i) => recent + i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        }
    }

    /// Verifies `items` (some of this set's signatures) in one batch; on failure
    /// re-checks them one at a time with the strict rules, which are the consensus
    /// rule (the batch is only a faster way to reach the same answer), and returns the
    /// position of the first invalid one within `items`.
    fn first_invalid_in(&self, items: &[SigRef]) -> Option<usize> {
        let message = |item: &SigRef| &self.messages[item.message.clone()];
        let messages: Vec<&[u8]> = items.iter().map(message).collect();
        let signatures: Vec<_> = items.iter().map(|i| i.signature).collect();
        let keys: Vec<_> = items.iter().map(|i| self.keys[i.key]).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return None;
        }
        items.iter().position(|i| {
            self.keys[i.key]
                .verify_strict(message(i), &i.signature)
                .is_err()
        })
    }

    /// The index of the first invalid signature from `start` on, if any: verified in
    /// batches, on every core with the `parallel` feature.
    fn first_invalid_from(&self, start: usize) -> Option<usize> {
        let items = &self.items[start.min(self.items.len())..];
        let found = {
            #[cfg(feature = "parallel")]
            {
                use rayon::prelude::*;
                // Spread even a single block's signatures over every core, in batches
                // no larger than the limit, sized so that every core gets the same
                // number of batches (no core is left idle while another finishes a
                // last, lone batch).
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
                    .filter_map(|(n, chunk)| self.first_invalid_in(chunk).map(|p| n * size + p))
                    .min()
            }
            #[cfg(not(feature = "parallel"))]
            {
                items
                    .chunks(limits::SIGNATURE_BATCH)
                    .enumerate()
                    .find_map(|(n, chunk)| {
                        self.first_invalid_in(chunk)
                            .map(|p| n * limits::SIGNATURE_BATCH + p)
                    })
            }
        };
        found.map(|i| start + i)
    }

    /// The index of the first invalid signature, if any.
    pub(crate) fn first_invalid(&self) -> Option<usize> {
        self.first_invalid_from(0)
    }

    /// Whether each signature is valid: one batched pass, re-entered after each
    /// invalid signature found (rare: only forged data has any).
    pub(crate) fn validity(&self) -> Vec<bool> {
        let mut valid = vec![true; self.items.len()];
        let mut start = 0;
        while let Some(bad) = self.first_invalid_from(start) {
            valid[bad] = false;
            start = bad + 1;
        }
        valid
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
    let valid = items.validity();
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
    items: SigItems,
    /// Signatures left out because their key is unusable (those are invalid).
    unusable: usize,
    /// Each block prepared, with how many items it contributed and whether all its
    /// keys were usable.
    blocks: Vec<(PreparedBlock<T>, usize, bool)>,
}

/// The distinct signers of `block` (its producer, then its transactions' authors), in
/// order of appearance: compared one by one while there are few, hashed beyond that.
fn signers_of<T>(block: &Block<T>) -> Vec<AccountId> {
    let mut found: Vec<AccountId> = Vec::new();
    let mut many: Option<HashSet<AccountId>> = None;
    let authors = block.transactions.iter().map(|t| t.author);
    for account in std::iter::once(block.header.producer).chain(authors) {
        let new = match &mut many {
            Some(seen) => seen.insert(account),
            None => !found.contains(&account),
        };
        if new {
            found.push(account);
            if many.is_none() && found.len() > KEY_SEARCH {
                many = Some(found.iter().copied().collect());
            }
        }
    }
    found
}

/// Builds the items to verify for `blocks`, and prepares the blocks from the same
/// encodings.
fn prepare<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
) -> Prepared<T> {
    // Decompress each signer's key once (it costs about a tenth of a verification):
    // each block lists its few signers (on every core), then the batch's are merged.
    let block_signers = maybe_par_map(blocks, |block| signers_of(block));
    let signers: Vec<AccountId> = block_signers
        .iter()
        .flatten()
        .copied()
        .collect::<HashSet<AccountId>>()
        .into_iter()
        .collect();
    let keys: HashMap<AccountId, VerifyingKey> =
        maybe_par_map(&signers, |a| a.verifying_key().map(|k| (*a, k)))
            .into_iter()
            .flatten()
            .collect();
    let blocks: Vec<_> = blocks.iter().zip(&block_signers).collect();

    let per_block = maybe_par_map(&blocks, |&(block, signers)| {
        // A block's few signers are told apart by comparing their ids, not hashing them.
        let local: Vec<(AccountId, Option<VerifyingKey>)> =
            signers.iter().map(|a| (*a, keys.get(a).copied())).collect();
        let key_of = |account: &AccountId| -> Option<VerifyingKey> {
            if local.len() > KEY_SEARCH {
                return keys.get(account).copied();
            }
            local
                .iter()
                .find(|(a, _)| a == account)
                .and_then(|(_, k)| *k)
        };
        let signatures = block.transactions.len() + 1;
        let mut items = SigItems::with_capacity(signatures, signatures * MESSAGE_ROOM);
        let mut owners = Vec::with_capacity(block.transactions.len() + 1);
        let mut unusable = 0;
        let hash = block.header.hash();
        match key_of(&block.header.producer) {
            Some(key) => {
                items.push(key, &[&block_signing_message(&hash)], &block.signature);
                owners.push(Owner::Producer(producer_key(&hash, &block.signature)));
            }
            None => unusable += 1,
        }
        let digest = Digest::of(block, |_, tx, encoded, id| {
            let Some(key) = key_of(&tx.author) else {
                unusable += 1;
                return;
            };
            let message = signed_parts(genesis, unsigned_part(encoded));
            items.push(key, &message, &tx.signature);
            owners.push(Owner::Tx(id));
        });
        let prepared = PreparedBlock {
            block: Arc::clone(block),
            hash,
            digest,
        };
        (items, owners, unusable, prepared)
    });
    let (signatures, bytes) = per_block.iter().fold((0, 0), |(n, b), (items, ..)| {
        (n + items.len(), b + items.message_bytes())
    });
    let mut all = Prepared {
        owners: Vec::with_capacity(signatures),
        items: SigItems::with_capacity(signatures, bytes),
        unusable: 0,
        blocks: Vec::with_capacity(per_block.len()),
    };
    for (items, owners, bad, block) in per_block {
        all.unusable += bad;
        all.blocks.push((block, owners.len(), bad == 0));
        all.owners.extend(owners);
        all.items.append(items);
    }
    all
}

/// The signatures of a run of blocks (producers' and transactions'), prepared for
/// verification: keys decompressed, messages built. [`SignatureSet::verify`] then does
/// nothing but batch verification, which makes it the floor against which the cost of
/// full validation is measured (`healthchain verify --floor`, the `chain_validation`
/// benchmark).
pub struct SignatureSet {
    items: SigItems,
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
        self.unusable_keys == 0 && self.items.first_invalid().is_none()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    /// `count` signatures by `keys` (in turn) over two-part messages; the one at `forged`
    /// signs something else.
    fn signed(keys: &[Keypair], count: usize, forged: Option<usize>) -> SigItems {
        let mut items = SigItems::default();
        for i in 0..count {
            let key = &keys[i % keys.len()];
            let (head, tail) = (b"message ".as_slice(), i.to_le_bytes());
            let signature = if forged == Some(i) {
                key.sign(b"something else")
            } else {
                key.sign(&[head, tail.as_slice()].concat())
            };
            let verifying = key.account().verifying_key().expect("a real key");
            items.push(verifying, &[head, &tail], &signature);
        }
        items
    }

    #[test]
    fn keys_are_stored_once_per_signer() {
        let keys = [Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32])];
        let items = signed(&keys, 40, None);
        assert_eq!(items.len(), 40);
        assert_eq!(items.keys.len(), 2);
        assert_eq!(items.first_invalid(), None);
    }

    #[test]
    fn appended_signatures_keep_their_messages_and_keys() {
        let keys = [Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32])];
        let other = [Keypair::from_seed([3; 32]), Keypair::from_seed([1; 32])];
        let mut items = signed(&keys, 50, None);
        items.append(signed(&other, 70, Some(33)));
        assert_eq!(items.len(), 120);
        assert_eq!(items.keys.len(), 3, "the shared signer is stored once");
        assert_eq!(items.first_invalid(), Some(50 + 33));
    }

    #[test]
    fn more_signers_than_the_key_search_are_still_told_apart() {
        let keys: Vec<Keypair> = (0..KEY_SEARCH as u8 * 2 + 3)
            .map(|i| Keypair::from_seed([i + 10; 32]))
            .collect();
        let mut items = signed(&keys, 120, Some(77));
        items.append(signed(&keys, 80, Some(5)));
        assert!(items.keys.len() >= keys.len());
        let valid = items.validity();
        let invalid: Vec<usize> = (0..valid.len()).filter(|&i| !valid[i]).collect();
        assert_eq!(invalid, vec![77, 125]);
    }

    #[test]
    fn validity_finds_every_invalid_signature() {
        let keys = [Keypair::from_seed([4; 32])];
        let mut items = signed(&keys, 100, Some(7));
        items.append(signed(&keys, 100, Some(99)));
        let valid = items.validity();
        let invalid: Vec<usize> = (0..valid.len()).filter(|&i| !valid[i]).collect();
        assert_eq!(invalid, vec![7, 199]);
    }
}
