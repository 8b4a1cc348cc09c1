//! [`PreparedBlock`]: what a block's bytes alone determine, computed off the ledger.
//!
//! Validating a block starts with work that needs no ledger at all: encoding each
//! transaction to learn its id and size, finding repeated transactions, computing the
//! Merkle root and the block's encoded size. [`prepare_blocks`] does that for many
//! blocks at once, on every core with the `parallel` feature, so a bulk importer can
//! run it beside the ledger (on a reader thread, say) and hand the results to
//! [`Ledger::submit`](crate::Ledger::submit) (as [`BlockInput::Prepared`](crate::BlockInput::Prepared) or
//! [`BlockInput::StoredPrepared`](crate::BlockInput::StoredPrepared)), which then
//! skip it. The fields are private and only this module fills them, so a prepared
//! block always describes the block it holds.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use crate::block::{Block, merkle_entries};
use crate::codec;
use crate::error::TxError;
use crate::hash::{BlockHash, Hash, TxId};
use crate::limits;
use crate::merkle::merkle_root;
use crate::tx::Transaction;

/// The first transaction of a block that is malformed on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Its encoding is above [`limits::MAX_TX_BYTES`].
    TooLarge(usize),
    /// An earlier transaction of the block has the same id.
    Duplicate,
}

impl Malformed {
    pub(crate) fn error<E>(self, tx: TxId) -> TxError<E> {
        match self {
            Malformed::TooLarge(size) => TxError::TooLarge {
                tx,
                size,
                max: limits::MAX_TX_BYTES,
            },
            Malformed::Duplicate => TxError::Duplicate { tx },
        }
    }
}

/// The facts about a block that need nothing but the block.
#[derive(Clone, Debug)]
pub(crate) struct Digest {
    /// Encoded size of the whole block.
    pub(crate) size: usize,
    /// Each transaction's id, in order.
    pub(crate) ids: Arc<[TxId]>,
    /// The Merkle root of the body (transaction ids, then rewards).
    pub(crate) merkle_root: Hash,
    /// The first malformed transaction, by index.
    pub(crate) malformed: Option<(usize, Malformed)>,
    /// Set only by the bulk import's own preparation: every signature of the block
    /// (producer's and transactions') was verified for the network with this genesis
    /// hash, from the very encodings that gave `ids`.
    pub(crate) signed_for: Option<BlockHash>,
}

impl Digest {
    /// Computes the digest of `block`, calling `each` with every transaction's index,
    /// the transaction, its encoding and its id (so a caller needing the encoding,
    /// for a signature, does not encode again).
    pub(crate) fn of<T: Serialize>(
        block: &Block<T>,
        mut each: impl FnMut(usize, &Transaction<T>, &[u8], TxId),
    ) -> Digest {
        let mut ids = Vec::with_capacity(block.transactions.len());
        let mut seen = HashSet::with_capacity(block.transactions.len());
        let mut malformed = None;
        // One encoding buffer for the whole block.
        let mut encoded = Vec::new();
        let mut body_size = 0;
        for (index, tx) in block.transactions.iter().enumerate() {
            encoded.clear();
            codec::encode_into(tx, &mut encoded);
            body_size += encoded.len();
            let id = TxId::from_hash(Hash::of(&encoded));
            if encoded.len() > limits::MAX_TX_BYTES {
                malformed.get_or_insert((index, Malformed::TooLarge(encoded.len())));
            }
            if !seen.insert(id) {
                malformed.get_or_insert((index, Malformed::Duplicate));
            }
            each(index, tx, &encoded, id);
            ids.push(id);
        }
        let merkle_root = merkle_root(&merkle_entries(ids.iter().copied(), &block.rewards));
        // A block encodes as its fields in order, its transactions as their number and
        // then each one; their sizes are known now, so only the rest is sized again.
        let size = codec::encoded_len(&block.header)
            + codec::encoded_len(&block.signature)
            + codec::encoded_len(&(block.transactions.len() as u64))
            + body_size
            + codec::encoded_len(&block.rewards);
        Digest {
            size,
            ids: ids.into(),
            merkle_root,
            malformed,
            signed_for: None,
        }
    }
}

/// A block with what its bytes alone determine already computed: its hash, encoded
/// size, transaction ids and Merkle root. Made by [`PreparedBlock::new`] or
/// [`prepare_blocks`]; submitted with
/// [`Ledger::submit`](crate::Ledger::submit).
///
/// Preparing checks nothing by itself: the ledger still compares the computed Merkle
/// root with the header, the size with the limits, and so on.
#[derive(Clone, Debug)]
pub struct PreparedBlock<T> {
    pub(crate) block: Arc<Block<T>>,
    pub(crate) hash: BlockHash,
    pub(crate) digest: Digest,
}

impl<T: Serialize> PreparedBlock<T> {
    /// Prepares one block on this thread.
    pub fn new(block: Arc<Block<T>>) -> PreparedBlock<T> {
        let digest = Digest::of(&block, |_, _, _, _| {});
        PreparedBlock {
            hash: block.hash(),
            block,
            digest,
        }
    }
}

impl<T> PreparedBlock<T> {
    /// The block.
    pub fn block(&self) -> &Arc<Block<T>> {
        &self.block
    }

    /// The block's hash.
    pub fn hash(&self) -> BlockHash {
        self.hash
    }

    /// Its transactions' ids, in order.
    pub fn tx_ids(&self) -> &[TxId] {
        &self.digest.ids
    }

    /// Its encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        self.digest.size
    }
}

/// Prepares many blocks, on every core with the `parallel` feature. Pure: call it on
/// any thread, ahead of the ledger.
pub fn prepare_blocks<T: Serialize + Send + Sync>(
    blocks: &[Arc<Block<T>>],
) -> Vec<PreparedBlock<T>> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        blocks
            .par_iter()
            .map(|b| PreparedBlock::new(Arc::clone(b)))
            .collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        blocks
            .iter()
            .map(|b| PreparedBlock::new(Arc::clone(b)))
            .collect()
    }
}
