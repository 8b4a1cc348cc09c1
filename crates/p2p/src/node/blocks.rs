//! The ledger task's block work: submitting transactions and blocks, applying sync
//! batches, mining, and the hand-off to the write queue (`crate::persist`) after which
//! what depends on durability (reports, announcements, replies) runs.
//!
//! A second `impl NodeTask` block beside the one in `node.rs`, which keeps the loop,
//! commands, sessions, peers and sync requests.

use std::collections::HashSet;
use std::sync::Arc;

use ledger_core::{
    Block, BlockError, BlockHash, BlockOutcome, BlockStatus, Keypair, MineStatus, Policy,
    PreparedBlock, TipChange, Transaction, TxId,
};
use tokio::sync::oneshot;
use tracing::{error, warn};

use super::{MineError, Mined, MinedBlock, MiningJob, NodeError, NodeEvent, NodeTask, tip_info};
use crate::gossip;
use crate::limits;
use crate::persist::{WriteAction, Written};
use crate::store::BlockStore;

/// What waits for the blocks accepted before it to be durable (see `crate::persist`).
pub(super) enum AfterStore<P: Policy> {
    /// Report what a submission did, and announce `announce` to every peer but
    /// `from`'s.
    Report {
        accepted: Vec<BlockHash>,
        tip_changes: Vec<TipChange<P::Error>>,
        invalid: Vec<(BlockHash, BlockError<P::Error>)>,
        from: Option<u64>,
        announce: Vec<BlockHash>,
    },
    /// Answer a handle's `SubmitBlock`.
    Submitted {
        reply: oneshot::Sender<Result<BlockStatus, BlockError<P::Error>>>,
        result: Result<BlockStatus, BlockError<P::Error>>,
    },
    /// Answer a mining job.
    Mined {
        reply: oneshot::Sender<Result<Mined, MineError<P::Error>>>,
        result: Result<Mined, MineError<P::Error>>,
    },
}

impl<P: Policy, S: BlockStore<P::Payload>> NodeTask<P, S> {
    /// Submits a block to the ledger and reports how long the ledger took
    /// ([`NodeEvent::BlockValidated`]).
    fn submit_timed(
        &mut self,
        block: impl Into<ledger_core::BlockInput<P::Payload>>,
        now: ledger_core::Timestamp,
    ) -> BlockOutcome<P::Error> {
        let started = std::time::Instant::now();
        let outcome = self.ledger.submit(block, now);
        self.emit(NodeEvent::BlockValidated {
            hash: outcome.hash,
            accepted: outcome.accepted.len(),
            elapsed: started.elapsed(),
        });
        outcome
    }

