//! Who the node talks to, decided without sockets: [`PeerTable`] admits sessions,
//! keeps the ban list and chooses what to dial; [`Redialer`] paces one dialer.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::gossip::{self, Backoff, BanList, Link, Offence};
use crate::handle::DisconnectReason;
use crate::limits;

/// How long a dialer keeps redialling its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redial {
    /// A configured peer, or one given to [`NodeHandle::connect`](crate::NodeHandle):
    /// as long as the node runs.
    Always,
    /// An address learnt from a peer (`Peers`, or a `Hello`): until
    /// [`limits::LEARNED_DIAL_FAILURES`] dials in a row fail; the node then forgets it.
    Learned,
}

/// A decision of the [`PeerTable`], for the node task to carry out.
#[derive(Debug, Clone)]
pub(crate) enum PeerAction<E> {
    /// Close the established session `id`, and report it down for `reason`.
    Disconnect {
        /// The session.
        id: u64,
        /// Why.
        reason: DisconnectReason<E>,
    },
    /// The observed address `addr` is banned from `at` for `duration`: tell the
    /// listener and the dialers, and report the ban. The sessions it covers follow as
    /// `Disconnect`s.
    Ban {
        /// The observed address.
        addr: SocketAddr,
        /// When the ban began.
        at: Instant,
        /// How long it lasts.
        duration: Duration,
        /// What the peer did.
        offence: Offence<E>,
    },
    /// Start a dialer for `addr`.
    Dial {
        /// The address.
        addr: SocketAddr,
        /// For how long it redials.
        redial: Redial,
    },
}

/// The node's peer bookkeeping as a state machine: established sessions (as
/// [`Link`]s), bans of observed addresses, addresses learnt from peers, and the
/// dialers running.
///
/// # Calling contract
///
/// None of its functions perform I/O or read a clock: time comes in as `now`, and
/// decisions come out as values. The node task (the driver) owns it and:
///
/// - feeds it inputs, the `handle_*` functions: a session finished its handshake
///   ([`handle_up`](Self::handle_up), whose result says whether the session is kept),
///   a session ended ([`handle_down`](Self::handle_down)), a peer misbehaved
///   ([`handle_offence`](Self::handle_offence), [`handle_misbehaved`](Self::handle_misbehaved)),
///   a peer named addresses ([`handle_peers`](Self::handle_peers)), an inbound peer's
///   claimed address is worth dialling ([`handle_learned`](Self::handle_learned)), a
///   dialer gave up ([`handle_dialer_stopped`](Self::handle_dialer_stopped)), and the
///   application asked for a peer ([`connect`](Self::connect));
/// - after each input, polls [`poll_action`](Self::poll_action) until it returns
///   `None` and carries out every [`PeerAction`] in order (close a session, publish a
///   ban, spawn a dialer); the table has already updated itself for them;
/// - reads it through queries ([`is_banned`](Self::is_banned),
///   [`reached`](Self::reached), [`addrs_for`](Self::addrs_for)) that change nothing.
///
/// Inputs about one session always come in the order the session lived: `handle_up`
/// before `handle_down`; a session the table closed with a `Disconnect` is forgotten
/// at once, and a later `handle_down` for it is ignored.
#[derive(Debug)]
pub(crate) struct PeerTable<E> {
    /// The listen address this node announces.
    ours: Option<SocketAddr>,
    /// Whether addresses learnt from peers are dialled.
    peer_exchange: bool,
    /// Most [`Redial::Learned`] dialers at once.
    max_learned: usize,
    /// How long a misbehaving observed address is refused.
    ban_duration: Duration,
    bans: BanList,
    /// Established sessions, by number.
    links: BTreeMap<u64, Link>,
    /// Listen addresses learnt from `Peers` and `Hello`s (at most
    /// [`limits::MAX_PEER_ADDRS`]): only addresses to try, never banned or trusted.
    known: HashSet<SocketAddr>,
    /// Addresses with a dialer running.
    dialing: HashSet<SocketAddr>,
    /// Addresses dialled for as long as the node runs: configured peers and those given
    /// to [`PeerTable::connect`].
    pinned: HashSet<SocketAddr>,
    /// Addresses whose dialer is a [`Redial::Learned`] one.
    learned: HashSet<SocketAddr>,
    actions: VecDeque<PeerAction<E>>,
}

