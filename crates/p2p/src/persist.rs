//! Writing accepted blocks off the ledger task, durable before anyone hears of them.
//!
//! The ledger decides and writes nothing: a block it accepts waits in its memory
//! ([`Ledger::unstored_block`](ledger_core::Ledger::unstored_block)). The ledger task
//! hands such blocks to a [`WriteQueue`], a state machine that returns actions, and a
//! writer thread carries out its writes, one at a time, each one durable commit:
//!
//! - While a write is under way, newly accepted blocks gather into the next one, so a
//!   busy node commits many blocks per fsync (group commit) and at most one write is
//!   ever outstanding.
//! - What the node does after accepting blocks (report them, announce them, answer a
//!   handle) waits in the queue as a continuation, and runs only once every block
//!   accepted up to then is durable, in the order it was queued: nothing is reported
//!   or announced before it would survive a crash, as when the ledger task wrote.
//! - A slow disk thus delays those reports, never a ping, a handshake, a transaction
//!   or a sync request.
//!
//! A write that fails stops the node: after a failed fsync nothing written since the
//! last good commit can be trusted, so the node does not retry. Nothing it had not
//! made durable was reported; on restart it reloads what is durable and fetches the
//! rest from its peers.

use std::collections::VecDeque;
use std::sync::Arc;

use ledger_core::{Block, BlockHash};
use tokio::sync::mpsc;
use tracing::warn;

use crate::store::{BlockWriter, StoreError};

/// One group of blocks to make durable together, and what waits for it.
struct Group<T, C> {
    blocks: Vec<Arc<Block<T>>>,
    hashes: Vec<BlockHash>,
    then: Vec<C>,
}

impl<T, C> Default for Group<T, C> {
    fn default() -> Self {
        Group {
            blocks: Vec::new(),
            hashes: Vec::new(),
            then: Vec::new(),
        }
    }
}

/// What the [`WriteQueue`] asks its owner to do, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteAction<T, C> {
    /// Write these blocks in one durable commit, then call
    /// [`WriteQueue::handle_written`].
    Write(Vec<Arc<Block<T>>>),
    /// These blocks are durable: the ledger may drop its copies.
    Stored(Vec<BlockHash>),
    /// Everything queued before this continuation is durable: run it.
    Run(C),
}

/// Orders block writes and what waits for them; see the [module docs](self).
///
/// Contract: feed it with [`WriteQueue::handle_accepted`] and
/// [`WriteQueue::handle_written`], then drain [`WriteQueue::poll_action`] until it
/// returns `None`. A [`WriteAction::Write`] is issued only when no other write is
/// outstanding.
pub(crate) struct WriteQueue<T, C> {
    /// The group being written, if any.
    writing: Option<Group<T, C>>,
    /// The group gathering behind it.
    next: Group<T, C>,
    actions: VecDeque<WriteAction<T, C>>,
}

impl<T, C> Default for WriteQueue<T, C> {
    fn default() -> Self {
        WriteQueue {
            writing: None,
            next: Group::default(),
            actions: VecDeque::new(),
        }
    }
}

impl<T, C> WriteQueue<T, C> {
    /// Blocks to store (possibly none) and what to do once they, and every block
    /// queued before them, are durable.
    pub(crate) fn handle_accepted(
        &mut self,
        blocks: impl IntoIterator<Item = (BlockHash, Arc<Block<T>>)>,
        then: C,
    ) {
        for (hash, block) in blocks {
            self.next.hashes.push(hash);
            self.next.blocks.push(block);
        }
        self.next.then.push(then);
        self.advance();
    }

    /// The outstanding write is durable.
    pub(crate) fn handle_written(&mut self) {
        if let Some(done) = self.writing.take() {
            self.actions.push_back(WriteAction::Stored(done.hashes));
            self.actions
                .extend(done.then.into_iter().map(WriteAction::Run));
        }
        self.advance();
    }

    /// The next action, if any.
    pub(crate) fn poll_action(&mut self) -> Option<WriteAction<T, C>> {
        self.actions.pop_front()
    }

    /// Whether a write is outstanding or blocks wait to be written.
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.writing.is_some() || !self.next.blocks.is_empty()
    }

    /// Blocks not yet handed out for writing, for a final write at shutdown.
    pub(crate) fn take_unwritten(&mut self) -> Vec<Arc<Block<T>>> {
        std::mem::take(&mut self.next.blocks)
    }

    /// With no write outstanding: continuations that wait for nothing run now, and
    /// gathered blocks go out as one write.
    fn advance(&mut self) {
        if self.writing.is_some() {
            return;
        }
        let next = std::mem::take(&mut self.next);
        if next.blocks.is_empty() {
            self.actions
                .extend(next.then.into_iter().map(WriteAction::Run));
        } else {
            self.actions
                .push_back(WriteAction::Write(next.blocks.clone()));
            self.writing = Some(next);
        }
    }
}

/// A write's result, back on the ledger task.
pub(crate) type Written = Result<(), StoreError>;

