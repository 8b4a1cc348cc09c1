//! Reading the blocks of `GetBlocks` replies off the ledger task: the ledger task
//! picks the best-chain hashes to send (memory only), and a storage thread reads the
//! blocks through a [`BlockReader`] of committed blocks and encodes the reply, which
//! comes back to the ledger task as a message to queue for the peer.
//!
//! Everything on the best chain was committed before it was accepted, so the reader
//! sees every block asked. When the thread already holds [`limits::SERVE_QUEUE`]
//! requests (or could not be started), the ledger task reads the reply itself, as it
//! always did: the thread's queues stay bounded and a flood of requests costs the
//! flooder its connection when its outbound queue fills, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use ledger_core::{Block, BlockHash};
use tokio::sync::mpsc;
use tracing::warn;

use crate::limits;
use crate::store::BlockReader;

/// A `GetBlocks` reply to read: the hashes chosen, and a reader of the store.
pub(crate) struct ServeJob<T> {
    /// The session that asked.
    pub(crate) peer: u64,
    /// The best-chain hashes to send, in order.
    pub(crate) hashes: Vec<BlockHash>,
    /// Reads committed blocks; dropped as soon as the reply is read.
    pub(crate) reader: Box<dyn BlockReader<T>>,
}

/// A reply read by the storage thread, for the ledger task to queue.
pub(crate) struct Served {
    /// The session that asked.
    pub(crate) peer: u64,
    /// The encoded `Blocks` message.
    pub(crate) frame: Bytes,
}

/// The encoded `Blocks` reply for `hashes`: the blocks `get` finds, in order, up to
/// [`limits::MAX_REPLY_BYTES`] of encodings (at least one block), stopping at the
/// first block it cannot read.
pub(crate) fn reply_frame<T, E>(
    hashes: &[BlockHash],
    get: impl Fn(&BlockHash) -> Result<Option<Arc<Block<T>>>, E>,
) -> Bytes
where
    T: serde::Serialize,
{
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for hash in hashes {
        match get(hash) {
            Ok(Some(block)) => {
                bytes += ledger_core::codec::encoded_len(&*block);
                if bytes > limits::MAX_REPLY_BYTES && !blocks.is_empty() {
                    break;
                }
                blocks.push(block);
            }
            Ok(None) | Err(_) => {
                warn!(%hash, "cannot read a best-chain block to serve");
                break;
            }
        }
    }
    Bytes::from(crate::protocol::encode_blocks(&blocks))
}

/// The storage thread and the ledger task's count of its work.
///
/// Dropping it stops the thread and waits for it (at most the read under way), so
/// that no reader of the store outlives the node, also when the node task is aborted:
/// the store can be opened again at once.
pub(crate) struct Storage<T> {
    jobs: Option<mpsc::Sender<ServeJob<T>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Jobs sent whose reply has not come back: at most [`limits::SERVE_QUEUE`], so
    /// the reply queue (as large) never makes the thread wait.
    outstanding: usize,
}

impl<T: serde::Serialize + 'static> Storage<T> {
    /// Starts the thread; its replies go to `replies`, which must hold
    /// [`limits::SERVE_QUEUE`] of them.
    pub(crate) fn start(replies: mpsc::Sender<Served>) -> Self {
        let (jobs, mut queue) = mpsc::channel::<ServeJob<T>>(limits::SERVE_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("p2p-storage".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    let ServeJob {
                        peer,
                        hashes,
                        reader,
                    } = job;
                    let frame = reply_frame(&hashes, |h| reader.get(h));
                    drop(reader);
                    if replies.blocking_send(Served { peer, frame }).is_err() {
                        return;
                    }
                }
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                warn!(error = %e, "cannot start the storage thread; serving on the ledger task");
                None
            }
        };
        Storage {
            jobs: thread.as_ref().map(|_| jobs),
            stop,
            thread,
            outstanding: 0,
        }
    }

    /// Hands `job` to the thread, or gives it back when the thread holds
    /// [`limits::SERVE_QUEUE`] jobs already or is gone.
    pub(crate) fn try_serve(&mut self, job: ServeJob<T>) -> Result<(), ServeJob<T>> {
        let Some(jobs) = self.jobs.as_ref() else {
            return Err(job);
        };
        if self.outstanding >= limits::SERVE_QUEUE {
            return Err(job);
        }
        match jobs.try_send(job) {
            Ok(()) => {
                self.outstanding += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Err(job)
            }
        }
    }

    /// A reply came back.
    pub(crate) fn served(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }
}

impl<T> Drop for Storage<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Closing the queue wakes the thread; it finishes at most the read under way.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // Never waits on the ledger task: the reply queue always has room.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use ledger_core::Hash;

    fn job(peer: u64) -> ServeJob<u8> {
        ServeJob {
            peer,
            // Not stored: the reply stops there, empty.
            hashes: vec![BlockHash::from_hash(Hash::ZERO)],
            reader: Box::new(MemoryStore::<u8>::new()),
        }
    }

    #[test]
    fn replies_come_back_in_order_and_the_thread_holds_at_most_the_queue() {
        let (replies, mut served) = mpsc::channel(limits::SERVE_QUEUE);
        let mut storage = Storage::<u8>::start(replies);
        for peer in 0..limits::SERVE_QUEUE as u64 {
            assert!(storage.try_serve(job(peer)).is_ok());
        }
        // Full: the job comes back, to be read by the caller.
        let back = storage.try_serve(job(99)).expect_err("given back");
        assert_eq!(back.peer, 99);
        let empty = Bytes::from(crate::protocol::encode_blocks::<u8>(&[]));
        for peer in 0..limits::SERVE_QUEUE as u64 {
            let reply = served.blocking_recv().expect("a reply");
            assert_eq!(reply.peer, peer);
            assert_eq!(reply.frame, empty);
            storage.served();
        }
        assert!(storage.try_serve(job(100)).is_ok(), "room again");
        // Dropping waits for the thread: afterwards its end of the reply queue is gone
        // (it may have answered the last job first).
        drop(storage);
        if let Some(reply) = served.blocking_recv() {
            assert_eq!(reply.peer, 100);
        }
        assert!(served.blocking_recv().is_none(), "the thread has ended");
    }
}
