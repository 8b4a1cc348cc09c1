//! Batched, optionally parallel, signature verification with caches, and
//! [`preverify`] for checking many blocks' signatures ahead of their validation.
//!
//! Every signature is judged by the one rule of [`keys`](crate::keys) (ZIP-215, through
//! `ed25519-zebra`), under which a batch accepts exactly the signatures that are valid
//! alone. A batch that fails is resolved in one pass by [`settle`]: it is split in
//! halves and only the halves that fail are looked into further, so finding the
//! invalid signatures among `n` costs `O(n)` checks, never a pass per invalid one.
//!
//! The file is a little over 800 lines because its unit tests (about 200 lines, the
//! settling bounds among them) sit beside the code they pin.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;
use ed25519_zebra::{VerificationKey, VerificationKeyBytes, batch};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

mod txs;

pub use txs::preverify_txs;

use crate::block::{Block, BlockHeader, block_signing_message};
use crate::bounded::BoundedSet;
use crate::genesis::Genesis;
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::{AccountId, Signature};
use crate::limits;
use crate::prepared::{Digest, PreparedBlock};
use crate::tx::{signed_parts, unsigned_part};

/// Smallest batch worth sending to another core: below it, batching gains little and
/// the hand-off costs more than it saves.
#[cfg(feature = "parallel")]
const MIN_PARALLEL_BATCH: usize = 32;

/// How many signers are told apart by comparing them one by one (a block's signers)
/// before their ids are hashed instead: a batch has thousands of signatures from a few
/// signers.
const KEY_SEARCH: usize = 16;

/// Room reserved for a transaction's signed message before its length is known: the
/// genesis hash and a typical encoded transaction.
const MESSAGE_ROOM: usize = 256;

/// A failed run of signatures this short is settled by checking each one alone:
/// splitting it further would cost more batch set-ups than it saves.
const SETTLE_ALONE: usize = 8;

/// Signatures to check. Every message lives in one buffer, so building a batch of
/// thousands allocates nothing per signature; the challenge hashes are computed when a
/// run of them is verified, on the core that verifies it.
#[derive(Default)]
pub(crate) struct SigItems {
    messages: Vec<u8>,
    items: Vec<SigRef>,
}

/// One signature of [`SigItems`]: its signer, its message by position, the signature.
struct SigRef {
    account: AccountId,
    message: Range<usize>,
    signature: Signature,
}