/// The writer thread: makes each group of blocks durable through a [`BlockWriter`].
///
/// Dropping it closes its queue and waits for the write under way, so that the store
/// is never left with a writer when the node is gone and can be opened again at once.
pub(crate) struct Writer<T> {
    jobs: Option<std::sync::mpsc::SyncSender<Vec<Arc<Block<T>>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + Sync + 'static> Writer<T> {
    /// Starts the thread; each result goes to `done`. The [`WriteQueue`] keeps at most
    /// one write outstanding, so both queues hold one entry.
    pub(crate) fn start(
        mut writer: Box<dyn BlockWriter<T>>,
        done: mpsc::Sender<Written>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Vec<Arc<Block<T>>>>(1);
        let thread = std::thread::Builder::new()
            .name("p2p-writer".into())
            .spawn(move || {
                // Every write handed over is carried out, also once nobody listens
                // for the result (a node stopping writes its last blocks so).
                while let Ok(blocks) = queue.recv() {
                    let result = writer.write(&blocks);
                    let _ = done.blocking_send(result);
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands a write to the thread. Fails only if the thread is gone.
    pub(crate) fn write(&self, blocks: Vec<Arc<Block<T>>>) -> Result<(), StoreError> {
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        // Never blocks: the queue holds one write, and only one is ever outstanding.
        jobs.send(blocks).map_err(|_| StoreError::Closed)
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the block writer thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{BlockHeader, Hash, Height, Timestamp};

    fn block(n: u8) -> (BlockHash, Arc<Block<()>>) {
        let header = BlockHeader {
            height: Height(u64::from(n)),
            prev: BlockHash::default(),
            merkle_root: Hash::ZERO,
            timestamp: Timestamp(u64::from(n)),
            producer: ledger_core::Keypair::from_seed([n; 32]).account(),
            nonce: 0,
        };
        let block = Block {
            header,
            signature: ledger_core::Signature::default(),
            transactions: Vec::new(),
            rewards: Vec::new(),
        };
        (block.hash(), Arc::new(block))
    }

    fn drain(queue: &mut WriteQueue<(), &'static str>) -> Vec<String> {
        std::iter::from_fn(|| queue.poll_action())
            .map(|action| match action {
                WriteAction::Write(blocks) => format!("write {}", blocks.len()),
                WriteAction::Stored(hashes) => format!("stored {}", hashes.len()),
                WriteAction::Run(c) => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_continuation_runs_only_after_every_block_queued_before_it_is_durable() {
        let mut queue = WriteQueue::default();
        queue.handle_accepted([block(1)], "report 1");
        assert_eq!(drain(&mut queue), ["write 1"]);
        // Blocks accepted while the first write is under way gather behind it; a
        // continuation with nothing to write still waits for what came before.
        queue.handle_accepted([block(2)], "report 2");
        queue.handle_accepted([], "reply to a refused block");
        queue.handle_accepted([block(3), block(4)], "report 3 and 4");
        assert!(drain(&mut queue).is_empty());
        assert!(queue.is_busy());
        queue.handle_written();
        assert_eq!(
            drain(&mut queue),
            ["stored 1", "report 1", "write 3"],
            "the three blocks go out as one write"
        );
        queue.handle_written();
        assert_eq!(
            drain(&mut queue),
            [
                "stored 3",
                "report 2",
                "reply to a refused block",
                "report 3 and 4"
            ]
        );
        assert!(!queue.is_busy());
    }

    #[test]
    fn with_nothing_outstanding_a_continuation_without_blocks_runs_at_once() {
        let mut queue = WriteQueue::default();
        queue.handle_accepted([], "reply");
        assert_eq!(drain(&mut queue), ["reply"]);
        queue.handle_written();
        assert!(
            drain(&mut queue).is_empty(),
            "a stray completion is ignored"
        );
    }

    #[test]
    fn blocks_not_handed_out_are_given_back_for_a_last_write() {
        let mut queue = WriteQueue::default();
        queue.handle_accepted([block(1)], "a");
        queue.handle_accepted([block(2)], "b");
        drain(&mut queue);
        let unwritten = queue.take_unwritten();
        assert_eq!(unwritten.len(), 1);
        assert_eq!(unwritten[0].hash(), block(2).0);
    }

    proptest::proptest! {
        /// Whatever the interleaving of acceptances and completions: at most one write
        /// is outstanding, every block is written exactly once and in acceptance order,
        /// and each continuation runs after every block accepted before it is stored.
        #[test]
        fn writes_are_ordered_single_and_complete(steps in proptest::collection::vec((0usize..3, proptest::bool::ANY), 1..60)) {
            let mut queue: WriteQueue<(), usize> = WriteQueue::default();
            let mut outstanding = false;
            let mut written = Vec::new();
            let mut stored = 0usize;
            let mut accepted = Vec::new();
            let mut need = Vec::new();
            let mut n = 0u8;
            let check = |queue: &mut WriteQueue<(), usize>, outstanding: &mut bool, written: &mut Vec<BlockHash>, stored: &mut usize, need: &Vec<usize>| -> Result<(), proptest::test_runner::TestCaseError> {
                while let Some(action) = queue.poll_action() {
                    match action {
                        WriteAction::Write(blocks) => {
                            proptest::prop_assert!(!*outstanding);
                            *outstanding = true;
                            written.extend(blocks.iter().map(|b| b.hash()));
                        }
                        WriteAction::Stored(hashes) => *stored += hashes.len(),
                        WriteAction::Run(c) => proptest::prop_assert!(*stored >= need[c]),
                    }
                }
                Ok(())
            };
            for (count, complete) in steps {
                if complete && outstanding {
                    outstanding = false;
                    queue.handle_written();
                } else {
                    let blocks: Vec<_> = (0..count).map(|_| { n = n.wrapping_add(1); block(n) }).collect();
                    accepted.extend(blocks.iter().map(|(h, _)| *h));
                    need.push(accepted.len());
                    queue.handle_accepted(blocks, need.len() - 1);
                }
                check(&mut queue, &mut outstanding, &mut written, &mut stored, &need)?;
            }
            while outstanding {
                outstanding = false;
                queue.handle_written();
                check(&mut queue, &mut outstanding, &mut written, &mut stored, &need)?;
            }
            proptest::prop_assert_eq!(written, accepted);
        }
    }
}
