//! Mempool admission in batches: a plain state machine, no I/O.
//!
//! Transactions from clients (a [`NodeHandle`](crate::NodeHandle) submission) and from
//! peers wait in one bounded queue. While the verifier task checks the signatures of
//! one batch off the ledger task (batched, on every core:
//! [`ledger_core::preverify_txs`]), the next one gathers here; when the verifier is
//! free, everything waiting (up to [`limits::ADMISSION_BATCH`]) becomes the next batch.
//! Under load batches grow by themselves. A batch also waits to grow to
//! [`limits::ADMISSION_MIN_BATCH`] transactions, but never longer than
//! [`limits::ADMISSION_LINGER`] after its first one arrived: small batches cost almost
//! a verification each, large ones a fraction of one.
//!
//! The queue holds at most [`limits::ADMISSION_QUEUE`] transactions, the batch being
//! verified included. A client submission that does not fit as a whole is refused
//! with a typed answer ([`Full`], which the handle turns into
//! [`NodeError::Busy`](crate::NodeError::Busy)) rather than buffered; a relayed
//! transaction that does not fit is dropped and counted
//! ([`NodeEvent::TxsDropped`](crate::NodeEvent::TxsDropped)); it still arrives in its
//! block.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ledger_core::Transaction;

use crate::limits;

/// Where a waiting transaction came from, and so where its verdict goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Relayed by the peer of this session id.
    Peer(u64),
    /// Transaction `index` of the client submission `ticket`.
    Client {
        /// The submission.
        ticket: u64,
        /// Its position in the submission.
        index: usize,
    },
}

impl Origin {
    /// The peer it came from, if it came from one.
    pub(crate) fn peer(self) -> Option<u64> {
        match self {
            Origin::Peer(id) => Some(id),
            Origin::Client { .. } => None,
        }
    }
}

/// A transaction waiting for its signature check.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    /// The transaction.
    pub(crate) tx: Transaction<T>,
    /// Where it came from.
    pub(crate) origin: Origin,
}

/// The queue has no room for what was offered: how much it holds, and its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full {
    /// Transactions waiting or being verified.
    pub(crate) held: usize,
    /// The most it holds.
    pub(crate) capacity: usize,
}

/// The admission queue (see the module docs).
#[derive(Debug)]
pub(crate) struct Admission<T> {
    waiting: VecDeque<Waiting<T>>,
    /// Transactions of the batch being verified (0: the verifier is free).
    in_flight: usize,
    capacity: usize,
    batch: usize,
    /// A batch smaller than this waits up to `linger` to grow.
    min_batch: usize,
    linger: Duration,
    /// When the oldest waiting transaction arrived.
    oldest: Option<Instant>,
    next_ticket: u64,
}

impl<T> Admission<T> {
    /// A queue of at most `capacity` transactions, verified in batches of at most
    /// `batch`; a batch below `min_batch` waits up to `linger` to grow.
    pub(crate) fn new(capacity: usize, batch: usize, min_batch: usize, linger: Duration) -> Self {
        Admission {
            waiting: VecDeque::new(),
            in_flight: 0,
            capacity,
            batch: batch.max(1),
            min_batch,
            linger,
            oldest: None,
            next_ticket: 0,
        }
    }

    /// Transactions waiting or being verified.
    pub(crate) fn held(&self) -> usize {
        self.waiting.len() + self.in_flight
    }

    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.held())
    }

    /// Queues a client's submission of `txs` as a whole, or refuses it whole when it
    /// does not fit; returns the submission's ticket, which its verdicts name.
    pub(crate) fn submit(&mut self, txs: Vec<Transaction<T>>, now: Instant) -> Result<u64, Full> {
        if txs.len() > self.room() {
            return Err(Full {
                held: self.held(),
                capacity: self.capacity,
            });
        }
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.arrived(now);
        self.waiting
            .extend(txs.into_iter().enumerate().map(|(index, tx)| Waiting {
                tx,
                origin: Origin::Client { ticket, index },
            }));
        Ok(ticket)
    }

    /// Queues the transactions a peer relayed, as many as fit; returns how many were
    /// dropped for want of room.
    pub(crate) fn relayed(&mut self, peer: u64, txs: Vec<Transaction<T>>, now: Instant) -> usize {
        let room = self.room();
        // Marks the wait's start if nothing waited; harmless if nothing is taken, as
        // the mark is set again by the next arrival into an empty queue.
        self.arrived(now);
        let dropped = txs.len().saturating_sub(room);
        self.waiting
            .extend(txs.into_iter().take(room).map(|tx| Waiting {
                tx,
                origin: Origin::Peer(peer),
            }));
        dropped
    }

    fn arrived(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            self.oldest = Some(now);
        }
    }

    /// The next batch to verify, if the verifier is free and a batch is ready: it has
    /// [`limits::ADMISSION_MIN_BATCH`] transactions, or its oldest waited the linger.
    pub(crate) fn next_batch(&mut self, now: Instant) -> Option<Vec<Waiting<T>>> {
        if self.in_flight > 0 || self.waiting.is_empty() {
            return None;
        }
        if self.waiting.len() < self.min_batch && self.deadline().is_some_and(|d| now < d) {
            return None;
        }
        let take = self.waiting.len().min(self.batch);
        let batch: Vec<Waiting<T>> = self.waiting.drain(..take).collect();
        self.in_flight = batch.len();
        // What stays behind has waited since now at the latest.
        self.oldest = (!self.waiting.is_empty()).then_some(now);
        Some(batch)
    }

    /// When a small batch stops waiting to grow, if one waits for that.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.in_flight > 0 || self.waiting.is_empty() {
            return None;
        }
        self.oldest.map(|t| t + self.linger)
    }

    /// The transactions waiting (not yet in a batch), in arrival order.
    pub(crate) fn waiting(&self) -> impl Iterator<Item = &Transaction<T>> {
        self.waiting.iter().map(|w| &w.tx)
    }

    /// The batch under way came back verified: the verifier is free again.
    pub(crate) fn verified(&mut self) {
        self.in_flight = 0;
    }

    /// The transactions waiting (not yet in a batch), for the node to drop on a peer's
    /// departure: nothing of a departed peer is lost, it arrives in blocks.
    pub(crate) fn forget_peer(&mut self, peer: u64) {
        self.waiting.retain(|w| w.origin != Origin::Peer(peer));
        if self.waiting.is_empty() {
            self.oldest = None;
        }
    }
}

