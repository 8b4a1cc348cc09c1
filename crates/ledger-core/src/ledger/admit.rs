//! Mempool admission: checking a transaction against the tip and the pending ones,
//! and re-checking the pool after the best chain changes.

use std::collections::HashSet;

use crate::codec;
use crate::error::TxError;
use crate::hash::TxId;
use crate::keys::verify_with;
use crate::limits;
use crate::mempool::PendingTx;
use crate::policy::Policy;
use crate::state::{Rules, Slot, Undo};
use crate::store::BodySource;
use crate::tx::{Transaction, signing_message, unsigned_part};
use crate::units::Timestamp;

use super::Ledger;

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
    /// Validates a transaction against the tip and the pending ones, and adds it to
    /// the mempool.
    pub fn submit_transaction(
        &mut self,
        tx: Transaction<P::Payload>,
        now: Timestamp,
    ) -> Result<TxId, TxError<P::Error>> {
        let encoded = codec::encode(&tx);
        let id = TxId::from_hash(crate::Hash::of(&encoded));
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
            genesis_hash: self.genesis_hash,
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

    pub(super) fn mempool_slot(&self, now: Timestamp) -> Slot {
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
    pub(super) fn revalidate_pending(&mut self, now: Timestamp) -> Vec<TxError<P::Error>> {
        let slot = self.mempool_slot(now);
        let txs = self.mempool.take_all();
        let rules = Rules {
            policy: &self.policy,
            genesis: &self.genesis,
            genesis_hash: self.genesis_hash,
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
    pub(super) fn refresh_mempool(
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
}