impl<E: Clone> PeerTable<E> {
    /// A table for a node announcing `ours`, whose configured `peers` have their
    /// dialers started already.
    pub(crate) fn new(
        ours: Option<SocketAddr>,
        peers: &[SocketAddr],
        peer_exchange: bool,
        max_learned: usize,
        ban_duration: Duration,
    ) -> Self {
        PeerTable {
            ours,
            peer_exchange,
            max_learned,
            ban_duration,
            bans: BanList::default(),
            links: BTreeMap::new(),
            known: HashSet::new(),
            dialing: peers.iter().copied().collect(),
            pinned: peers.iter().copied().collect(),
            learned: HashSet::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next decision to carry out, oldest first.
    pub(crate) fn poll_action(&mut self) -> Option<PeerAction<E>> {
        self.actions.pop_front()
    }

    /// A session finished its handshake: keeps it unless it is this node itself, its
    /// observed address is banned at `now`, or [`gossip::admit`] finds it a duplicate
    /// (the error says which). Established sessions it makes redundant are closed with
    /// `Disconnect`s.
    pub(crate) fn handle_up(
        &mut self,
        now: Instant,
        link: Link,
    ) -> Result<(), DisconnectReason<E>> {
        if link.claimed.is_some() && link.claimed == self.ours {
            return Err(DisconnectReason::SelfConnection);
        }
        // Only what this node observed counts; the listener and dialers refuse banned
        // addresses already, this catches a ban that landed during the handshake.
        if self.is_banned(link.observed, now) {
            return Err(DisconnectReason::AlreadyBanned);
        }
        let established: Vec<Link> = self.links.values().copied().collect();
        match gossip::admit(self.ours, &link, &established) {
            gossip::Admission::Duplicate => return Err(DisconnectReason::Duplicate),
            gossip::Admission::Keep { close } => {
                for old in close {
                    self.close(old, DisconnectReason::Duplicate);
                }
            }
        }
        if let Some(listen) = link.peer_listen() {
            self.learn(listen);
        }
        self.links.insert(link.id, link);
        Ok(())
    }

    /// Session `id` ended (or the node task dropped it): forgets it.
    pub(crate) fn handle_down(&mut self, id: u64) {
        self.links.remove(&id);
    }

    /// Session `id` misbehaved: closes it and bans its observed address.
    pub(crate) fn handle_misbehaved(&mut self, now: Instant, id: u64, offence: Offence<E>) {
        let Some(addr) = self.links.get(&id).map(|l| l.observed) else {
            return;
        };
        self.close(id, DisconnectReason::Banned(offence.clone()));
        self.handle_offence(now, addr, offence);
    }

    /// A connection from the observed address `addr` misbehaved: bans it from `now`
    /// (by its [`gossip::BanKey`]: the socket address on loopback, the IP address
    /// elsewhere) and closes the other sessions the ban covers. What the peer claimed
    /// about itself is neither banned nor a reason to drop anyone: another node may
    /// hold that address.
    pub(crate) fn handle_offence(&mut self, now: Instant, addr: SocketAddr, offence: Offence<E>) {
        self.bans.ban(addr, now, self.ban_duration);
        self.actions.push_back(PeerAction::Ban {
            addr,
            at: now,
            duration: self.ban_duration,
            offence: offence.clone(),
        });
        let covered: Vec<u64> = self
            .links
            .values()
            .filter(|l| self.bans.banned_until(&l.observed, now).is_some())
            .map(|l| l.id)
            .collect();
        for id in covered {
            self.close(id, DisconnectReason::Banned(offence.clone()));
        }
    }

    /// A peer named these listen addresses: remembers them and dials while there is
    /// room.
    pub(crate) fn handle_peers(&mut self, now: Instant, addrs: Vec<SocketAddr>) {
        if !self.peer_exchange {
            return;
        }
        for addr in addrs {
            self.learn(addr);
        }
        self.dial_known(now);
    }

    /// Starts a [`Redial::Learned`] dialer for `addr`, learnt from a peer (`Peers`, or
    /// the `Hello` of an inbound session that ended), unless peer exchange is off, it
    /// is this node, it is dialled or reached already, it is banned, or the most
    /// learnt dialers run.
    pub(crate) fn handle_learned(&mut self, now: Instant, addr: SocketAddr) {
        if !self.peer_exchange {
            return;
        }
        self.learn(addr);
        let busy = Some(addr) == self.ours
            || self.dialing.contains(&addr)
            || self.links.values().any(|l| l.reaches(addr))
            || self.is_banned(addr, now);
        if busy || self.learned.len() >= self.max_learned {
            return;
        }
        self.dialing.insert(addr);
        self.learned.insert(addr);
        self.actions.push_back(PeerAction::Dial {
            addr,
            redial: Redial::Learned,
        });
    }

    /// A learnt address's dialer gave up: forgets the address (a pinned one is dialled
    /// again for good), and uses the room for another known address.
    pub(crate) fn handle_dialer_stopped(&mut self, now: Instant, addr: SocketAddr) {
        self.learned.remove(&addr);
        self.dialing.remove(&addr);
        self.known.remove(&addr);
        if self.pinned.contains(&addr) {
            self.dialing.insert(addr);
            self.actions.push_back(PeerAction::Dial {
                addr,
                redial: Redial::Always,
            });
        }
        self.dial_known(now);
    }

    /// Dials `addr` for as long as the node runs, like a configured peer.
    pub(crate) fn connect(&mut self, addr: SocketAddr) {
        // A learnt address's dialer may give up; `pinned` has it dialled again.
        self.pinned.insert(addr);
        if self.dialing.insert(addr) {
            self.actions.push_back(PeerAction::Dial {
                addr,
                redial: Redial::Always,
            });
        }
    }

    /// Whether the observed address `addr` is banned at `now`.
    pub(crate) fn is_banned(&self, addr: SocketAddr, now: Instant) -> bool {
        self.bans.banned_until(&addr, now).is_some()
    }

    /// The listen addresses the established sessions reach (see [`Link::reaches`]),
    /// for dialers to pause on.
    pub(crate) fn reached(&self) -> HashSet<SocketAddr> {
        self.links
            .values()
            .filter_map(|l| l.peer_listen().filter(|addr| l.reaches(*addr)))
            .collect()
    }

    /// The addresses to answer session `id`'s `GetPeers` with: where the other
    /// sessions' peers listen, and the addresses learnt, sorted, at most
    /// [`limits::MAX_PEER_ADDRS`].
    pub(crate) fn addrs_for(&self, id: u64) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self
            .links
            .values()
            .filter(|l| l.id != id)
            .filter_map(Link::peer_listen)
            .collect();
        addrs.extend(self.known.iter().copied());
        addrs.sort();
        addrs.dedup();
        addrs.truncate(limits::MAX_PEER_ADDRS);
        addrs
    }

    /// Forgets session `id` and has it closed for `reason`.
    fn close(&mut self, id: u64, reason: DisconnectReason<E>) {
        if self.links.remove(&id).is_some() {
            self.actions
                .push_back(PeerAction::Disconnect { id, reason });
        }
    }

    /// Remembers a listen address learnt from a peer, while there is room.
    fn learn(&mut self, addr: SocketAddr) {
        if self.known.len() < limits::MAX_PEER_ADDRS {
            self.known.insert(addr);
        }
    }

    /// Dials known addresses while there is room for learnt dialers, in address order.
    fn dial_known(&mut self, now: Instant) {
        let mut known: Vec<SocketAddr> = self.known.iter().copied().collect();
        known.sort_unstable();
        for addr in known {
            if self.learned.len() >= self.max_learned {
                return;
            }
            self.handle_learned(now, addr);
        }
    }
}

/// How one connection ended, for its dialer's back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handshake failed (or the node was stopping).
    Failed,
    /// The handshake succeeded but the node did not keep the session (a duplicate,
    /// itself, banned).
    Refused,
    /// The node kept the session until it ended.
    Kept,
}

