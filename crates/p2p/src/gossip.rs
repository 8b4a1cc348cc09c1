//! The node's decisions kept free of sockets: gossip de-duplication, bans (keyed by
//! the address this node observed, see [`BanKey`]), which of two connections to one
//! peer to keep ([`admit`]), and which faults are a peer's misbehaviour. Unit-tested
//! without a network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ledger_core::{BlockError, TxError};

use crate::limits;
use crate::protocol::TipInfo;
use crate::session::{Direction, SessionError};

/// What a node has seen lately (transaction and block ids), so that it relays each once:
/// the ledger's bounded set, which forgets the oldest first.
pub(crate) type Seen<K> = ledger_core::BoundedSet<K>;

/// Longest ban the list stores: a century is forever for a running node.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// What a ban attaches to, derived from an address this node observed itself: the
/// remote address of an inbound connection, or the address it dialled for an outbound
/// one. Never from an address a peer declares (its `Hello`, or `Peers`).
///
/// Off loopback a ban covers the whole IP address: an inbound connection's port is
/// ephemeral, so banning the socket address would ban nothing the peer cannot change
/// by reconnecting (Bitcoin Core bans IP addresses too). On loopback every node of the
/// host shares 127.0.0.1 (test networks and the demo run that way), so an IP ban would
/// take every local node down with one bad one: there the exact socket address is
/// banned. IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BanKey {
    /// A loopback socket address, banned exactly.
    Socket(SocketAddr),
    /// Any other host, banned as a whole.
    Ip(IpAddr),
}

impl BanKey {
    /// The key of an observed address.
    pub(crate) fn observed(addr: SocketAddr) -> Self {
        let ip = addr.ip().to_canonical();
        if ip.is_loopback() {
            BanKey::Socket(SocketAddr::new(ip, addr.port()))
        } else {
            BanKey::Ip(ip)
        }
    }
}

/// Observed addresses refused until a deadline, by [`BanKey`].
#[derive(Debug)]
pub(crate) struct BanList {
    until: HashMap<BanKey, Instant>,
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
    /// Bans the observed address `addr` (by its [`BanKey`]) from `now` for `duration`
    /// (extending a shorter ban).
    pub(crate) fn ban(&mut self, addr: SocketAddr, now: Instant, duration: Duration) -> Instant {
        // A ban too long to represent lasts as long as representable.
        let end = now
            .checked_add(duration)
            .or_else(|| now.checked_add(FOREVER))
            .unwrap_or(now);
        let entry = self.until.entry(BanKey::observed(addr)).or_insert(end);
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

    /// When the ban covering the observed address `addr` ends, if it is banned at `now`.
    pub(crate) fn banned_until(&self, addr: &SocketAddr, now: Instant) -> Option<Instant> {
        self.until
            .get(&BanKey::observed(*addr))
            .copied()
            .filter(|t| *t > now)
    }
}

/// One session as the duplicate rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// The session's number.
    pub(crate) id: u64,
    /// Who opened it.
    pub(crate) direction: Direction,
    /// The address this node observed: the remote socket address of an inbound
    /// connection, the dialled address of an outbound one.
    pub(crate) observed: SocketAddr,
    /// Where the peer says it listens (its `Hello`): unverified.
    pub(crate) claimed: Option<SocketAddr>,
}

impl Link {
    /// The address this session shows the peer listening on: proven for an outbound
    /// session (this node dialled it), only claimed for an inbound one.
    pub(crate) fn peer_listen(&self) -> Option<SocketAddr> {
        match self.direction {
            Direction::Outbound => Some(self.observed),
            Direction::Inbound => self.claimed,
        }
    }

    /// Whether this session counts as a connection to the peer listening on `addr`
    /// when deciding whether to dial `addr` or keep a new outbound connection to it:
    /// an outbound session to it, or an inbound one that claims it from the same IP
    /// address (a claim from another host is plainly false, so it cannot keep this
    /// node from dialling an address; on one host nothing tells a claim apart).
    pub(crate) fn reaches(&self, addr: SocketAddr) -> bool {
        match self.direction {
            Direction::Outbound => self.observed == addr,
            Direction::Inbound => {
                self.claimed == Some(addr)
                    && self.observed.ip().to_canonical() == addr.ip().to_canonical()
            }
        }
    }
}

/// What to do with a new session, given the established ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Keep it, and close these established inbound sessions that only claimed the
    /// address the new outbound session proved.
    Keep {
        /// Sessions to close as duplicates.
        close: Vec<u64>,
    },
    /// Refuse it: it duplicates an established session, which stays.
    Duplicate,
}

