//! Transactions waiting for a block.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::hash::TxId;
use crate::keys::AccountId;
use crate::policy::Policy;
use crate::state::ChainState;
use crate::tx::Transaction;

/// A pending transaction with the facts the ledger computed about it.
#[derive(Clone, Debug)]
pub struct PendingTx<T> {
    /// Its id.
    pub id: TxId,
    /// Encoded size in bytes.
    pub size: usize,
    /// The transaction.
    pub tx: Transaction<T>,
}

/// The bounded set of valid transactions not yet in a block, in arrival order.
///
/// Every transaction in it is valid on top of the tip and of the transactions before
/// it; the ledger re-checks them whenever the tip changes.
pub(crate) struct Mempool<P: Policy> {
    pub(crate) txs: VecDeque<PendingTx<P::Payload>>,
    pub(crate) ids: HashSet<TxId>,
    /// Highest pending nonce per author.
    pub(crate) nonces: HashMap<AccountId, u64>,
    /// The confirmed state with every pending transaction applied, kept only while the
    /// pool is large (see `limits::PENDING_SNAPSHOT_MIN`); discarded when the tip
    /// changes.
    pub(crate) pending: Option<ChainState<P::State>>,
}

impl<P: Policy> Default for Mempool<P> {
    fn default() -> Self {
        Mempool {
            txs: VecDeque::new(),
            ids: HashSet::new(),
            nonces: HashMap::new(),
            pending: None,
        }
    }
}

impl<P: Policy> Mempool<P> {
    pub(crate) fn push(&mut self, entry: PendingTx<P::Payload>) {
        let nonce = self.nonces.entry(entry.tx.author).or_insert(0);
        *nonce = (*nonce).max(entry.tx.nonce);
        self.ids.insert(entry.id);
        self.txs.push_back(entry);
    }

    /// Empties the pool, returning its transactions in order.
    pub(crate) fn take_all(&mut self) -> Vec<PendingTx<P::Payload>> {
        self.ids.clear();
        self.nonces.clear();
        self.pending = None;
        self.txs.drain(..).collect()
    }
}