    /// Submits a block from a peer (`from`) or a handle; announces what it adds.
    pub(super) fn handle_block(
        &mut self,
        block: Block<P::Payload>,
        from: Option<u64>,
    ) -> Result<BlockStatus, BlockError<P::Error>> {
        let now = self.now();
        let hash = block.hash();
        let outcome = self.submit_timed(block, now);
        let status = outcome.status;
        let own_error = outcome
            .invalid
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, e)| e.clone());
        let announce = outcome.accepted.clone();
        self.report_after_store(outcome, from, announce);
        match status {
            BlockStatus::Invalid => {
                Err(own_error.unwrap_or(BlockError::KnownInvalid { block: hash }))
            }
            BlockStatus::Orphan { .. } => {
                if let Some(id) = from {
                    self.sync.request_sync(id);
                    self.drive_sync();
                }
                Ok(status)
            }
            BlockStatus::Accepted | BlockStatus::Duplicate => Ok(status),
        }
    }

    /// Queues the blocks a submission accepted for writing, with its report (and the
    /// announcement of `announce`) to run once they are durable. A read fault of the
    /// ledger stops the node.
    pub(super) fn report_after_store(
        &mut self,
        outcome: BlockOutcome<P::Error>,
        from: Option<u64>,
        announce: Vec<BlockHash>,
    ) {
        if let Some(fault) = outcome.fault {
            error!(error = %fault, "the store failed a read; stopping");
            self.failure.get_or_insert(NodeError::Unreadable(fault));
        }
        let accepted = outcome.accepted;
        let then = AfterStore::Report {
            accepted: accepted.clone(),
            tip_changes: outcome.tip_changes,
            invalid: outcome.invalid,
            from,
            announce,
        };
        self.after_store(&accepted, then);
    }

    /// Hands the accepted blocks the ledger holds unstored to the write queue, with
    /// `then` to run once they and every block before them are durable.
    pub(super) fn after_store(&mut self, accepted: &[BlockHash], then: AfterStore<P>) {
        let blocks: Vec<_> = accepted
            .iter()
            .filter_map(|hash| {
                let block = self.ledger.unstored_block(hash)?;
                Some((*hash, Arc::clone(block)))
            })
            .collect();
        self.writes.handle_accepted(blocks, then);
        self.drive_writes();
    }

    /// The writer thread finished a write.
    pub(super) fn on_written(&mut self, written: Written) {
        if let Err(failure) = written {
            // After a failed commit nothing since the last good one can be trusted:
            // stop rather than report, announce or serve the blocks.
            error!(error = %failure, "the store failed to write accepted blocks; stopping");
            self.failure.get_or_insert(NodeError::Store(failure));
            return;
        }
        self.writes.handle_written();
        self.drive_writes();
    }

    /// Carries out the write queue's actions, in order (see [`WriteQueue`]).
    pub(super) fn drive_writes(&mut self) {
        while let Some(action) = self.writes.poll_action() {
            match action {
                WriteAction::Write(blocks) => {
                    if let Err(failure) = self.writer.write(blocks) {
                        self.failure.get_or_insert(NodeError::Store(failure));
                    }
                }
                WriteAction::Stored(hashes) => self.ledger.mark_stored(hashes),
                WriteAction::Run(then) => self.run_after_store(then),
            }
        }
    }

    pub(super) fn run_after_store(&mut self, then: AfterStore<P>) {
        match then {
            AfterStore::Report {
                accepted,
                tip_changes,
                invalid,
                from,
                announce,
            } => {
                self.after_blocks(&accepted, tip_changes, &invalid, from);
                self.announce(&announce, from);
            }
            AfterStore::Submitted { reply, result } => {
                let _ = reply.send(result);
            }
            AfterStore::Mined { reply, result } => {
                let _ = reply.send(result);
            }
        }
    }

    /// Events, mining cancellation, the `Hello` tip and re-relay of returned
    /// transactions after blocks entered the tree and the store.
    pub(super) fn after_blocks(
        &mut self,
        accepted: &[BlockHash],
        tip_changes: Vec<TipChange<P::Error>>,
        invalid: &[(BlockHash, BlockError<P::Error>)],
        from: Option<u64>,
    ) {
        let addr = from.and_then(|id| self.peers.get(&id)).map(|p| p.info.addr);
        for hash in accepted {
            self.seen_blocks.insert(*hash);
            let height = self.ledger.height_of(hash).unwrap_or_default();
            self.emit(NodeEvent::BlockAccepted {
                hash: *hash,
                height,
                from: addr,
            });
        }
        self.note_blocks(accepted);
        for (_, error) in invalid {
            self.emit(NodeEvent::BlockRejected {
                error: error.clone(),
                from: addr,
            });
        }
        if tip_changes.is_empty() {
            return;
        }
        let tip = tip_info(&self.ledger);
        self.hello.send_modify(|hello| hello.tip = tip);
        if let Some(job) = self.mining.take_if(|job| job.tip != tip.hash) {
            job.token.cancel();
            let _ = job.reply.send(Err(MineError::TipChanged));
        }
        let mut returned = Vec::new();
        for change in tip_changes {
            returned.extend(change.returned.iter().copied());
            self.emit(NodeEvent::TipChanged(change));
        }
        // Transactions of abandoned blocks are back in the mempool: make sure peers
        // that never saw them (the other side of a partition) get them.
        let returned: HashSet<TxId> = returned.into_iter().collect();
        if !returned.is_empty() {
            let txs: Vec<(Transaction<P::Payload>, Option<u64>)> = self
                .ledger
                .mempool()
                .filter(|p| returned.contains(&p.id))
                .map(|p| (p.tx.clone(), None))
                .collect();
            self.relay_txs(&txs);
        }
    }

    /// Announces the given blocks (stored already) to every peer but `except`, compact
    /// when they are large (see [`crate::compact`]).
    pub(super) fn announce(&mut self, hashes: &[BlockHash], except: Option<u64>) {
        for hash in hashes {
            match self.ledger.block(hash) {
                Ok(Some(block)) => {
                    let frame = self.announcement(&block);
                    self.broadcast(&frame, except);
                }
                Ok(None) => warn!(%hash, "accepted block missing from the store"),
                Err(e) => warn!(%hash, error = %e, "cannot read accepted block"),
            }
        }
    }

    /// Submits a verified sync batch parents first; what it added is written as one
    /// durable commit (with whatever else waits) and reported and announced after
    /// that: nothing of it is announced before it is durable. Stops at the first
    /// invalid block and punishes the peer for it. Returns whether the batch, all
    /// valid, left orphans: it does not connect to our chain, and the peer is to be
    /// asked again from our locator.
    pub(super) fn apply_batch(&mut self, id: u64, blocks: Vec<PreparedBlock<P::Payload>>) -> bool {
        let now = self.now();
        let old_tip = self.ledger.tip().hash;
        let mut fault = None;
        let mut orphaned = false;
        for block in blocks {
            let hash = block.hash();
            self.seen_blocks.insert(hash);
            let outcome = self.submit_timed(block, now);
            let status = outcome.status;
            if status == BlockStatus::Invalid {
                let own = outcome.invalid.iter().find(|(h, _)| *h == hash);
                fault =
                    Some(own.map_or(BlockError::KnownInvalid { block: hash }, |(_, e)| e.clone()));
            }
            orphaned |= matches!(status, BlockStatus::Orphan { .. });
            // Peers hear of the new tip only, below.
            self.report_after_store(outcome, Some(id), Vec::new());
            if fault.is_some() {
                break;
            }
        }
        if let Some(error) = fault {
            if let Some(offence) = gossip::block_offence(&error) {
                self.punish(id, offence);
            }
            return false;
        }
        // Peers other than the source hear of the new tip only: one that lacks its
        // ancestors fetches them by locator.
        let tip = self.ledger.tip().hash;
        if tip != old_tip {
            let announce = AfterStore::Report {
                accepted: Vec::new(),
                tip_changes: Vec::new(),
                invalid: Vec::new(),
                from: Some(id),
                announce: vec![tip],
            };
            self.after_store(&[], announce);
        }
        orphaned
    }

    /// The timer that wakes [`NodeTask::on_pace`]: a tenth of the block interval (at
    /// least a millisecond), if this node produces at a pace.
    pub(super) fn pace_timer(&self) -> Option<tokio::time::Interval> {
        let config = &self.shared.config;
        let interval = config
            .block_interval
            .filter(|_| config.producer.is_some())?;
        let period = (interval / 10).max(std::time::Duration::from_millis(1));
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Some(timer)
    }

    /// A pace tick: produces a block if one of this node's is due (see `crate::pace`)
    /// and it may produce on the tip. Nobody waits for the block; it is announced
    /// like any other once stored.
    pub(super) fn on_pace(&mut self) {
        let config = &self.shared.config;
        let (Some(keys), Some(interval)) = (config.producer.clone(), config.block_interval) else {
            return;
        };
        let tip = self.ledger.tip();
        let me = keys.account();
        let now = self.now();
        let pending = self.ledger.mempool().len();
        // Since when transactions have waited here without a break.
        let since = match (pending, self.pending_since) {
            (0, _) => None,
            (_, None) => Some(now),
            (_, Some(since)) => Some(since),
        };
        self.pending_since = since;
        let input = crate::pace::PaceInput {
            producers: self.ledger.genesis().producers.as_deref(),
            me,
            tip_height: tip.height,
            tip_time: tip.timestamp,
            pending,
            pending_since: since.unwrap_or(now),
            now,
            interval,
        };
        if self.mining.is_some()
            || !crate::pace::due(&input)
            || self.ledger.may_produce(&me).is_err()
        {
            return;
        }
        // The answer goes nowhere: a paced block is reported by its events.
        let (reply, _) = oneshot::channel();
        self.start_mining(keys, reply);
    }

    pub(super) fn start_mining(
        &mut self,
        keys: Keypair,
        reply: oneshot::Sender<Result<Mined, MineError<P::Error>>>,
    ) {
        if self.mining.is_some() {
            let _ = reply.send(Err(MineError::Busy));
            return;
        }
        // An honest producer keeps to the block it last built on (see
        // `Ledger::may_produce`), so it never counts for two conflicting branches.
        if let Err(refusal) = self.ledger.may_produce(&keys.account()) {
            let _ = reply.send(Err(MineError::NotAllowed(refusal)));
            return;
        }
        let now = self.now();
        let mut template = self.ledger.block_template(keys.account(), now);
        let token = self.shared.token.child_token();
        self.next_job += 1;
        let job = self.next_job;
        self.mining = Some(MiningJob {
            id: job,
            tip: self.ledger.tip().hash,
            token: token.clone(),
            reply,
        });
        let mined_tx = self.mined_tx.clone();
        self.shared.tracker.spawn_blocking(move || {
            loop {
                if token.is_cancelled() {
                    return;
                }
                if let MineStatus::Found(_) = template.mine(limits::MINE_ROUND) {
                    break;
                }
            }
            if let Some(block) = template.seal(&keys) {
                // The node may have stopped meanwhile; the block is then not needed.
                let _ = mined_tx.blocking_send(MinedBlock { job, block });
            }
        });
    }

    pub(super) fn on_mined(&mut self, mined: MinedBlock<P::Payload>) {
        let Some(job) = self.mining.take_if(|j| j.id == mined.job) else {
            return;
        };
        let hash = mined.block.hash();
        let height = mined.block.header.height;
        let result = match self.handle_block(mined.block, None) {
            Ok(BlockStatus::Accepted) => Ok(Mined { hash, height }),
            Ok(_) => Err(MineError::TipChanged),
            Err(error) => Err(MineError::Rejected(error)),
        };
        // Answered once the block is durable.
        let reply = job.reply;
        self.after_store(&[], AfterStore::Mined { reply, result });
    }
}