/// The duplicate rule: which of two connections between the same two nodes survives,
/// decided without ever closing an established session because of what another
/// connection claims.
///
/// Only an outbound session proves where its peer listens; an inbound one only claims
/// it. When two nodes dial each other at once, each holds an outbound session and an
/// inbound one claiming the other's address. Both keep the connection opened by the
/// node with the smaller listen address (`ours` against the peer's), as before, but
/// the work is split so that a claim can never drop a proven session:
///
/// - The node with the smaller address keeps its outbound session and closes the
///   inbound ones claiming that address (new or established). This is safe: if the
///   claim is true, that inbound session is the same peer; if false, a spoofer.
/// - The node with the larger address never closes its outbound session for an
///   inbound claim: it keeps both, and the other end, holding the smaller address,
///   closes it from its side. A spoofed claim thus leaves the established session
///   alone, at the cost of both sessions being listed for the moment the legitimate
///   race takes to settle. A new outbound connection of this node is refused if an
///   inbound session already [`reaches`](Link::reaches) its address (the peer with the
///   smaller address dialled first).
/// - Two outbound sessions to one address: the new one is refused. Inbound sessions
///   claiming the same address are all kept: a claim proves nothing, so none of them
///   may push another out (a stale one ends at the idle timeout).
pub(crate) fn admit(ours: Option<SocketAddr>, new: &Link, established: &[Link]) -> Admission {
    let smaller = |peer: SocketAddr| ours.is_some_and(|ours| ours < peer);
    match new.direction {
        Direction::Outbound => {
            let dialled = new.observed;
            if established
                .iter()
                .any(|l| l.direction == Direction::Outbound && l.observed == dialled)
            {
                return Admission::Duplicate;
            }
            if smaller(dialled) {
                let close = established
                    .iter()
                    .filter(|l| l.direction == Direction::Inbound && l.claimed == Some(dialled))
                    .map(|l| l.id)
                    .collect();
                return Admission::Keep { close };
            }
            if established.iter().any(|l| l.reaches(dialled)) {
                return Admission::Duplicate;
            }
            Admission::Keep { close: Vec::new() }
        }
        Direction::Inbound => {
            let Some(claimed) = new.claimed else {
                return Admission::Keep { close: Vec::new() };
            };
            let proven = established
                .iter()
                .any(|l| l.direction == Direction::Outbound && l.observed == claimed);
            if proven && smaller(claimed) {
                Admission::Duplicate
            } else {
                Admission::Keep { close: Vec::new() }
            }
        }
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
    /// Transactions sent for a compact block that are not the ones announced.
    #[error("invalid compact block answer: {0}")]
    Compact(crate::compact::CompactError),
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
/// clock (clocks differ) and a branch that conflicts with our final block.
pub(crate) fn block_offence<E: Clone>(error: &BlockError<E>) -> Option<Offence<E>> {
    match error {
        // A block from the future may be fine later; a branch that conflicts with our
        // final block is what an honest node cut off from the majority builds.
        BlockError::FromTheFuture { .. } | BlockError::ConflictsWithFinal { .. } => None,
        _ => Some(Offence::InvalidBlock(error.clone())),
    }
}

/// Whether a peer's announced tip wins the ledger's fork choice against ours (a higher
/// final block; then more work; then equal work and a smaller hash), so that syncing
/// from it would switch.
pub(crate) fn beats(theirs: &TipInfo, ours: &TipInfo) -> bool {
    let rank = |t: &TipInfo| (t.final_height, t.work, std::cmp::Reverse(t.hash));
    rank(theirs) > rank(ours)
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
        assert!(seen.record(1));
        assert!(!seen.record(1));
        assert!(seen.record(2));
        assert!(seen.record(3));
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

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("valid address")
    }

    #[test]
    fn loopback_bans_are_per_socket_address() {
        let now = Instant::now();
        let mut bans = BanList::default();
        bans.ban(addr("127.0.0.1:40000"), now, Duration::from_secs(10));
        assert!(bans.banned_until(&addr("127.0.0.1:40000"), now).is_some());
        // Another node of the same host, and the same port on another host: not banned.
        assert!(bans.banned_until(&addr("127.0.0.1:5001"), now).is_none());
        assert!(bans.banned_until(&addr("10.0.0.1:40000"), now).is_none());
        // IPv4-mapped IPv6 is the same socket.
        assert!(
            bans.banned_until(&addr("[::ffff:127.0.0.1]:40000"), now)
                .is_some()
        );
    }

    #[test]
    fn other_bans_cover_the_ip_address() {
        let now = Instant::now();
        let mut bans = BanList::default();
        bans.ban(addr("203.0.113.7:51234"), now, Duration::from_secs(10));
        // The same host from another (ephemeral) port, or listening: banned.
        assert!(bans.banned_until(&addr("203.0.113.7:5001"), now).is_some());
        assert!(
            bans.banned_until(&addr("[::ffff:203.0.113.7]:1"), now)
                .is_some()
        );
        assert!(bans.banned_until(&addr("203.0.113.8:51234"), now).is_none());
        assert_eq!(
            BanKey::observed(addr("[2001:db8::1]:9")),
            BanKey::observed(addr("[2001:db8::1]:10"))
        );
    }

    fn link(id: u64, direction: Direction, observed: &str, claimed: Option<&str>) -> Link {
        Link {
            id,
            direction,
            observed: addr(observed),
            claimed: claimed.map(addr),
        }
    }

    const KEEP: Admission = Admission::Keep { close: Vec::new() };

    #[test]
    fn nodes_dialling_each_other_agree_on_one_connection() {
        // Node a listens on :5001, b on :5002: both keep the connection a opened.
        let (a, b) = (Some(addr("127.0.0.1:5001")), Some(addr("127.0.0.1:5002")));
        // At a, its outbound connection to b and b's inbound one (from :40002).
        let a_out = link(
            1,
            Direction::Outbound,
            "127.0.0.1:5002",
            Some("127.0.0.1:5002"),
        );
        let a_in = link(
            2,
            Direction::Inbound,
            "127.0.0.1:40002",
            Some("127.0.0.1:5002"),
        );
        // At b, the same two connections.
        let b_in = link(
            1,
            Direction::Inbound,
            "127.0.0.1:40001",
            Some("127.0.0.1:5001"),
        );
        let b_out = link(
            2,
            Direction::Outbound,
            "127.0.0.1:5001",
            Some("127.0.0.1:5001"),
        );
        // a (smaller) closes b's connection whichever came first.
        assert_eq!(admit(a, &a_in, &[a_out]), Admission::Duplicate);
        assert_eq!(
            admit(a, &a_out, &[a_in]),
            Admission::Keep { close: vec![2] }
        );
        // b (larger) never closes its outbound session for a claim: a closes it.
        assert_eq!(admit(b, &b_out, &[b_in]), Admission::Duplicate);
        assert_eq!(admit(b, &b_in, &[b_out]), KEEP);
    }

    #[test]
    fn a_claim_never_displaces_an_established_session() {
        let honest = "127.0.0.1:5002";
        let spoof = link(9, Direction::Inbound, "127.0.0.1:40009", Some(honest));
        // With an address smaller than the honest node's, the spoofer is refused; with
        // a larger one, kept beside the honest session (never closing it).
        for (ours, outcome) in [
            ("127.0.0.1:5001", Admission::Duplicate),
            ("127.0.0.1:5003", KEEP),
        ] {
            let ours = Some(addr(ours));
            let out = link(1, Direction::Outbound, honest, Some(honest));
            assert_eq!(admit(ours, &spoof, &[out]), outcome);
            // Established inbound from the honest node: both kept.
            let inbound = link(1, Direction::Inbound, "127.0.0.1:40001", Some(honest));
            assert_eq!(admit(ours, &spoof, &[inbound]), KEEP);
        }
    }

    #[test]
    fn a_claim_from_another_host_does_not_block_a_dial() {
        let ours = Some(addr("10.0.0.9:5001"));
        let honest = "10.0.0.1:5000";
        let spoof = link(1, Direction::Inbound, "10.6.6.6:40000", Some(honest));
        let dial = link(2, Direction::Outbound, honest, None);
        assert!(!spoof.reaches(addr(honest)));
        assert_eq!(admit(ours, &dial, &[spoof]), KEEP);
        // From the claimed host itself it counts as the peer (the race above).
        let same_host = link(1, Direction::Inbound, "10.0.0.1:40000", Some(honest));
        assert!(same_host.reaches(addr(honest)));
        assert_eq!(admit(ours, &dial, &[same_host]), Admission::Duplicate);
        // Two outbound sessions to one address: the second is refused.
        let first = link(3, Direction::Outbound, honest, None);
        assert_eq!(admit(ours, &dial, &[first]), Admission::Duplicate);
    }

    #[test]
    fn offences() {
        let tx = TxId::from_hash(Hash::of(b"t"));
        assert!(tx_offence::<()>(&TxError::BadSignature { tx }).is_some());
        assert!(tx_offence::<()>(&TxError::Duplicate { tx }).is_none());
        let block = ledger_core::BlockHash::from_hash(Hash::of(b"b"));
        assert!(block_offence::<()>(&BlockError::BadProducerSignature { block }).is_some());
        assert!(
            block_offence::<()>(&BlockError::FromTheFuture {
                block,
                timestamp: ledger_core::Timestamp(1),
                limit: ledger_core::Timestamp(0)
            })
            .is_none()
        );
        let conflicting = BlockError::<()>::ConflictsWithFinal {
            block,
            final_height: ledger_core::Height(3),
            final_hash: block,
        };
        assert!(
            block_offence(&conflicting).is_none(),
            "no ban: honest nodes do it"
        );
    }

    #[test]
    fn a_higher_final_block_beats_more_work() {
        let tip = |final_height, work| TipInfo {
            hash: ledger_core::BlockHash::from_byte_array([1; 32]),
            height: ledger_core::Height(9),
            work,
            final_height: ledger_core::Height(final_height),
        };
        assert!(beats(&tip(3, 1), &tip(2, 100)));
        assert!(!beats(&tip(2, 100), &tip(3, 1)));
        assert!(beats(&tip(3, 2), &tip(3, 1)));
    }

    #[test]
    fn fork_choice_on_announced_tips() {
        let tip = |work, byte| TipInfo {
            hash: ledger_core::BlockHash::from_byte_array([byte; 32]),
            height: ledger_core::Height(1),
            work,
            final_height: ledger_core::Height(0),
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
