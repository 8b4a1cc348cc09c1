//! Signatures of transactions on their way to the mempool, verified in batches off the
//! ledger ([`preverify_txs`], [`Screen::preverify_txs`]): what a busy node does with
//! the transactions its clients and peers sent since its last batch.

use std::borrow::Borrow;
use std::collections::HashSet;

use serde::Serialize;

use super::{Preverified, Screen, SigItems, maybe_par_map};
use crate::codec;
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::AccountId;
use crate::limits;
use crate::tx::{Transaction, signed_parts, unsigned_part};

impl Screen {
    /// [`preverify_txs`] for this screen's network, remembering which authors' keys
    /// are usable from one batch to the next (at most [`limits::MAX_KEY_CACHE`]).
    pub fn preverify_txs<T, X>(&self, txs: &[X]) -> Preverified
    where
        T: Serialize,
        X: Borrow<Transaction<T>> + Sync,
    {
        let known = |a: &AccountId| {
            (self.usable.lock())
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(a)
        };
        let (verified, found) = verify_txs(&self.genesis, txs, known);
        let mut usable = (self.usable.lock()).unwrap_or_else(std::sync::PoisonError::into_inner);
        for account in found {
            usable.insert(account);
        }
        verified
    }
}

/// Verifies the signatures of transactions on their way to the mempool for the network
/// named by `genesis`, batched and (with the `parallel` feature) on every core: what a
/// node does with the transactions clients and peers sent since its last batch, off the
/// ledger. Hand the result to
/// [`Ledger::accept_preverified`](crate::Ledger::accept_preverified), then submit the
/// transactions: the ledger checks none of these signatures again, in the mempool or in
/// the block that includes them. A transaction above the size limit, by an unusable key
/// or with an invalid signature is simply absent from the result, and is refused with
/// its precise error when submitted.
pub fn preverify_txs<T, X>(genesis: &BlockHash, txs: &[X]) -> Preverified
where
    T: Serialize,
    X: Borrow<Transaction<T>> + Sync,
{
    verify_txs(genesis, txs, |_| false).0
}

