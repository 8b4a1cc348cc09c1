//! Which peer to sync from, when, and how many batches at once, decided without
//! sockets or a ledger: [`SyncState`] turns sessions and sync batches into
//! [`SyncAction`]s.

use std::collections::{BTreeMap, VecDeque};

use ledger_core::BlockHash;

use crate::gossip;
use crate::limits;
use crate::protocol::TipInfo;

/// A decision of the [`SyncState`], for the node task to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncAction {
    /// Send peer `peer` a `GetBlocks` for at most `limit` blocks, with this node's block
    /// locator, headed by `after` when given (pipelining behind a batch not yet
    /// applied). Its reply comes back as [`SyncState::handle_blocks`].
    Request {
        /// The session.
        peer: u64,
        /// The last block of the batch received from `peer`, put first in the locator.
        after: Option<BlockHash>,
        /// Most blocks asked for.
        limit: u32,
    },
}

/// What the node task does with a `Blocks` reply, as [`SyncState::handle_blocks`]
/// decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Nobody asked this peer (or the peer is unknown): ignore the blocks.
    Unsolicited,
    /// The reply is empty: the peer has nothing after what was asked, this sync is
    /// complete.
    Complete,
    /// Hand the blocks to signature verification, then apply them and report with
    /// [`SyncState::handle_verified`]. The next request to the peer is queued already.
    Verify,
}

/// One peer's part in the sync.
#[derive(Debug, Default, Clone, Copy)]
struct PeerSync {
    /// A `GetBlocks` was sent and not yet answered: at most one per peer, whose reply
    /// continues the sync.
    in_flight: bool,
    /// A request held back by [`limits::SYNC_BATCHES`], sent once there is room: after
    /// the given block, or from our locator for `None`.
    deferred: Option<Option<BlockHash>>,
    /// A batch from this peer left orphans while a request was in flight: the next
    /// request starts from our locator rather than after the reply being awaited.
    resync: bool,
}

/// The node's block sync as a state machine: which peers to ask for blocks, the request
/// in flight to each, the requests waiting for room, and the batches being verified or
/// applied, so that at most [`limits::SYNC_BATCHES`] batches are held at once.
///
/// # Calling contract
///
/// None of its functions perform I/O, read a clock or touch the ledger: the node task
/// (the driver) owns the ledger, builds the locators and moves the blocks; this state
/// decides whom to ask, when, and for how many. The driver:
///
/// - feeds it inputs, the `handle_*` functions: a session was kept
///   ([`handle_peer_up`](Self::handle_peer_up), with its announced tip and ours), a
///   session ended ([`handle_peer_down`](Self::handle_peer_down)), a `Blocks` reply
///   arrived ([`handle_blocks`](Self::handle_blocks), whose result says whether to verify
///   it), a batch came back from verification and was applied or dropped
///   ([`handle_verified`](Self::handle_verified)); and the application's commands, a
///   sync with one peer ([`request_sync`](Self::request_sync), for a block whose parent
///   is unknown) or with every peer ([`request_sync_all`](Self::request_sync_all));
/// - after each input, polls [`poll_action`](Self::poll_action) until it returns `None`
///   and carries out every [`SyncAction`] in order; the state has already counted the
///   requests it asked for;
/// - reads it through queries that change nothing: [`load`](Self::load), and in unit
///   tests `is_deferred` and `in_flight`.
///
/// Inputs about one session come in the order the session lived: `handle_peer_up`
/// before anything else about it, `handle_peer_down` last; inputs about unknown
/// sessions are ignored. Every batch that [`handle_blocks`](Self::handle_blocks)
/// sent to verification is reported once to [`handle_verified`](Self::handle_verified),
/// also when its peer has left meanwhile, since it holds its place until then.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Established sessions, by number (so deferred requests resume in that order).
    peers: BTreeMap<u64, PeerSync>,
    /// Batches received and handed to verification, not yet applied.
    queued: usize,
    actions: VecDeque<SyncAction>,
}

impl SyncState {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The next decision to carry out, oldest first.
    pub(crate) fn poll_action(&mut self) -> Option<SyncAction> {
        self.actions.pop_front()
    }

    /// Session `peer` was kept: syncs from it if its announced tip `theirs` wins fork
    /// choice against `ours` ([`gossip::beats`]: a higher final block first, then more
    /// work, then the smaller hash).
    pub(crate) fn handle_peer_up(&mut self, peer: u64, theirs: &TipInfo, ours: &TipInfo) {
        self.peers.insert(peer, PeerSync::default());
        if gossip::beats(theirs, ours) {
            self.request(peer, None);
        }
    }