/// What a dialer does after a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextDial {
    /// Dial again after this delay.
    After(Duration),
    /// Stop: a learnt address failed too often.
    GiveUp,
}

/// One dialer's pacing: exponential back-off, reset only by a session the node kept,
/// and for a [`Redial::Learned`] address, giving up after
/// [`limits::LEARNED_DIAL_FAILURES`] failures in a row. Input: each connection's
/// [`Outcome`]; output: how long to wait before the next dial. No I/O, no clock: the
/// driver sleeps for the delay.
#[derive(Debug, Clone)]
pub(crate) struct Redialer {
    redial: Redial,
    backoff: Backoff,
    failures: u32,
}

impl Redialer {
    pub(crate) fn new(redial: Redial, min: Duration, max: Duration) -> Self {
        Redialer {
            redial,
            backoff: Backoff::new(min, max),
            failures: 0,
        }
    }

    /// A connection ended with `outcome`: when to dial again.
    pub(crate) fn handle_outcome(&mut self, outcome: Outcome) -> NextDial {
        if outcome == Outcome::Kept {
            self.backoff.reset();
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        if self.redial == Redial::Learned && self.failures >= limits::LEARNED_DIAL_FAILURES {
            return NextDial::GiveUp;
        }
        NextDial::After(self.backoff.next_delay())
    }

    /// Failures in a row so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Direction, SessionError};

    type Table = PeerTable<String>;

    const BAN: Duration = Duration::from_secs(60);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("valid address")
    }