/// [`preverify_txs`], trusting the keys `known` says are usable, and returning the
/// authors whose keys it found usable.
fn verify_txs<T, X>(
    genesis: &BlockHash,
    txs: &[X],
    known: impl Fn(&AccountId) -> bool,
) -> (Preverified, Vec<AccountId>)
where
    T: Serialize,
    X: Borrow<Transaction<T>> + Sync,
{
    // Below this many, a batch is checked on the calling thread: handing it to other
    // cores costs more than it saves, and a busy node's cores are taken already.
    const PARALLEL_MIN: usize = 2 * limits::SIGNATURE_BATCH;
    let parallel = txs.len() >= PARALLEL_MIN;
    // Decompress each distinct author's key once: a batch holds many transactions of
    // few authors.
    let mut usable: HashSet<AccountId> = HashSet::new();
    let mut unknown: HashSet<AccountId> = HashSet::new();
    for tx in txs {
        let author = tx.borrow().author;
        if !usable.contains(&author) && !unknown.contains(&author) {
            if known(&author) {
                usable.insert(author);
            } else {
                unknown.insert(author);
            }
        }
    }
    let unknown: Vec<AccountId> = unknown.into_iter().collect();
    let check = |a: &AccountId| a.is_usable().then_some(*a);
    let found: Vec<AccountId> = if parallel {
        maybe_par_map(&unknown, check)
    } else {
        unknown.iter().map(check).collect()
    }
    .into_iter()
    .flatten()
    .collect();
    usable.extend(found.iter().copied());
    let encode = |tx: &X| {
        let tx = tx.borrow();
        let encoded = codec::encode(tx);
        let id = TxId::from_hash(Hash::of(&encoded));
        (encoded.len() <= limits::MAX_TX_BYTES && usable.contains(&tx.author))
            .then_some((id, encoded))
    };
    let encoded: Vec<_> = if parallel {
        maybe_par_map(txs, encode)
    } else {
        txs.iter().map(encode).collect()
    };
    let bytes = encoded.iter().flatten().map(|(_, e)| e.len() + 32).sum();
    let mut items = SigItems::with_capacity(txs.len(), bytes);
    let mut ids = Vec::with_capacity(txs.len());
    for (tx, checked) in txs.iter().zip(&encoded) {
        let tx = tx.borrow();
        if let Some((id, encoded)) = checked {
            items.push(
                &tx.author,
                &signed_parts(genesis, unsigned_part(encoded)),
                &tx.signature,
            );
            ids.push(*id);
        }
    }
    let valid = if parallel {
        items.validity()
    } else {
        items.validity_serial()
    };
    let verified = Preverified {
        genesis: *genesis,
        txs: ids
            .into_iter()
            .zip(valid)
            .filter_map(|(id, ok)| ok.then_some(id))
            .collect(),
        producers: Vec::new(),
    };
    (verified, found)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::bounded::BoundedSet;
    use crate::keys::Keypair;

    #[test]
    fn preverified_transactions_are_only_those_validly_signed_for_the_network() {
        use crate::tx::TxBody;
        use crate::units::Timestamp;
        let genesis = BlockHash::from_hash(Hash::of(b"this network"));
        let other = BlockHash::from_hash(Hash::of(b"another network"));
        let (alice, bob) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let note = |key: &Keypair, nonce: u64, text: String| {
            Transaction::new_signed(&genesis, key, nonce, Timestamp(nonce), TxBody::App(text))
        };
        let mut txs: Vec<Transaction<String>> = (1..=40)
            .map(|n| note(if n % 2 == 0 { &alice } else { &bob }, n, format!("n{n}")))
            .collect();
        // A forged signature, an oversized transaction, an unusable author.
        txs[7].signature.0[10] ^= 1;
        txs.push(note(&alice, 41, "x".repeat(limits::MAX_TX_BYTES)));
        let mut outsider = note(&alice, 42, "outsider".into());
        outsider.author = (0u8..=255)
            .map(|i| AccountId::from_hex(&format!("{i:02x}").repeat(32)).expect("hex"))
            .find(|a| !a.is_usable())
            .expect("some pattern is not a usable key");
        txs.push(outsider);
        let verified = preverify_txs(&genesis, &txs);
        assert_eq!(verified.genesis(), genesis);
        assert_eq!(verified.len(), 39);
        for (i, tx) in txs.iter().enumerate() {
            assert_eq!(
                verified.has_tx(&tx.id()),
                i < 40 && i != 7,
                "transaction {i}"
            );
        }
        // Borrowed transactions are checked the same way.
        let borrowed: Vec<&Transaction<String>> = txs.iter().collect();
        assert_eq!(preverify_txs(&genesis, &borrowed).txs, verified.txs);
        // Signed for this network, none verifies for another: no replay across networks.
        assert!(preverify_txs(&other, &txs).is_empty());
        assert!(preverify_txs::<String, Transaction<String>>(&genesis, &[]).is_empty());
        // A screen remembers usable authors from one batch to the next and finds the
        // same signatures valid; an unusable author is never remembered.
        let screen = Screen {
            genesis,
            pow_bits: 0,
            producers: None,
            usable: Arc::new(Mutex::new(BoundedSet::new(8))),
        };
        assert_eq!(screen.preverify_txs(&txs).txs, verified.txs);
        let remembered = |a: &AccountId| screen.usable.lock().expect("unpoisoned").contains(a);
        assert!(remembered(&alice.account()) && remembered(&bob.account()));
        assert!(!remembered(&txs[41].author));
        assert_eq!(screen.preverify_txs(&txs).txs, verified.txs);
        // Large batches take the parallel path, with the same verdicts.
        let many: Vec<Transaction<String>> = (1..=2 * limits::SIGNATURE_BATCH as u64 + 1)
            .map(|n| note(&alice, n, String::new()))
            .collect();
        assert_eq!(screen.preverify_txs(&many).len(), many.len());
        assert_eq!(preverify_txs(&genesis, &many).len(), many.len());
    }
}
