//! Block submission and bulk import: the entry points for single blocks, prepared
//! blocks and streams, the orphan hand-off, and the pipeline that verifies one
//! batch's signatures while the previous batch is applied.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::block::Block;
use crate::codec;
use crate::error::BlockError;
use crate::hash::BlockHash;
use crate::limits;
use crate::policy::Policy;
use crate::prepared::{Digest, PreparedBlock};
use crate::store::BodySource;
use crate::tx::TxBody;
use crate::units::Timestamp;
use crate::verify::{self, Preverified, Remember};

use super::orphans::Orphan;
use super::tree::Stop;
use super::{BlockOutcome, BlockStatus, Ledger, Origin};

/// A block for [`Ledger::submit`], saying where it comes from, which decides what is
/// checked, and what was computed ahead.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BlockInput<T> {
    /// From a peer or a user: every check.
    Fresh(Block<T>),
    /// From a peer or a user, prepared ahead (see [`prepare_blocks`](crate::prepare_blocks)
    /// and [`Screen::prepare_and_verify`](crate::Screen::prepare_and_verify), which
    /// also preverifies its signatures): every check, without encoding and hashing its
    /// transactions again.
    Prepared(PreparedBlock<T>),
    /// Returned by this node's own store, where only fully verified blocks are put:
    /// hashes, links and every state rule are checked again, signatures and the clock
    /// are not, and the ledger does not ask for it to be stored again.
    Stored(Arc<Block<T>>),
    /// [`BlockInput::Stored`], prepared ahead.
    StoredPrepared(PreparedBlock<T>),
}

impl<T> From<Block<T>> for BlockInput<T> {
    fn from(block: Block<T>) -> Self {
        BlockInput::Fresh(block)
    }
}

impl<T> From<PreparedBlock<T>> for BlockInput<T> {
    fn from(prepared: PreparedBlock<T>) -> Self {
        BlockInput::Prepared(prepared)
    }
}

impl<P: Policy, B: BodySource<P::Payload>> Ledger<P, B> {
    /// Brings in one block: validates it and adds it to the tree, and switches the best
    /// chain if it now ranks higher. A block with an unknown parent is kept as an
    /// orphan (see [`BlockStatus::Orphan`]) and connected once the parent arrives.
    /// Every accepted block that did not come from the store waits in memory to be
    /// stored (see [`Ledger::unstored_block`]).
    ///
    /// `now` is this node's clock, which bounds a fresh block's timestamp; a stored
    /// block is judged at its own timestamp instead.
    #[must_use = "the outcome says whether the block was valid and what changed"]
    pub fn submit(
        &mut self,
        input: impl Into<BlockInput<P::Payload>>,
        now: Timestamp,
    ) -> BlockOutcome<P::Error> {
        match input.into() {
            BlockInput::Fresh(block) => self.submit_arc(Arc::new(block), now, Origin::Untrusted),
            BlockInput::Prepared(prepared) => {
                self.submit_prepared_as(prepared, now, Origin::Untrusted)
            }
            BlockInput::Stored(block) => {
                let now = block.header.timestamp;
                self.submit_arc(block, now, Origin::OwnStore)
            }
            BlockInput::StoredPrepared(prepared) => {
                let now = prepared.block.header.timestamp;
                self.submit_prepared_as(prepared, now, Origin::OwnStore)
            }
        }
    }

    pub(super) fn submit_prepared_as(
        &mut self,
        prepared: PreparedBlock<P::Payload>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let PreparedBlock {
            block,
            hash,
            digest,
        } = prepared;
        self.submit_with(block, hash, Some(digest), now, origin)
    }

    /// Verifies the producer and transaction signatures of many blocks at once (in
    /// parallel with the `parallel` feature) and remembers the valid ones, so
    /// submitting these blocks afterwards does not verify them again. For syncing and
    /// bulk verification; [`Ledger::import_blocks`] also overlaps this with validation.
    pub fn preverify_signatures(&mut self, blocks: &[Arc<Block<P::Payload>>]) {
        let verified = verify::preverify(&self.genesis_hash, blocks);
        self.accept_preverified(verified);
    }

    /// Remembers signatures [`preverify`](crate::preverify) found valid. Signatures
    /// checked for another network (another genesis hash) are ignored: a transaction
    /// signed for that network has the same id here, but no valid signature.
    pub fn accept_preverified(&mut self, verified: Preverified) {
        if verified.genesis != self.genesis_hash {
            return;
        }
        for id in verified.txs {
            self.sigs.insert(id);
        }
        for key in verified.producers {
            self.producer_sigs.insert(key);
        }
    }