    fn table(ours: &str) -> Table {
        PeerTable::new(Some(addr(ours)), &[], true, 2, BAN)
    }

    fn outbound(id: u64, to: &str) -> Link {
        Link {
            id,
            direction: Direction::Outbound,
            observed: addr(to),
            claimed: Some(addr(to)),
        }
    }

    fn inbound(id: u64, from: &str, claims: &str) -> Link {
        Link {
            id,
            direction: Direction::Inbound,
            observed: addr(from),
            claimed: Some(addr(claims)),
        }
    }

    fn offence() -> Offence<String> {
        Offence::Session(SessionError::FrameTooLarge { max: 1 })
    }

    fn actions(table: &mut Table) -> Vec<PeerAction<String>> {
        std::iter::from_fn(|| table.poll_action()).collect()
    }

    /// The actions, as (kind, session or address) for comparing.
    fn summary(actions: &[PeerAction<String>]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                PeerAction::Disconnect { id, reason } => format!("disconnect {id}: {reason}"),
                PeerAction::Ban { addr, .. } => format!("ban {addr}"),
                PeerAction::Dial { addr, redial } => format!("dial {addr} {redial:?}"),
            })
            .collect()
    }

    #[test]
    fn admission_refuses_self_and_banned_and_keeps_others() {
        let now = Instant::now();
        let mut t = table("127.0.0.1:9000");
        let own = inbound(1, "127.0.0.1:40000", "127.0.0.1:9000");
        assert!(matches!(
            t.handle_up(now, own),
            Err(DisconnectReason::SelfConnection)
        ));
        t.handle_offence(now, addr("127.0.0.1:40001"), offence());
        assert_eq!(summary(&actions(&mut t)), ["ban 127.0.0.1:40001"]);
        let banned = inbound(2, "127.0.0.1:40001", "127.0.0.1:9001");
        assert!(matches!(
            t.handle_up(now, banned),
            Err(DisconnectReason::AlreadyBanned)
        ));
        assert!(t.handle_up(now, outbound(3, "127.0.0.1:9002")).is_ok());
        assert!(actions(&mut t).is_empty());
        assert_eq!(
            t.reached(),
            HashSet::from([addr("127.0.0.1:9002")]),
            "only admitted sessions count"
        );
        // The admitted peer's listen address is learnt, and offered to other peers.
        assert_eq!(t.addrs_for(4), [addr("127.0.0.1:9002")]);
        assert!(t.addrs_for(3).contains(&addr("127.0.0.1:9002")), "learnt");
    }

    #[test]
    fn a_ban_closes_every_session_it_covers_and_expires() {
        let now = Instant::now();
        let mut t = table("127.0.0.1:9000");
        // Off loopback a ban covers the whole IP address.
        t.handle_up(now, inbound(1, "10.0.0.5:40000", "10.0.0.5:9001"))
            .expect("kept");
        t.handle_up(now, inbound(2, "10.0.0.5:40001", "10.0.0.5:9002"))
            .expect("kept");
        t.handle_up(now, inbound(3, "10.0.0.6:40000", "10.0.0.6:9001"))
            .expect("kept");
        t.handle_misbehaved(now, 1, offence());
        let done = summary(&actions(&mut t));
        assert_eq!(
            done,
            [
                "disconnect 1: banned: frame above the 1-byte limit",
                "ban 10.0.0.5:40000",
                "disconnect 2: banned: frame above the 1-byte limit",
            ]
        );
        // The whole IP address is banned until the ban ends.
        assert!(t.is_banned(addr("10.0.0.5:50000"), now + BAN - Duration::from_millis(1)));
        assert!(!t.is_banned(addr("10.0.0.5:50000"), now + BAN));
        assert!(!t.is_banned(addr("10.0.0.6:40000"), now));
        // A session that ended is forgotten: a later down is harmless.
        t.handle_down(1);
        assert!(actions(&mut t).is_empty());
        // After the ban, the address is admitted again.
        assert!(
            t.handle_up(now + BAN, inbound(4, "10.0.0.5:40002", "10.0.0.5:9001"))
                .is_ok()
        );
    }

    #[test]
    fn loopback_bans_the_socket_address_only() {
        let now = Instant::now();
        let mut t = table("127.0.0.1:9000");
        t.handle_up(now, inbound(1, "127.0.0.1:40000", "127.0.0.1:9001"))
            .expect("kept");
        t.handle_up(now, outbound(2, "127.0.0.1:9003"))
            .expect("kept");
        t.handle_misbehaved(now, 1, offence());
        assert_eq!(
            summary(&actions(&mut t)),
            [
                "disconnect 1: banned: frame above the 1-byte limit",
                "ban 127.0.0.1:40000",
            ]
        );
        assert!(
            !t.is_banned(addr("127.0.0.1:9001"), now),
            "a claim is not banned"
        );
        assert!(!t.is_banned(addr("127.0.0.1:9003"), now));
    }

    #[test]
    fn duplicates_keep_the_connection_of_the_smaller_address() {
        let now = Instant::now();
        // This node has the smaller address: its outbound session wins, the inbound one
        // claiming the same peer is closed, whichever came first.
        let mut small = table("127.0.0.1:9000");
        small
            .handle_up(now, inbound(1, "127.0.0.1:40000", "127.0.0.1:9001"))
            .expect("kept");
        small
            .handle_up(now, outbound(2, "127.0.0.1:9001"))
            .expect("kept");
        assert_eq!(
            summary(&actions(&mut small)),
            ["disconnect 1: already connected to this peer"]
        );
        assert!(matches!(
            small.handle_up(now, inbound(3, "127.0.0.1:40001", "127.0.0.1:9001")),
            Err(DisconnectReason::Duplicate)
        ));
        // This node has the larger address: it never closes its outbound session for a
        // claim, and refuses a new outbound one when the peer already reached it.
        let mut large = table("127.0.0.1:9005");
        large
            .handle_up(now, outbound(1, "127.0.0.1:9001"))
            .expect("kept");
        large
            .handle_up(now, inbound(2, "127.0.0.1:40000", "127.0.0.1:9001"))
            .expect("kept beside it");
        assert!(actions(&mut large).is_empty());
        let mut later = table("127.0.0.1:9005");
        later
            .handle_up(now, inbound(1, "127.0.0.1:40000", "127.0.0.1:9001"))
            .expect("kept");
        assert!(matches!(
            later.handle_up(now, outbound(2, "127.0.0.1:9001")),
            Err(DisconnectReason::Duplicate)
        ));
        // Two outbound sessions to one address: the second is refused.
        assert!(matches!(
            large.handle_up(now, outbound(3, "127.0.0.1:9001")),
            Err(DisconnectReason::Duplicate)
        ));
    }

    #[test]
    fn learnt_addresses_are_dialled_within_the_cap_and_not_when_banned() {
        let now = Instant::now();
        let mut t = table("127.0.0.1:9000");
        t.handle_offence(now, addr("127.0.0.1:9001"), offence());
        let _ = actions(&mut t);
        t.handle_peers(
            now,
            vec![
                addr("127.0.0.1:9000"),
                addr("127.0.0.1:9001"),
                addr("127.0.0.1:9004"),
                addr("127.0.0.1:9003"),
                addr("127.0.0.1:9002"),
            ],
        );
        // Itself and the banned address are skipped; two dialers at most, in order.
        assert_eq!(
            summary(&actions(&mut t)),
            ["dial 127.0.0.1:9002 Learned", "dial 127.0.0.1:9003 Learned"]
        );
        // A dialer that gives up makes room for the next known address.
        t.handle_dialer_stopped(now, addr("127.0.0.1:9002"));
        assert_eq!(summary(&actions(&mut t)), ["dial 127.0.0.1:9004 Learned"]);
        // Once the ban ends, the banned address may be dialled too.
        t.handle_dialer_stopped(now + BAN, addr("127.0.0.1:9003"));
        assert_eq!(summary(&actions(&mut t)), ["dial 127.0.0.1:9001 Learned"]);
    }

    #[test]
    fn pinned_addresses_are_dialled_again_for_good() {
        let now = Instant::now();
        let mut t = table("127.0.0.1:9000");
        t.connect(addr("127.0.0.1:9001"));
        assert_eq!(summary(&actions(&mut t)), ["dial 127.0.0.1:9001 Always"]);
        t.connect(addr("127.0.0.1:9001"));
        assert!(actions(&mut t).is_empty(), "one dialer per address");
        t.handle_dialer_stopped(now, addr("127.0.0.1:9001"));
        assert_eq!(summary(&actions(&mut t)), ["dial 127.0.0.1:9001 Always"]);
    }

    #[test]
    fn peer_exchange_off_dials_nothing_learnt() {
        let now = Instant::now();
        let mut t: Table = PeerTable::new(Some(addr("127.0.0.1:9000")), &[], false, 2, BAN);
        t.handle_peers(now, vec![addr("127.0.0.1:9001")]);
        t.handle_learned(now, addr("127.0.0.1:9002"));
        assert!(actions(&mut t).is_empty());
    }

    #[test]
    fn redials_back_off_and_learnt_ones_give_up() {
        let min = Duration::from_millis(100);
        let max = Duration::from_millis(350);
        let mut always = Redialer::new(Redial::Always, min, max);
        let delays: Vec<NextDial> = (0..5)
            .map(|_| always.handle_outcome(Outcome::Failed))
            .collect();
        let ms = |n| NextDial::After(Duration::from_millis(n));
        assert_eq!(delays, [ms(100), ms(200), ms(350), ms(350), ms(350)]);
        // A refused session counts as a failure; only a kept one resets the back-off.
        assert_eq!(always.handle_outcome(Outcome::Refused), ms(350));
        assert_eq!(always.handle_outcome(Outcome::Kept), ms(100));
        assert_eq!(always.handle_outcome(Outcome::Failed), ms(200));

        let mut learnt = Redialer::new(Redial::Learned, min, max);
        for _ in 1..limits::LEARNED_DIAL_FAILURES {
            assert!(matches!(
                learnt.handle_outcome(Outcome::Failed),
                NextDial::After(_)
            ));
        }
        assert_eq!(learnt.handle_outcome(Outcome::Failed), NextDial::GiveUp);
        assert_eq!(learnt.failures(), limits::LEARNED_DIAL_FAILURES);
    }
}