impl<T> Default for Admission<T> {
    fn default() -> Self {
        Admission::new(
            limits::ADMISSION_QUEUE,
            limits::ADMISSION_BATCH,
            limits::ADMISSION_MIN_BATCH,
            limits::ADMISSION_LINGER,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{Amount, Keypair, TxBody};
    use proptest::prelude::*;

    /// A queue that never lingers (min batch 1), as the linger has its own test.
    fn queue_of(capacity: usize, batch: usize) -> Admission<()> {
        Admission::new(capacity, batch, 1, Duration::ZERO)
    }

    fn at() -> Instant {
        Instant::now()
    }

    fn tx(nonce: u64) -> Transaction<()> {
        let key = Keypair::from_seed([7; 32]);
        let genesis = ledger_core::BlockHash::default();
        Transaction::new_signed(
            &genesis,
            &key,
            nonce,
            ledger_core::Timestamp(1),
            TxBody::Transfer {
                to: Keypair::from_seed([8; 32]).account(),
                amount: Amount(1),
            },
        )
    }

    #[test]
    fn a_submission_that_does_not_fit_is_refused_whole() {
        let mut queue = queue_of(3, 10);
        assert!(queue.submit(vec![tx(1), tx(2)], at()).is_ok());
        assert_eq!(
            queue.submit(vec![tx(3), tx(4)], at()),
            Err(Full {
                held: 2,
                capacity: 3
            })
        );
        assert_eq!(queue.held(), 2);
        assert!(queue.submit(vec![tx(3)], at()).is_ok());
        assert_eq!(queue.held(), 3);
    }

    #[test]
    fn the_batch_being_verified_counts_against_the_capacity() {
        let mut queue = queue_of(2, 10);
        let ticket = queue.submit(vec![tx(1), tx(2)], at()).expect("room");
        let batch = queue.next_batch(at()).expect("a batch");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].origin, Origin::Client { ticket, index: 1 });
        assert!(queue.submit(vec![tx(3)], at()).is_err());
        assert_eq!(queue.relayed(9, vec![tx(3)], at()), 1);
        queue.verified();
        assert!(queue.submit(vec![tx(3)], at()).is_ok());
    }