    /// Submits a run of blocks, parent first, as a syncing or verifying node receives
    /// them: the signatures of each batch of [`limits::IMPORT_BATCH`] blocks are
    /// verified on every core while the previous batch is validated and applied, so
    /// state work hides behind signature checks. Returns each block's outcome, in order.
    pub fn import_blocks(
        &mut self,
        blocks: &[Arc<Block<P::Payload>>],
        now: Timestamp,
    ) -> Vec<BlockOutcome<P::Error>>
    where
        B: Send,
    {
        let mut outcomes = Vec::with_capacity(blocks.len());
        self.import_stream(blocks.iter().cloned(), now, |_, outcome| {
            outcomes.push(outcome);
            ControlFlow::Continue(())
        });
        outcomes
    }

    /// [`Ledger::import_blocks`] for a stream of blocks of any length, read as the
    /// import goes (from a reader thread's channel, say), so the pipeline never drains
    /// between reads and only a few batches are in memory. `each` receives every
    /// block's outcome in order and may stop the import with
    /// [`ControlFlow::Break`]; blocks not yet read are then left unread (it reads at
    /// most two batches ahead of the one being applied).
    pub fn import_stream<I>(
        &mut self,
        blocks: I,
        now: Timestamp,
        mut each: impl FnMut(&Arc<Block<P::Payload>>, BlockOutcome<P::Error>) -> ControlFlow<()> + Send,
    ) where
        B: Send,
        I: IntoIterator<Item = Arc<Block<P::Payload>>>,
        I::IntoIter: Send,
    {
        let genesis = self.genesis_hash;
        // Blocks that fail the cheap checks have no signature verified ahead.
        let screen = verify::Screen::new(&self.genesis);
        let mut blocks = blocks.into_iter();
        let read = |blocks: &mut I::IntoIter| -> Vec<Arc<Block<P::Payload>>> {
            blocks.by_ref().take(limits::IMPORT_BATCH).collect()
        };
        // Each batch is encoded once: ids, sizes and Merkle roots for validation come
        // from the same encodings as the signed messages.
        let prepare = |batch: &[Arc<Block<P::Payload>>]| {
            (!batch.is_empty()).then(|| {
                verify::prepare_and_preverify(
                    &genesis,
                    Some(&screen),
                    batch,
                    Remember::PartlySigned,
                )
            })
        };
        // A three-stage pipeline: while one batch is applied, the next one's signatures
        // are verified and the one after it is read, so reading (which runs in order)
        // overlaps the verification on every core instead of holding it up.
        let first = read(&mut blocks);
        let (prepared, mut unverified) = join(|| prepare(&first), || read(&mut blocks));
        drop(first);
        let Some((mut current, verified)) = prepared else {
            return;
        };
        self.accept_preverified(verified);
        loop {
            let (flow, (upcoming, next)) = join(
                || {
                    for prepared in current.drain(..) {
                        let block = Arc::clone(prepared.block());
                        // The policy checks ahead, in batch, what it would check one by
                        // one as it applies the block.
                        let payloads: Vec<&P::Payload> = block
                            .transactions
                            .iter()
                            .filter_map(|tx| match &tx.body {
                                TxBody::App(payload) => Some(payload),
                                TxBody::Transfer { .. } => None,
                            })
                            .collect();
                        self.policy.prepare(self.state.app(), &genesis, &payloads);
                        let outcome = self.submit(prepared, now);
                        each(&block, outcome)?;
                    }
                    ControlFlow::Continue(())
                },
                || join(|| prepare(&unverified), || read(&mut blocks)),
            );
            if flow.is_break() {
                return;
            }
            let Some((prepared, verified)) = upcoming else {
                return;
            };
            self.accept_preverified(verified);
            current = prepared;
            unverified = next;
        }
    }

    pub(super) fn submit_arc(
        &mut self,
        block: Arc<Block<P::Payload>>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let hash = block.hash();
        self.submit_with(block, hash, None, now, origin)
    }