impl SigItems {
    /// Room for `signatures` signatures whose messages total `bytes`.
    pub(crate) fn with_capacity(signatures: usize, bytes: usize) -> SigItems {
        SigItems {
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

    /// Adds `signature` by `account` over the concatenation of `message`. The caller
    /// has checked that `account` is a usable key ([`AccountId::is_usable`]).
    pub(crate) fn push(&mut self, account: &AccountId, message: &[&[u8]], signature: &Signature) {
        let start = self.messages.len();
        for part in message {
            self.messages.extend_from_slice(part);
        }
        self.items.push(SigRef {
            account: *account,
            message: start..self.messages.len(),
            signature: *signature,
        });
    }

    /// Appends every signature of `other`, in order.
    pub(crate) fn append(&mut self, other: SigItems) {
        let base = self.messages.len();
        self.messages.extend_from_slice(&other.messages);
        self.items
            .extend(other.items.into_iter().map(|item| SigRef {
                message: item.message.start + base..item.message.end + base,
                ..item
            }));
    }

    /// Whether each signature of `range` is valid: one batch, split only where it
    /// fails (see [`settle`]).
    fn validity_of(&self, range: Range<usize>) -> Vec<bool> {
        let refs = &self.items[range];
        // The challenge hash of each signature, computed once for the batch, the
        // halves and the single checks alike.
        let items: Vec<batch::Item> = refs
            .iter()
            .map(|r| {
                let key = VerificationKeyBytes::from(*r.account.as_bytes());
                let message = &self.messages[r.message.clone()];
                batch::Item::from((key, r.signature.to_ed25519(), message))
            })
            .collect();
        // The batch's random coefficients are drawn from a hash of its keys and
        // signatures (each challenge hash binds the message to them): no one who
        // crafts signatures can predict them, and the same batch always gets the same
        // coefficients. Under ZIP-215 the verdict is the same for any coefficients,
        // except with negligible probability.
        let mut transcript = Sha256::new_with_prefix(b"healthchain/signature-batch");
        for r in refs {
            transcript.update(r.account.as_bytes());
            transcript.update(r.signature.as_bytes());
        }
        let batch_ok = |run: Range<usize>| {
            let mut seed = transcript.clone();
            seed.update((run.start as u64).to_le_bytes());
            seed.update((run.end as u64).to_le_bytes());
            let mut verifier = batch::Verifier::new();
            for item in &items[run] {
                verifier.queue(item.clone());
            }
            verifier
                .verify(ChaCha20Rng::from_seed(seed.finalize().into()))
                .is_ok()
        };
        let single_ok = |i: usize| items[i].clone().verify_single().is_ok();
        let mut valid = vec![true; refs.len()];
        settle(0..refs.len(), batch_ok, single_ok, |i, ok| valid[i] = ok);
        valid
    }

    /// Whether each signature is valid: batches on every core with the `parallel`
    /// feature; failed batches are settled in one pass each.
    pub(crate) fn validity(&self) -> Vec<bool> {
        let len = self.items.len();
        // One batch, from `start`, of at most `size` signatures: the same bounds on
        // either path.
        let batch = |start: usize, size: usize| self.validity_of(start..(start + size).min(len));
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            // Spread even a single block's signatures over every core, in batches no
            // larger than the limit, sized so that every core gets the same number of
            // batches (no core is left idle while another finishes a last, lone batch).
            let threads = rayon::current_num_threads().max(1);
            let rounds = len.div_ceil(threads * limits::SIGNATURE_BATCH).max(1);
            let size = len
                .div_ceil(threads * rounds)
                .clamp(MIN_PARALLEL_BATCH, limits::SIGNATURE_BATCH);
            let starts: Vec<usize> = (0..len).step_by(size).collect();
            starts
                .par_iter()
                .map(|&start| batch(start, size))
                .flatten_iter()
                .collect()
        }
        #[cfg(not(feature = "parallel"))]
        {
            let _ = batch;
            self.validity_serial()
        }
    }

    /// [`SigItems::validity`] on the calling thread alone, in batches of at most
    /// [`limits::SIGNATURE_BATCH`].
    pub(crate) fn validity_serial(&self) -> Vec<bool> {
        let len = self.items.len();
        (0..len)
            .step_by(limits::SIGNATURE_BATCH)
            .flat_map(|start| self.validity_of(start..(start + limits::SIGNATURE_BATCH).min(len)))
            .collect()
    }

    /// The index of the first invalid signature, if any.
    pub(crate) fn first_invalid(&self) -> Option<usize> {
        self.validity().iter().position(|ok| !ok)
    }
}

/// Settles which signatures of `range` are valid, given a batch check (`batch`: are
/// all of these valid?) and a single check (`single`), reporting each invalid one to
/// `invalid` (and each one checked alone, valid or not, with its verdict).
///
/// One pass, with a bound on the work: the whole range is checked as one batch; a run
/// known to hold an invalid signature is split in halves, and the left half checked:
///
/// - if it passes, the right half is known to be bad and is split in turn;
/// - if it fails, the right half is checked too; if that one passes, the left is
///   split in turn; if it fails as well, the run holds at least two invalid signatures
///   and each of its signatures is checked alone;
/// - a bad run of at most [`SETTLE_ALONE`] is checked one signature at a time.
///
/// So the signatures checked (a batch of `m` counting `m`) are at most about four
/// times `range.len()` whatever the pattern (all invalid: one batch pass, the halves,
/// then each alone), and with one invalid signature, `range.len()` plus about twice
/// that again, in `2·log2(n)` batch calls. The loop runs once per halving level, so it
/// ends after at most `log2(n)` rounds (and is bounded by the bits of a `usize`
/// whatever happens).
pub(crate) fn settle(
    range: Range<usize>,
    mut batch: impl FnMut(Range<usize>) -> bool,
    mut single: impl FnMut(usize) -> bool,
    mut verdict: impl FnMut(usize, bool),
) {
    let mut alone = |run: Range<usize>, verdict: &mut dyn FnMut(usize, bool)| {
        for i in run {
            verdict(i, single(i));
        }
    };
    if range.len() <= SETTLE_ALONE {
        alone(range, &mut verdict);
        return;
    }
    if batch(range.clone()) {
        return;
    }
    // `bad` always holds an invalid signature, and halves each round.
    let mut bad = range;
    // Each round halves `bad`, so a run of any length needs fewer rounds than a
    // `usize` has bits: the bound is explicit rather than left to the arithmetic.
    for _ in 0..usize::BITS {
        if bad.len() <= SETTLE_ALONE {
            break;
        }
        let mid = bad.start + bad.len() / 2;
        let (left, right) = (bad.start..mid, mid..bad.end);
        if batch(left.clone()) {
            bad = right;
        } else if batch(right.clone()) {
            bad = left;
        } else {
            break;
        }
    }
    alone(bad, &mut verdict);
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

    /// The network (genesis hash) these signatures were verified for: a ledger of
    /// another network ignores them.
    pub fn genesis(&self) -> BlockHash {
        self.genesis
    }

    /// Whether the signature of the transaction `id` verified.
    pub fn has_tx(&self, id: &TxId) -> bool {
        self.txs.contains(id)
    }

    /// Whether the producer's signature of `block` verified.
    pub fn has_producer<T>(&self, block: &Block<T>) -> bool
    where
        T: Serialize,
    {
        self.producers
            .contains(&producer_key(&block.hash(), &block.signature))
    }
}

/// Verifies `signatures` (signer, message, signature) under the network's one rule,
/// batched and, with the `parallel` feature, on every core, as the ledger verifies
/// transactions: for a policy whose payloads carry signatures of their own, checked
/// ahead of their blocks ([`Policy::prepare`](crate::Policy::prepare)). Each one's
/// validity, in order; a key that is not usable signs nothing.
pub fn verify_signatures(signatures: &[(AccountId, &[u8], Signature)]) -> Vec<bool> {
    let bytes = signatures.iter().map(|(_, m, _)| m.len()).sum();
    let mut items = SigItems::with_capacity(signatures.len(), bytes);
    let mut usable = Vec::with_capacity(signatures.len());
    for (i, (account, message, signature)) in signatures.iter().enumerate() {
        if account.is_usable() {
            items.push(account, &[message], signature);
            usable.push(i);
        }
    }
    let mut valid = vec![false; signatures.len()];
    for (i, ok) in usable.into_iter().zip(items.validity()) {
        valid[i] = ok;
    }
    valid
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
    prepare_and_preverify(genesis, None, blocks, Remember::All).1
}

/// Prepares `blocks` (see [`prepare_blocks`](crate::prepare_blocks)) and verifies all
/// their signatures for the network named by `genesis`, batched and on every core,
/// from the same encodings. Pure, like [`preverify`]: run it off the ledger (a
/// syncing node's verifier task, say) and hand the blocks to
/// [`Ledger::submit`](crate::Ledger::submit). A block whose
/// signatures all verified carries that fact, for this genesis only; the ledger checks
/// the others' signatures itself (and refuses the bad ones as usual).
pub fn prepare_and_verify<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    blocks: &[Arc<Block<T>>],
) -> Vec<PreparedBlock<T>> {
    prepare_and_preverify(genesis, None, blocks, Remember::PartlySigned).0
}