    /// Session `peer` ended: the room its unanswered request held in
    /// [`limits::SYNC_BATCHES`] goes to requests that waited for it. Batches it sent
    /// keep their place until [`handle_verified`](Self::handle_verified).
    pub(crate) fn handle_peer_down(&mut self, peer: u64) {
        if let Some(left) = self.peers.remove(&peer)
            && left.in_flight
        {
            self.resume_deferred();
        }
    }

    /// A `Blocks` reply from `peer` arrived, ending with block `last` (`None` for an
    /// empty reply). A non-empty batch answered the request in flight and is to be
    /// verified; the next request to the peer is queued at once (pipelining: the peer
    /// prepares the next batch while this one is verified and applied), after `last`,
    /// or from our locator if an earlier batch left orphans.
    pub(crate) fn handle_blocks(&mut self, peer: u64, last: Option<BlockHash>) -> Batch {
        let Some(state) = self.peers.get_mut(&peer) else {
            return Batch::Unsolicited;
        };
        if !state.in_flight {
            return Batch::Unsolicited;
        }
        state.in_flight = false;
        let Some(last) = last else {
            return Batch::Complete;
        };
        let next = if std::mem::take(&mut state.resync) {
            None
        } else {
            Some(last)
        };
        self.queued += 1;
        self.request(peer, next);
        Batch::Verify
    }

    /// A batch from `peer` came back from verification and was applied (or dropped,
    /// its peer having left): its place is free. If it left `orphaned` blocks (it does
    /// not connect to our chain), the peer is asked again from our locator, now or
    /// after the reply in flight. Then requests that waited for room are sent.
    pub(crate) fn handle_verified(&mut self, peer: u64, orphaned: bool) {
        self.queued = self.queued.saturating_sub(1);
        if orphaned {
            match self.peers.get_mut(&peer) {
                Some(state) if state.in_flight => state.resync = true,
                Some(_) => self.request(peer, None),
                None => {}
            }
        }
        self.resume_deferred();
    }

    /// Syncs with `peer` from our locator (a block from it lacks its parent). Does
    /// nothing while a request to it is in flight: its reply continues the sync.
    pub(crate) fn request_sync(&mut self, peer: u64) {
        self.request(peer, None);
    }

    /// Syncs with every peer from our locator, in session order; returns how many
    /// peers there are.
    pub(crate) fn request_sync_all(&mut self) -> usize {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for id in &ids {
            self.request(*id, None);
        }
        ids.len()
    }

    /// Sync batches held now (see [`limits::SYNC_BATCHES`]): requested from peers and
    /// not yet answered, or received and not yet applied.
    pub(crate) fn load(&self) -> usize {
        let requested = self.peers.values().filter(|p| p.in_flight).count();
        self.queued.saturating_add(requested)
    }