    #[test]
    fn one_batch_at_a_time_and_no_larger_than_the_limit() {
        let mut queue = queue_of(100, 3);
        queue.relayed(1, (1..=5).map(tx).collect(), at());
        let first = queue.next_batch(at()).expect("a batch");
        assert_eq!(first.len(), 3);
        assert!(queue.next_batch(at()).is_none(), "the verifier is busy");
        queue.verified();
        let second = queue.next_batch(at()).expect("the rest");
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].tx.nonce, 4, "arrival order is kept");
        queue.verified();
        assert!(queue.next_batch(at()).is_none());
    }

    #[test]
    fn a_departed_peer_s_waiting_transactions_are_forgotten() {
        let mut queue = queue_of(100, 100);
        queue.relayed(1, vec![tx(1)], at());
        queue.relayed(2, vec![tx(2)], at());
        let ticket = queue.submit(vec![tx(3)], at()).expect("room");
        queue.forget_peer(1);
        let batch = queue.next_batch(at()).expect("a batch");
        let origins: Vec<Origin> = batch.iter().map(|w| w.origin).collect();
        assert_eq!(
            origins,
            vec![Origin::Peer(2), Origin::Client { ticket, index: 0 }]
        );
        assert_eq!(Origin::Peer(2).peer(), Some(2));
        assert_eq!(Origin::Client { ticket, index: 0 }.peer(), None);
    }

    #[test]
    fn every_submission_gets_its_own_ticket() {
        let mut queue = queue_of(100, 100);
        let tickets: Vec<u64> = (1..=3)
            .map(|n| queue.submit(vec![tx(n)], at()).expect("room"))
            .collect();
        assert!(tickets[0] != tickets[1] && tickets[1] != tickets[2] && tickets[0] != tickets[2]);
        let origins: Vec<Origin> = queue
            .next_batch(at())
            .expect("a batch")
            .iter()
            .map(|w| w.origin)
            .collect();
        let expected: Vec<Origin> = tickets
            .iter()
            .map(|&ticket| Origin::Client { ticket, index: 0 })
            .collect();
        assert_eq!(origins, expected);
    }

    #[test]
    fn what_a_full_batch_leaves_behind_waits_its_own_linger() {
        let start = Instant::now();
        let linger = Duration::from_millis(5);
        let mut queue: Admission<()> = Admission::new(100, 2, 10, linger);
        queue.relayed(1, (1..=3).map(tx).collect(), start);
        let nonces: Vec<u64> = queue.waiting().map(|t| t.nonce).collect();
        assert_eq!(nonces, vec![1, 2, 3], "waiting, in arrival order");
        let first = queue
            .next_batch(start + linger)
            .expect("the linger is over");
        assert_eq!(first.len(), 2, "no larger than the batch limit");
        assert_eq!(queue.waiting().count(), 1);
        assert_eq!(
            queue.deadline(),
            None,
            "no deadline while a batch is verified"
        );
        queue.verified();
        assert_eq!(queue.deadline(), Some(start + 2 * linger));
        assert!(
            queue.next_batch(start + linger).is_none(),
            "it waits from its turn"
        );
        assert_eq!(
            queue.next_batch(start + 2 * linger).map(|b| b.len()),
            Some(1)
        );
    }

    #[test]
    fn a_small_batch_waits_for_more_up_to_the_linger() {
        let start = Instant::now();
        let linger = Duration::from_millis(5);
        let mut queue: Admission<()> = Admission::new(100, 50, 10, linger);
        assert_eq!(queue.deadline(), None);
        queue.relayed(1, vec![tx(1), tx(2)], start);
        assert_eq!(queue.deadline(), Some(start + linger));
        assert!(
            queue.next_batch(start + linger / 2).is_none(),
            "still growing"
        );
        let batch = queue
            .next_batch(start + linger)
            .expect("the linger is over");
        assert_eq!(batch.len(), 2);
        assert_eq!(queue.deadline(), None, "the verifier is busy");
        queue.verified();
        // Enough for a batch goes at once.
        let later = start + linger * 4;
        let ticket = queue.submit((3..=12).map(tx).collect(), later);
        assert!(ticket.is_ok());
        assert_eq!(queue.next_batch(later).map(|b| b.len()), Some(10));
        queue.verified();
        assert!(queue.next_batch(later).is_none(), "nothing waits");
    }

    proptest! {
        /// Whatever arrives, the queue never holds more than its capacity, batches are
        /// never larger than the limit, and every transaction taken in comes out once,
        /// in arrival order.
        #[test]
        fn bounded_and_in_order(
            capacity in 1usize..40,
            batch in 1usize..16,
            steps in proptest::collection::vec((0u8..4, 1usize..10), 1..60),
        ) {
            let mut queue = queue_of(capacity, batch);
            let mut next = 1u64;
            let mut taken_in = Vec::new();
            let mut came_out = Vec::new();
            for (op, n) in steps {
                match op {
                    0 => {
                        let txs: Vec<_> = (next..next + n as u64).map(tx).collect();
                        if queue.submit(txs, at()).is_ok() {
                            taken_in.extend(next..next + n as u64);
                        }
                        next += n as u64;
                    }
                    1 => {
                        let txs: Vec<_> = (next..next + n as u64).map(tx).collect();
                        let dropped = queue.relayed(3, txs, at());
                        taken_in.extend(next..next + (n - dropped) as u64);
                        next += n as u64;
                    }
                    2 => {
                        if let Some(b) = queue.next_batch(at()) {
                            prop_assert!(b.len() <= batch);
                            came_out.extend(b.iter().map(|w| w.tx.nonce));
                        }
                    }
                    _ => queue.verified(),
                }
                prop_assert!(queue.held() <= capacity);
            }
            queue.verified();
            while let Some(b) = queue.next_batch(at()) {
                came_out.extend(b.iter().map(|w| w.tx.nonce));
                queue.verified();
            }
            prop_assert_eq!(came_out, taken_in);
        }
    }
}
