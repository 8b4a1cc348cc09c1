//! The node's decisions kept free of sockets: gossip de-duplication, bans, and which
//! faults are a peer's misbehaviour. Unit-tested without a network.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ledger_core::{BlockError, TxError};

use crate::limits;
use crate::protocol::TipInfo;
use crate::session::SessionError;

/// A set that remembers the most recent `capacity` insertions.
#[derive(Debug)]
pub(crate) struct Seen<K> {
    set: HashSet<K>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy> Seen<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `key`; `true` if it was not already remembered.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.set.contains(key)
    }
}

/// Longest ban the list stores: a century is forever for a running node.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Addresses refused until a deadline.
#[derive(Debug)]
pub(crate) struct BanList {
    until: HashMap<SocketAddr, Instant>,
    capacity: usize,
}

impl Default for BanList {
    fn default() -> Self {
        BanList {
            until: HashMap::new(),
            capacity: limits::MAX_BANNED,
        }
    }
}

impl BanList {
    /// Bans `addr` from `now` for `duration` (extending a shorter ban).
    pub(crate) fn ban(&mut self, addr: SocketAddr, now: Instant, duration: Duration) -> Instant {
        // A ban too long to represent lasts as long as representable.
        let end = now
            .checked_add(duration)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now);
        let entry = self.until.entry(addr).or_insert(end);
        *entry = (*entry).max(end);
        let end = *entry;
        if self.until.len() > self.capacity {
            self.until.retain(|_, t| *t > now);
            while self.until.len() > self.capacity {
                let soonest = self.until.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a);
                match soonest {
                    Some(a) => self.until.remove(&a),
                    None => break,
                };
            }
        }
        end
    }

    /// When the ban of `addr` ends, if it is banned at `now`.
    pub(crate) fn banned_until(&self, addr: &SocketAddr, now: Instant) -> Option<Instant> {
        self.until.get(addr).copied().filter(|t| *t > now)
    }
}

/// What a peer did to be banned.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Offence<E> {
    /// Oversize or undecodable frames, or protocol violations.
    #[error("{0}")]
    Session(SessionError),
    /// A transaction that no honest node would relay.
    #[error("invalid transaction: {0}")]
    InvalidTx(TxError<E>),
    /// A block that is invalid whatever the receiver's state.
    #[error("invalid block: {0}")]
    InvalidBlock(BlockError<E>),
}

/// Whether a session error is an offence.
pub(crate) fn session_offence<E>(error: &SessionError) -> Option<Offence<E>> {
    error
        .is_misbehaviour()
        .then(|| Offence::Session(error.clone()))
}

/// Whether a refused transaction proves its sender misbehaves. Only faults visible in
/// the transaction alone count: a stale nonce, an overdraft, a duplicate or a policy
/// refusal can follow from honest races between peers with different views.
pub(crate) fn tx_offence<E: Clone>(error: &TxError<E>) -> Option<Offence<E>> {
    match error {
        TxError::BadSignature { .. }
        | TxError::TooLarge { .. }
        | TxError::ZeroAmount { .. }
        | TxError::FromReserve { .. } => Some(Offence::InvalidTx(error.clone())),
        _ => None,
    }
}

/// Whether a refused block proves its sender misbehaves: every invalidity does (blocks
/// are checked against their own parent, not our tip), except a timestamp ahead of our
/// clock (clocks differ) and our own storage failing.
pub(crate) fn block_offence<E: Clone>(error: &BlockError<E>) -> Option<Offence<E>> {
    match error {
        BlockError::FromTheFuture { .. } | BlockError::Store { .. } => None,
        _ => Some(Offence::InvalidBlock(error.clone())),
    }
}

/// Whether a peer's announced tip wins the ledger's fork choice against ours (more
/// work, or equal work and a smaller hash), so that syncing from it would switch.
pub(crate) fn beats(theirs: &TipInfo, ours: &TipInfo) -> bool {
    theirs.work > ours.work || (theirs.work == ours.work && theirs.hash < ours.hash)
}

/// Exponential back-off for redials.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay to wait now; doubles the next one up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// After a successful session: start again from the minimum.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::{Hash, TxId};

    #[test]
    fn seen_forgets_oldest() {
        let mut seen = Seen::new(2);
        assert!(seen.insert(1));
        assert!(!seen.insert(1));
        assert!(seen.insert(2));
        assert!(seen.insert(3));
        assert!(!seen.contains(&1));
        assert!(seen.contains(&3));
    }

    #[test]
    fn bans_expire_and_are_bounded() {
        let now = Instant::now();
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("valid");
        let mut bans = BanList {
            capacity: 2,
            ..Default::default()
        };
        bans.ban(addr, now, Duration::from_secs(10));
        assert!(bans.banned_until(&addr, now).is_some());
        assert!(
            bans.banned_until(&addr, now + Duration::from_secs(11))
                .is_none()
        );
        for port in 2u16..10 {
            let a: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid");
            bans.ban(a, now, Duration::from_secs(u64::from(port)));
        }
        assert!(bans.until.len() <= 2);
    }

    #[test]
    fn offences() {
        let tx = TxId(Hash::of(b"t"));
        assert!(tx_offence::<()>(&TxError::BadSignature { tx }).is_some());
        assert!(tx_offence::<()>(&TxError::Duplicate { tx }).is_none());
        let block = ledger_core::BlockHash(Hash::of(b"b"));
        assert!(block_offence::<()>(&BlockError::BadProducerSignature { block }).is_some());
        assert!(
            block_offence::<()>(&BlockError::FromTheFuture {
                block,
                timestamp: ledger_core::Timestamp(1),
                limit: ledger_core::Timestamp(0)
            })
            .is_none()
        );
    }

    #[test]
    fn fork_choice_on_announced_tips() {
        let tip = |work, byte| TipInfo {
            hash: ledger_core::BlockHash(Hash([byte; 32])),
            height: ledger_core::Height(1),
            work,
        };
        assert!(beats(&tip(2, 9), &tip(1, 1)));
        assert!(!beats(&tip(1, 1), &tip(2, 9)));
        assert!(beats(&tip(2, 1), &tip(2, 9)));
        assert!(!beats(&tip(2, 9), &tip(2, 1)));
        assert!(!beats(&tip(2, 1), &tip(2, 1)));
    }

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        assert_eq!(b.next_delay(), Duration::from_millis(10));
        assert_eq!(b.next_delay(), Duration::from_millis(20));
        assert_eq!(b.next_delay(), Duration::from_millis(35));
        assert_eq!(b.next_delay(), Duration::from_millis(35));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }
}