    /// Whether a request to `peer` waits for room.
    #[cfg(test)]
    pub(crate) fn is_deferred(&self, peer: u64) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.deferred.is_some())
    }

    /// Whether a request to `peer` awaits its reply.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, peer: u64) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.in_flight)
    }

    /// Asks `peer` for the blocks after our best chain, or after `after` when
    /// pipelining behind a batch not yet applied. Does nothing while a request to the
    /// peer is in flight, and defers the request while [`limits::SYNC_BATCHES`] batches
    /// are held.
    fn request(&mut self, peer: u64, after: Option<BlockHash>) {
        let load = self.load();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.in_flight {
            return;
        }
        if load >= limits::SYNC_BATCHES {
            state.deferred = Some(after);
            return;
        }
        state.deferred = None;
        state.in_flight = true;
        let limit = u32::try_from(limits::MAX_BLOCKS_PER_REPLY).unwrap_or(u32::MAX);
        self.actions
            .push_back(SyncAction::Request { peer, after, limit });
    }

    /// Sends the requests held back by [`limits::SYNC_BATCHES`], in session order,
    /// while there is room.
    fn resume_deferred(&mut self) {
        let waiting: Vec<(u64, Option<BlockHash>)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.deferred.map(|after| (*id, after)))
            .collect();
        for (id, after) in waiting {
            if self.load() >= limits::SYNC_BATCHES {
                return;
            }
            self.request(id, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Height;

    fn tip(final_height: u64, work: u128) -> TipInfo {
        TipInfo {
            hash: BlockHash::from_byte_array([7; 32]),
            height: Height(10),
            work,
            final_height: Height(final_height),
        }
    }

    fn block(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn limit() -> u32 {
        u32::try_from(limits::MAX_BLOCKS_PER_REPLY).expect("fits")
    }

    fn request(peer: u64, after: Option<BlockHash>) -> SyncAction {
        SyncAction::Request {
            peer,
            after,
            limit: limit(),
        }
    }

    fn drain(sync: &mut SyncState) -> Vec<SyncAction> {
        std::iter::from_fn(|| sync.poll_action()).collect()
    }

    /// A state with peers `1..=n` up, each announcing a tip that beats ours.
    fn syncing_from(n: u64) -> SyncState {
        let mut sync = SyncState::new();
        for peer in 1..=n {
            sync.handle_peer_up(peer, &tip(0, 2), &tip(0, 1));
        }
        sync
    }

    #[test]
    fn a_peer_whose_tip_does_not_beat_ours_is_not_synced_from() {
        let mut sync = SyncState::new();
        sync.handle_peer_up(1, &tip(0, 5), &tip(0, 5)); // the same tip
        sync.handle_peer_up(2, &tip(0, 4), &tip(0, 5)); // less work
        sync.handle_peer_up(3, &tip(1, 9), &tip(2, 5)); // more work, lower final block
        assert_eq!(drain(&mut sync), vec![]);
        assert_eq!(sync.load(), 0);
    }

    #[test]
    fn a_peer_with_a_higher_final_height_is_synced_from_even_with_less_work() {
        let mut sync = SyncState::new();
        sync.handle_peer_up(1, &tip(3, 1), &tip(2, 100));
        assert_eq!(drain(&mut sync), vec![request(1, None)]);
        assert!(sync.in_flight(1));
    }

    #[test]
    fn on_equal_work_the_smaller_hash_is_synced_from() {
        let with_hash = |byte| TipInfo {
            hash: BlockHash::from_byte_array([byte; 32]),
            ..tip(1, 5)
        };
        let mut sync = SyncState::new();
        sync.handle_peer_up(1, &with_hash(9), &with_hash(3));
        assert_eq!(drain(&mut sync), vec![]);
        sync.handle_peer_up(2, &with_hash(1), &with_hash(3));
        assert_eq!(drain(&mut sync), vec![request(2, None)]);
    }

    #[test]
    fn pipelining_never_holds_more_than_sync_batches() {
        let peers = 2 * limits::SYNC_BATCHES as u64;
        let mut sync = syncing_from(peers);
        // Only the first `SYNC_BATCHES` peers are asked; the others wait, in order.
        let first = drain(&mut sync);
        let expected: Vec<SyncAction> = (1..=limits::SYNC_BATCHES as u64)
            .map(|peer| request(peer, None))
            .collect();
        assert_eq!(first, expected);
        assert!(sync.is_deferred(limits::SYNC_BATCHES as u64 + 1));

        // A driver playing peers and the verifier in a fixed pseudo-random order: it
        // counts what is held itself (requests sent and unanswered, batches being
        // verified) and checks the bound after every input.
        let mut in_flight: Vec<u64> = first
            .iter()
            .map(|SyncAction::Request { peer, .. }| *peer)
            .collect();
        let mut verifying: VecDeque<u64> = VecDeque::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next_block = 0u8;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let reply = !in_flight.is_empty() && (verifying.is_empty() || seed.is_multiple_of(2));
            if reply {
                let peer =
                    in_flight.remove(usize::try_from(seed % 7).expect("small") % in_flight.len());
                next_block = next_block.wrapping_add(1);
                // Mostly full batches, sometimes the empty reply that ends a sync.
                let last = (!seed.is_multiple_of(5)).then(|| block(next_block));
                match sync.handle_blocks(peer, last) {
                    Batch::Verify => verifying.push_back(peer),
                    Batch::Complete => assert!(last.is_none()),
                    Batch::Unsolicited => panic!("peer {peer} had a request in flight"),
                }
            } else if let Some(peer) = verifying.pop_front() {
                sync.handle_verified(peer, seed.is_multiple_of(11));
            } else {
                // Nothing held: start again with everyone.
                assert_eq!(
                    sync.request_sync_all(),
                    usize::try_from(peers).expect("small")
                );
            }
            for SyncAction::Request { peer, .. } in drain(&mut sync) {
                assert!(!in_flight.contains(&peer), "one request per peer at a time");
                in_flight.push(peer);
            }
            let held = in_flight.len() + verifying.len();
            assert!(held <= limits::SYNC_BATCHES, "{held} batches held");
            assert_eq!(sync.load(), held);
        }
    }

    #[test]
    fn a_departing_peers_room_goes_to_deferred_requests() {
        let mut sync = syncing_from(limits::SYNC_BATCHES as u64 + 2);
        drain(&mut sync);
        let waiting = limits::SYNC_BATCHES as u64 + 1;
        assert!(sync.is_deferred(waiting));
        // A peer without a request in flight frees no room.
        sync.handle_peer_up(99, &tip(0, 1), &tip(0, 1));
        sync.handle_peer_down(99);
        assert_eq!(drain(&mut sync), vec![]);
        // Peer 2's unanswered request frees room for the first waiting peer only.
        sync.handle_peer_down(2);
        assert_eq!(drain(&mut sync), vec![request(waiting, None)]);
        assert!(!sync.is_deferred(waiting));
        assert!(sync.is_deferred(waiting + 1));
        assert_eq!(sync.load(), limits::SYNC_BATCHES);
    }

    #[test]
    fn a_deferred_request_keeps_the_block_it_continues_after() {
        let mut sync = syncing_from(limits::SYNC_BATCHES as u64);
        drain(&mut sync);
        // Peer 1's batch takes a place while verified: its next request waits.
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Verify);
        assert_eq!(drain(&mut sync), vec![]);
        assert!(sync.is_deferred(1));
        sync.handle_verified(1, false);
        assert_eq!(drain(&mut sync), vec![request(1, Some(block(1)))]);
    }

    #[test]
    fn a_batch_that_left_orphans_resyncs_after_the_request_in_flight() {
        let mut sync = syncing_from(1);
        drain(&mut sync);
        // The batch goes to verification and the next request out at once.
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Verify);
        assert_eq!(drain(&mut sync), vec![request(1, Some(block(1)))]);
        // Applied, it left orphans: the request in flight is awaited, not doubled.
        sync.handle_verified(1, true);
        assert_eq!(drain(&mut sync), vec![]);
        // Its reply is continued from our locator rather than after its last block.
        assert_eq!(sync.handle_blocks(1, Some(block(2))), Batch::Verify);
        assert_eq!(drain(&mut sync), vec![request(1, None)]);
        // Once; then pipelining continues after the last block again.
        sync.handle_verified(1, false);
        assert_eq!(sync.handle_blocks(1, Some(block(3))), Batch::Verify);
        assert_eq!(drain(&mut sync), vec![request(1, Some(block(3)))]);
    }

    #[test]
    fn a_batch_that_left_orphans_resyncs_at_once_when_nothing_is_in_flight() {
        let mut sync = syncing_from(1);
        drain(&mut sync);
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Verify);
        drain(&mut sync);
        // The peer has nothing more, then the batch turns out not to connect.
        assert_eq!(sync.handle_blocks(1, None), Batch::Complete);
        sync.handle_verified(1, true);
        assert_eq!(drain(&mut sync), vec![request(1, None)]);
    }

    #[test]
    fn replies_nobody_asked_for_are_ignored() {
        let mut sync = SyncState::new();
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Unsolicited);
        sync.handle_peer_up(1, &tip(0, 1), &tip(0, 1));
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Unsolicited);
        assert_eq!(sync.handle_blocks(1, None), Batch::Unsolicited);
        assert_eq!(drain(&mut sync), vec![]);
        assert_eq!(sync.load(), 0);
    }

    #[test]
    fn a_sync_request_waits_for_the_reply_in_flight() {
        let mut sync = syncing_from(1);
        drain(&mut sync);
        sync.request_sync(1);
        assert_eq!(sync.request_sync_all(), 1);
        assert_eq!(drain(&mut sync), vec![]);
        assert_eq!(sync.handle_blocks(1, None), Batch::Complete);
        sync.request_sync(1);
        assert_eq!(drain(&mut sync), vec![request(1, None)]);
    }

    #[test]
    fn a_departed_peers_batch_keeps_its_place_until_verified() {
        let mut sync = syncing_from(limits::SYNC_BATCHES as u64 + 1);
        drain(&mut sync);
        let waiting = limits::SYNC_BATCHES as u64 + 1;
        // Peer 1's batch takes the place its request held: its next request waits too.
        assert_eq!(sync.handle_blocks(1, Some(block(1))), Batch::Verify);
        assert_eq!(drain(&mut sync), vec![]);
        // Peer 1 leaves with nothing in flight: its batch still holds a place.
        sync.handle_peer_down(1);
        assert_eq!(drain(&mut sync), vec![]);
        assert_eq!(sync.load(), limits::SYNC_BATCHES);
        // Verified (and dropped by the driver), the batch frees it for the waiting peer;
        // the departed peer is not asked again.
        sync.handle_verified(1, true);
        assert_eq!(drain(&mut sync), vec![request(waiting, None)]);
        assert_eq!(sync.load(), limits::SYNC_BATCHES);
    }
}
