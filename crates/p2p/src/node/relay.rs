//! The ledger task's compact block relay (see [`crate::compact`]): announcing blocks
//! by their transaction ids, rebuilding announced blocks from the transactions at
//! hand, and serving the transactions a peer lacks.
//!
//! A fourth `impl NodeTask` block beside `node.rs`, `node/blocks.rs` and
//! `node/admit.rs`.

use std::collections::HashMap;

use bytes::Bytes;
use ledger_core::{Block, BlockHash, Policy, Transaction, TxId};
use tracing::debug;

use super::NodeTask;
use crate::compact::{CompactBlock, Rebuilt};
use crate::gossip::{self, Offence};
use crate::limits;
use crate::protocol::Message;
use crate::store::BlockStore;

impl<P: Policy, S: BlockStore<P::Payload>> NodeTask<P, S> {
    /// A block from peer `id`, whole or rebuilt: validated, then relayed if it adds to
    /// the chain; an invalid one gets the peer punished.
    pub(super) fn on_block(&mut self, id: u64, block: Block<P::Payload>) {
        if let Err(error) = self.handle_block(block, Some(id))
            && let Some(offence) = gossip::block_offence(&error)
        {
            self.punish(id, offence);
        }
    }

    /// The frame announcing `block` to peers: compact from [`limits::COMPACT_MIN_TXS`]
    /// transactions (unless the node is configured otherwise), whole below.
    pub(super) fn announcement(&self, block: &Block<P::Payload>) -> Bytes {
        let compact = self.shared.config.compact_blocks
            && block.transactions.len() >= limits::COMPACT_MIN_TXS;
        let message = if compact {
            Message::CompactBlock(CompactBlock::of(block))
        } else {
            Message::Block(block.clone())
        };
        Bytes::from(message.encode())
    }

    /// A compact announcement: rebuilt from the mempool and the admission queue, and
    /// validated if complete; otherwise the announcer is asked for what is missing.
    pub(super) fn on_compact(&mut self, id: u64, compact: CompactBlock) {
        let hash = compact.hash();
        if !self.seen_blocks.record(hash) || self.ledger.knows_block(&hash) {
            return;
        }
        let pending: HashMap<TxId, &Transaction<P::Payload>> =
            self.ledger.mempool().map(|p| (p.id, &p.tx)).collect();
        let wanted = |txid: &TxId| !pending.contains_key(txid);
        let queued: HashMap<TxId, &Transaction<P::Payload>> = if compact.txids.iter().any(wanted) {
            self.admission.waiting().map(|tx| (tx.id(), tx)).collect()
        } else {
            HashMap::new()
        };
        let at_hand = |txid: &TxId| {
            pending
                .get(txid)
                .or_else(|| queued.get(txid))
                .map(|tx| (*tx).clone())
        };
        match self.reassembly.start(compact, id, at_hand) {
            Rebuilt::Complete(block) => self.on_block(id, *block),
            Rebuilt::Missing(indexes) => {
                debug!(%hash, missing = indexes.len(), "asking for a compact block's transactions");
                self.send(
                    id,
                    &Message::GetBlockTxs {
                        block: hash,
                        indexes,
                    },
                );
            }
        }
    }

    /// A peer asks for transactions of a block this node announced: answered from the
    /// block, if this node has it and every position is in it; otherwise ignored.
    pub(super) fn on_get_block_txs(&mut self, id: u64, block: BlockHash, indexes: Vec<u32>) {
        let Ok(Some(found)) = self.ledger.block(&block) else {
            return;
        };
        let txs: Option<Vec<Transaction<P::Payload>>> = indexes
            .iter()
            .map(|i| found.transactions.get(*i as usize).cloned())
            .collect();
        if let Some(txs) = txs {
            self.send(id, &Message::BlockTxs { block, txs });
        }
    }

    /// The transactions a compact block lacked: the block, once complete, is validated.
    pub(super) fn on_block_txs(
        &mut self,
        id: u64,
        block: BlockHash,
        txs: Vec<Transaction<P::Payload>>,
    ) {
        match self.reassembly.fill(block, id, txs) {
            Ok(Some(block)) => self.on_block(id, block),
            Ok(None) => {}
            Err(error) => self.punish(id, Offence::Compact(error)),
        }
    }
}
