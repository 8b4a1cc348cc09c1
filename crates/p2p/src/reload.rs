//! Opening a node's store: [`open_ledger`] builds the ledger on it and [`reload`]s
//! every stored block, checking hashes, links and state again; what fails is reported
//! in a [`ReloadReport`] and not served. Runs before the node starts, on the caller's
//! thread (with a reader thread when the store has one).

use std::sync::Arc;

use ledger_core::{
    Block, BlockError, BlockHash, BlockStatus, Height, Ledger, Policy, PreparedBlock,
};

use crate::limits;
use crate::store::{BlockReader, BlockStore, StoreError};

/// What went wrong with one stored block during [`reload`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadFailure<E> {
    /// The block could not be read back (corrupted or unreadable).
    #[error("unreadable: {0}")]
    Unreadable(StoreError),
    /// The store lists the block but does not have it.
    #[error("listed but missing")]
    Missing,
    /// The block no longer passes the ledger's checks (hashes, links or state).
    #[error("invalid: {0}")]
    Invalid(BlockError<E>),
    /// Its parent is not among the blocks that loaded.
    #[error("parent {0} is missing")]
    MissingParent(BlockHash),
}

/// What [`reload`] found.
#[derive(Debug)]
pub struct ReloadReport<E> {
    /// Blocks reloaded into the ledger.
    pub loaded: usize,
    /// Stored blocks that failed and are not served, with the reason.
    pub failed: Vec<(BlockHash, ReloadFailure<E>)>,
    /// Stored blocks of side branches that the final block has since settled against
    /// (and their descendants): valid when stored, never part of the chain again.
    pub superseded: std::collections::HashSet<BlockHash>,
}

impl<E> ReloadReport<E> {
    /// Whether every stored block reloaded.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Reloads every block of the ledger's store into the ledger, parents first, as
/// [`BlockInput::StoredPrepared`](ledger_core::BlockInput::StoredPrepared): hashes, links
/// and state are checked again, signatures (verified before the block was stored) are not. A block that fails is
/// reported, not served. Call it on a fresh ledger built on the store.
///
/// With a store that has a [`reader`](BlockStore::reader), a reader thread reads,
/// decodes and hashes (on every core) the next [`limits::RELOAD_CHUNK`] blocks while
/// the ledger applies the previous ones.
pub fn reload<P: Policy, S: BlockStore<P::Payload>>(
    ledger: &mut Ledger<P, S>,
) -> Result<ReloadReport<P::Error>, StoreError> {
    let stored = ledger.store().stored()?;
    let mut report = ReloadReport {
        loaded: 0,
        failed: Vec::new(),
        superseded: Default::default(),
    };
    let Some(reader) = ledger.store().reader() else {
        for (_, hash) in stored {
            let read = stored_block(ledger.block(&hash)).map(PreparedBlock::new);
            reload_one(ledger, &mut report, hash, read);
        }
        return Ok(report);
    };
    std::thread::scope(|scope| {
        let (sender, chunks) = std::sync::mpsc::sync_channel(limits::RELOAD_READ_AHEAD);
        let stored = &stored;
        scope.spawn(move || read_ahead(&*reader, stored, &sender));
        for chunk in chunks {
            for (hash, read) in chunk {
                reload_one(ledger, &mut report, hash, read);
            }
        }
    });
    Ok(report)
}

/// A stored block as read for reloading: prepared, or why it could not be read.
type ReadBlock<T, E> = Result<PreparedBlock<T>, ReloadFailure<E>>;

/// Reads `stored` in chunks through `reader`, prepares the blocks read and sends each
/// chunk on, until done or the receiver is gone.
fn read_ahead<T: serde::Serialize + Send + Sync, E>(
    reader: &dyn BlockReader<T>,
    stored: &[(Height, BlockHash)],
    out: &std::sync::mpsc::SyncSender<Vec<(BlockHash, ReadBlock<T, E>)>>,
) {
    for chunk in stored.chunks(limits::RELOAD_CHUNK) {
        let read: Vec<_> = chunk
            .iter()
            .map(|(_, hash)| (*hash, stored_block(reader.get(hash))))
            .collect();
        // The blocks read are prepared together (on every core), then put back in store
        // order among the failures.
        let blocks: Vec<_> = read
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(Arc::clone))
            .collect();
        let mut prepared = ledger_core::prepare_blocks(&blocks).into_iter();
        let ordered = read
            .into_iter()
            .map(|(hash, r)| {
                let r = r.map(|_| prepared.next().expect("one prepared block per block read"));
                (hash, r)
            })
            .collect();
        if out.send(ordered).is_err() {
            return;
        }
    }
}

/// A stored block as read back, or why it cannot be reloaded.
fn stored_block<T, E>(
    read: Result<Option<Arc<Block<T>>>, StoreError>,
) -> Result<Arc<Block<T>>, ReloadFailure<E>> {
    match read {
        Ok(Some(block)) => Ok(block),
        Ok(None) => Err(ReloadFailure::Missing),
        Err(e) => Err(ReloadFailure::Unreadable(e)),
    }
}

/// Submits one stored block read for reloading, and records the result in `report`.
fn reload_one<P: Policy, S: BlockStore<P::Payload>>(
    ledger: &mut Ledger<P, S>,
    report: &mut ReloadReport<P::Error>,
    hash: BlockHash,
    read: ReadBlock<P::Payload, P::Error>,
) {
    let prepared = match read {
        Ok(prepared) => prepared,
        Err(failure) => {
            report.failed.push((hash, failure));
            return;
        }
    };
    let prev = prepared.block().header.prev;
    let outcome = ledger.submit(
        // A stored block is judged at its own time: no clock is read.
        ledger_core::BlockInput::StoredPrepared(prepared),
        ledger_core::Timestamp(0),
    );
    match outcome.status {
        BlockStatus::Accepted | BlockStatus::Duplicate => report.loaded += 1,
        BlockStatus::Orphan { missing } => {
            report
                .failed
                .push((hash, ReloadFailure::MissingParent(missing)));
        }
        BlockStatus::Invalid => {
            let error = outcome
                .invalid
                .into_iter()
                .next()
                .map_or(BlockError::KnownInvalid { block: hash }, |(_, e)| e);
            // A side branch stored while it was valid, and passed by finality since
            // (it, or the branch it grew on, conflicts with the final block).
            let settled = matches!(error, BlockError::ConflictsWithFinal { .. })
                || (matches!(error, BlockError::KnownInvalid { .. })
                    && report.superseded.contains(&prev));
            if settled {
                report.superseded.insert(hash);
            } else {
                report.failed.push((hash, ReloadFailure::Invalid(error)));
            }
        }
    }
}

/// A ledger reloaded from its store, and what the reload found.
pub type Opened<P, S> = (Ledger<P, S>, ReloadReport<<P as Policy>::Error>);

/// Builds a ledger on `store` and reloads what the store holds (see [`reload`]).
pub fn open_ledger<P: Policy, S: BlockStore<P::Payload>>(
    genesis: ledger_core::Genesis,
    policy: P,
    store: S,
) -> Result<Opened<P, S>, OpenError> {
    let mut ledger = Ledger::with_store(genesis, policy, store)?;
    let report = reload(&mut ledger)?;
    Ok((ledger, report))
}

/// Why [`open_ledger`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The genesis is unusable.
    #[error(transparent)]
    Genesis(#[from] ledger_core::GenesisError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