    /// [`Ledger::submit_arc`] with the block's hash, and its digest when it was prepared.
    pub(super) fn submit_with(
        &mut self,
        block: Arc<Block<P::Payload>>,
        hash: BlockHash,
        digest: Option<Digest>,
        now: Timestamp,
        origin: Origin,
    ) -> BlockOutcome<P::Error> {
        let mut outcome = BlockOutcome {
            hash,
            status: BlockStatus::Accepted,
            accepted: Vec::new(),
            tip_changes: Vec::new(),
            invalid: Vec::new(),
            fault: None,
        };
        if self.tree.contains_key(&hash) || self.orphans.blocks.contains_key(&hash) {
            outcome.status = BlockStatus::Duplicate;
            return outcome;
        }
        if self.invalid.contains(&hash) || self.invalid.contains(&block.header.prev) {
            self.mark_invalid(hash);
            outcome.status = BlockStatus::Invalid;
            outcome
                .invalid
                .push((hash, BlockError::KnownInvalid { block: hash }));
            // Orphans that were waiting for it can never connect either.
            self.discard_orphans_of(&hash, &mut outcome);
            return outcome;
        }
        let size = match &digest {
            Some(digest) => digest.size,
            None => codec::encoded_len(&*block),
        };
        if let Err(error) = self.check_standalone(&block, hash, size) {
            return self.refuse(hash, error, outcome);
        }
        if !self.tree.contains_key(&block.header.prev) {
            if let Err(error) = self.check_orphan(&block, hash, origin) {
                return self.refuse(hash, error, outcome);
            }
            outcome.status = BlockStatus::Orphan {
                missing: block.header.prev,
            };
            let orphan = Orphan {
                block,
                origin,
                received: now,
                size,
            };
            self.orphans.insert(hash, orphan);
            return outcome;
        }
        // The block and then any orphans it unlocks, breadth first, each checked as
        // its own origin requires.
        let call_origin = origin;
        let mut queue = VecDeque::from([(block, hash, digest, origin, now)]);
        while let Some((block, hash, digest, origin, at)) = queue.pop_front() {
            let is_first = hash == outcome.hash;
            let accepted = match self.accept(block, hash, digest, at, origin, &mut outcome) {
                Ok(()) => Ok(()),
                // The block is in the tree; only a branch switch it called for waits.
                // Its orphans are taken in as usual, so that nothing is lost.
                Err(Stop::Fault(fault)) => {
                    outcome.fault.get_or_insert(fault);
                    Ok(())
                }
                Err(Stop::Invalid(error)) => Err(error),
            };
            match accepted {
                Ok(()) => {
                    outcome.accepted.push(hash);
                    for child in self.orphans.children_of(&hash) {
                        let child_hash = child.block.hash();
                        // The clock reads at least what it read when the orphan came;
                        // a call for a stored block carries no clock reading at all.
                        let at = match call_origin {
                            Origin::Untrusted => child.received.max(now),
                            Origin::OwnStore => child.received,
                        };
                        queue.push_back((child.block, child_hash, None, child.origin, at));
                    }
                }
                Err(error) => {
                    // Orphans waiting on an invalid block are invalid too; not so when
                    // only this copy of their parent was bad (see `condemns_hash`).
                    if condemns_hash(&error) {
                        self.discard_orphans_of(&hash, &mut outcome);
                    }
                    if is_first || error.block() == outcome.hash {
                        outcome.status = BlockStatus::Invalid;
                    }
                    outcome.invalid.push((error.block(), error));
                }
            }
        }
        outcome
    }

    /// Remembers `hash` as invalid when `error` condemns the hash itself (not only this
    /// copy of the block: see `condemns_hash`).
    pub(super) fn remember_if_condemned(&mut self, hash: BlockHash, error: &BlockError<P::Error>) {
        if condemns_hash(error) {
            self.mark_invalid(hash);
        }
    }

    /// The outcome of a block refused, before it reached the tree, for `error`.
    pub(super) fn refuse(
        &mut self,
        hash: BlockHash,
        error: BlockError<P::Error>,
        mut outcome: BlockOutcome<P::Error>,
    ) -> BlockOutcome<P::Error> {
        self.remember_if_condemned(hash, &error);
        outcome.status = BlockStatus::Invalid;
        outcome.invalid.push((hash, error));
        outcome
    }

    pub(super) fn discard_orphans_of(
        &mut self,
        hash: &BlockHash,
        outcome: &mut BlockOutcome<P::Error>,
    ) {
        let mut stack = vec![*hash];
        while let Some(parent) = stack.pop() {
            for child in self.orphans.children_of(&parent) {
                let child_hash = child.block.hash();
                self.mark_invalid(child_hash);
                outcome
                    .invalid
                    .push((child_hash, BlockError::KnownInvalid { block: child_hash }));
                stack.push(child_hash);
            }
        }
    }
}

/// Whether `error` is a verdict on every block with this hash, to be remembered.
///
/// A block hash commits to the header and, through the Merkle root, to the
/// transactions and rewards, but not to the producer's signature. A failure found
/// before the body is known to match the header (size limits, the Merkle root itself),
/// a bad producer signature, or a timestamp ahead of this node's clock (which time
/// cures) may concern only this copy: remembering it would let anyone get a valid
/// block refused everywhere by sending a mangled copy first.
pub(super) fn condemns_hash<E>(error: &BlockError<E>) -> bool {
    !matches!(
        error,
        BlockError::TooLarge { .. }
            | BlockError::TooManyEntries { .. }
            | BlockError::FromTheFuture { .. }
            | BlockError::BadProducerSignature { .. }
            | BlockError::MerkleMismatch { .. }
    )
}

/// Runs `a` and `b` in parallel with the `parallel` feature, one after the other
/// without it.
pub(super) fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    #[cfg(feature = "parallel")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "parallel"))]
    {
        (a(), b())
    }
}
