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
/// - reads it through [`load`](Self::load), which changes nothing.
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