/// The checks a block must pass before any of its signatures is verified off the
/// ledger: entry counts, proof of work and an authorised producer, all read from the
/// header and the entry lists. A peer that answers a sync with blocks full of bad
/// signatures but no work, or by an outsider, costs a hash each, not a verification
/// each: a screened-out block is prepared without its signatures checked, and the
/// ledger then refuses it with its precise error before it would check them.
#[derive(Clone, Debug)]
pub struct Screen {
    genesis: BlockHash,
    pow_bits: u8,
    producers: Option<Arc<HashSet<AccountId>>>,
    /// Authors whose keys were found usable by [`Screen::preverify_txs`], so a busy
    /// node does not decompress the same few keys batch after batch.
    usable: Arc<Mutex<BoundedSet<AccountId>>>,
}

impl Screen {
    /// The screen of the network `genesis`.
    pub fn new(genesis: &Genesis) -> Screen {
        Screen {
            genesis: genesis.hash(),
            pow_bits: genesis.pow_bits,
            producers: (genesis.producers.as_ref()).map(|p| Arc::new(p.iter().copied().collect())),
            usable: Arc::new(Mutex::new(BoundedSet::new(limits::MAX_KEY_CACHE))),
        }
    }

    /// Whether `block` (whose header hashes to `hash`) passes the cheap checks.
    pub fn admits<T>(&self, block: &Block<T>, hash: &BlockHash) -> bool {
        block.transactions.len() <= limits::MAX_TXS_PER_BLOCK
            && block.rewards.len() <= limits::MAX_REWARDS_PER_BLOCK
            && BlockHeader::meets_target(hash, self.pow_bits)
            && (self.producers.as_ref()).is_none_or(|p| p.contains(&block.header.producer))
    }

    /// [`prepare_and_verify`], verifying the signatures only of the blocks this screen
    /// admits.
    pub fn prepare_and_verify<T: Serialize + Send + Sync>(
        &self,
        blocks: &[Arc<Block<T>>],
    ) -> Vec<PreparedBlock<T>> {
        prepare_and_preverify(&self.genesis, Some(self), blocks, Remember::PartlySigned).0
    }

    /// [`preverify`], verifying the signatures only of the blocks this screen admits.
    pub fn preverify<T: Serialize + Send + Sync>(&self, blocks: &[Arc<Block<T>>]) -> Preverified {
        prepare_and_preverify(&self.genesis, Some(self), blocks, Remember::All).1
    }
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
/// encodings: what a bulk import needs before the ledger applies the blocks. With a
/// `screen`, only the blocks it admits have their signatures verified.
pub(crate) fn prepare_and_preverify<T: Serialize + Send + Sync>(
    genesis: &BlockHash,
    screen: Option<&Screen>,
    blocks: &[Arc<Block<T>>],
    remember: Remember,
) -> (Vec<PreparedBlock<T>>, Preverified) {
    let Prepared {
        owners,
        items,
        blocks: spans,
        ..
    } = prepare(genesis, screen, blocks);
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
    screen: Option<&Screen>,
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
    let usable: HashSet<AccountId> = maybe_par_map(&signers, |a| a.is_usable().then_some(*a))
        .into_iter()
        .flatten()
        .collect();
    let blocks: Vec<_> = blocks.iter().zip(&block_signers).collect();

    let per_block = maybe_par_map(&blocks, |&(block, signers)| {
        // A block's few signers are told apart by comparing their ids, not hashing them.
        let local: Vec<(AccountId, bool)> =
            signers.iter().map(|a| (*a, usable.contains(a))).collect();
        let usable_key = |account: &AccountId| -> bool {
            if local.len() > KEY_SEARCH {
                return usable.contains(account);
            }
            local
                .iter()
                .find(|(a, _)| a == account)
                .is_some_and(|(_, ok)| *ok)
        };
        let signatures = block.transactions.len() + 1;
        let mut items = SigItems::with_capacity(signatures, signatures * MESSAGE_ROOM);
        let mut owners = Vec::with_capacity(block.transactions.len() + 1);
        let mut unusable = 0;
        let hash = block.header.hash();
        if screen.is_some_and(|s| !s.admits(block, &hash)) {
            // Prepared, not verified: the ledger refuses it before its signatures.
            let digest = Digest::of(block, |_, _, _, _| {});
            let prepared = PreparedBlock {
                block: Arc::clone(block),
                hash,
                digest,
            };
            return (items, owners, 1, prepared);
        }
        if usable_key(&block.header.producer) {
            let producer = &block.header.producer;
            items.push(producer, &[&block_signing_message(&hash)], &block.signature);
            owners.push(Owner::Producer(producer_key(&hash, &block.signature)));
        } else {
            unusable += 1;
        }
        let digest = Digest::of(block, |_, tx, encoded, id| {
            if !usable_key(&tx.author) {
                unusable += 1;
                return;
            }
            let message = signed_parts(genesis, unsigned_part(encoded));
            items.push(&tx.author, &message, &tx.signature);
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
        } = prepare(genesis, None, blocks);
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
    keys: HashMap<AccountId, VerificationKey>,
}

impl KeyCache {
    /// The verification key of `account`, or `None` if it is not a usable key
    /// ([`AccountId::is_usable`]).
    pub(crate) fn get(&mut self, account: &AccountId) -> Option<VerificationKey> {
        if let Some(key) = self.keys.get(account) {
            return Some(*key);
        }
        let key = account.verification_key()?;
        if self.keys.len() >= limits::MAX_KEY_CACHE {
            // Simple and bounded: start over rather than track recency.
            self.keys.clear();
        }
        self.keys.insert(*account, key);
        Some(key)
    }

    /// Whether `account` is a usable key.
    pub(crate) fn usable(&mut self, account: &AccountId) -> bool {
        self.get(account).is_some()
    }
}

#[cfg(test)]
mod verify_signatures_tests {
    use super::*;
    use crate::keys::Keypair;

    #[test]
    fn each_signature_is_judged_alone_whatever_its_batch() {
        let keys = Keypair::from_seed([1; 32]);
        let good = keys.sign(b"one");
        let unusable = AccountId([0; 32]);
        let many: Vec<(AccountId, &[u8], Signature)> = (0..40)
            .map(|i| {
                if i == 7 {
                    (keys.account(), &b"two"[..], good)
                } else if i == 9 {
                    (unusable, &b"one"[..], good)
                } else {
                    (keys.account(), &b"one"[..], good)
                }
            })
            .collect();
        let valid = verify_signatures(&many);
        for (i, ok) in valid.iter().enumerate() {
            assert_eq!(*ok, i != 7 && i != 9, "signature {i}");
        }
        assert!(verify_signatures(&[]).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use proptest::prelude::*;
    use std::cell::Cell;

    /// `count` signatures by `keys` (in turn) over two-part messages; those at `forged`
    /// sign something else.
    fn signed(keys: &[Keypair], count: usize, forged: &[usize]) -> SigItems {
        let mut items = SigItems::default();
        for i in 0..count {
            let key = &keys[i % keys.len()];
            let (head, tail) = (b"message ".as_slice(), i.to_le_bytes());
            let signature = if forged.contains(&i) {
                key.sign(b"something else")
            } else {
                key.sign(&[head, tail.as_slice()].concat())
            };
            items.push(&key.account(), &[head, &tail], &signature);
        }
        items
    }

    fn invalid_positions(valid: &[bool]) -> Vec<usize> {
        (0..valid.len()).filter(|&i| !valid[i]).collect()
    }

    #[test]
    fn the_key_cache_keeps_the_keys_it_decompressed() {
        let mut cache = KeyCache::default();
        let (a, b) = (
            Keypair::from_seed([1; 32]).account(),
            Keypair::from_seed([2; 32]).account(),
        );
        assert!(cache.get(&a).is_some());
        assert!(cache.get(&b).is_some());
        assert!(cache.get(&a).is_some());
        assert_eq!(cache.keys.len(), 2);
        // A key that is not a usable point is refused and not kept (about half of all
        // 32-byte strings are not points; the first such pattern is found at once).
        let bad = (0u8..=255)
            .map(|i| AccountId::from_hex(&format!("{i:02x}").repeat(32)).expect("hex"))
            .find(|a| !a.is_usable())
            .expect("some pattern is not a usable key");
        assert!(cache.get(&bad).is_none());
        assert_eq!(cache.keys.len(), 2);
    }

    #[test]
    fn valid_signatures_pass_as_one_batch() {
        let keys = [Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32])];
        let items = signed(&keys, 40, &[]);
        assert_eq!(items.len(), 40);
        assert_eq!(items.first_invalid(), None);
        assert_eq!(items.validity_of(0..40), vec![true; 40]);
    }

    #[test]
    fn appended_signatures_keep_their_messages_and_keys() {
        let keys = [Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32])];
        let other = [Keypair::from_seed([3; 32]), Keypair::from_seed([1; 32])];
        let mut items = signed(&keys, 50, &[]);
        items.append(signed(&other, 70, &[33]));
        assert_eq!(items.len(), 120);
        assert_eq!(items.first_invalid(), Some(50 + 33));
    }

    #[test]
    fn appended_signatures_are_checked_against_their_own_messages() {
        // Messages of the second set differ from the first's at the same positions, so
        // a range not moved by the append would point at the wrong message.
        let key = Keypair::from_seed([5; 32]);
        let mut items = signed(std::slice::from_ref(&key), 3, &[]);
        let mut other = SigItems::default();
        for i in 0..3u8 {
            let message = [b"appended ".as_slice(), &[i]].concat();
            other.push(&key.account(), &[&message], &key.sign(&message));
        }
        items.append(other);
        assert_eq!(items.len(), 6);
        assert_eq!(items.validity(), vec![true; 6]);
    }

    #[test]
    fn many_signers_are_still_told_apart() {
        let keys: Vec<Keypair> = (0..KEY_SEARCH as u8 * 2 + 3)
            .map(|i| Keypair::from_seed([i + 10; 32]))
            .collect();
        let mut items = signed(&keys, 120, &[77]);
        items.append(signed(&keys, 80, &[5]));
        assert_eq!(invalid_positions(&items.validity()), vec![77, 125]);
    }

    #[test]
    fn validity_finds_every_invalid_signature() {
        let keys = [Keypair::from_seed([4; 32])];
        let mut items = signed(&keys, 100, &[7]);
        items.append(signed(&keys, 100, &[99]));
        assert_eq!(invalid_positions(&items.validity()), vec![7, 199]);
    }

    #[test]
    fn every_signature_invalid_is_found() {
        let keys = [Keypair::from_seed([5; 32]), Keypair::from_seed([6; 32])];
        let all: Vec<usize> = (0..300).collect();
        let items = signed(&keys, 300, &all);
        assert_eq!(invalid_positions(&items.validity()), all);
    }

    /// What settling `n` signatures, of which `bad` are invalid, cost: the verdicts,
    /// the signatures checked (a batch of `m` counts `m`) and the calls made.
    fn settle_counting(n: usize, bad: &[usize]) -> (Vec<bool>, usize, usize) {
        let checked = Cell::new(0);
        let calls = Cell::new(0);
        let mut valid = vec![true; n];
        settle(
            0..n,
            |r| {
                checked.set(checked.get() + r.len());
                calls.set(calls.get() + 1);
                !bad.iter().any(|b| r.contains(b))
            },
            |i| {
                checked.set(checked.get() + 1);
                calls.set(calls.get() + 1);
                !bad.contains(&i)
            },
            |i, ok| valid[i] = ok,
        );
        (valid, checked.get(), calls.get())
    }

    #[test]
    fn one_invalid_signature_costs_a_logarithmic_number_of_calls() {
        for n in [9, 64, 1000, 1024] {
            for b in [0, 1, n / 3, n / 2, n - 1] {
                let (valid, checked, calls) = settle_counting(n, &[b]);
                assert_eq!(invalid_positions(&valid), vec![b]);
                let levels = n.ilog2() as usize + 1;
                assert!(
                    calls <= 1 + 2 * levels + SETTLE_ALONE,
                    "{n} {b}: {calls} calls"
                );
                assert!(
                    checked <= 3 * n + SETTLE_ALONE,
                    "{n} {b}: {checked} checked"
                );
            }
        }
    }

    #[test]
    fn all_invalid_costs_a_few_passes_not_one_per_signature() {
        let n = 2000;
        let bad: Vec<usize> = (0..n).collect();
        let (valid, checked, _) = settle_counting(n, &bad);
        assert!(valid.iter().all(|ok| !ok));
        assert!(checked <= 3 * n, "{checked} signatures checked for {n}");
    }

    proptest! {
        /// For any layout of invalid signatures, every verdict is right and the work
        /// stays linear: at most four checks per signature.
        #[test]
        fn settling_is_exact_and_linear(
            n in 1usize..1500,
            bad in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
        ) {
            let mut bad: Vec<usize> = bad.iter().map(|i| i.index(n)).collect();
            bad.sort_unstable();
            bad.dedup();
            let (valid, checked, _) = settle_counting(n, &bad);
            prop_assert_eq!(invalid_positions(&valid), bad.clone());
            prop_assert!(checked <= 4 * n, "{} checked for {}", checked, n);
            if bad.len() <= 1 {
                prop_assert!(checked <= 3 * n + SETTLE_ALONE);
            }
        }
    }
}
