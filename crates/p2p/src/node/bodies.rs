//! Sealed bodies between nodes.
//!
//! - **Pushed with their transaction.** A transaction submitted with its bodies
//!   ([`NodeHandle::submit_sealed`](crate::NodeHandle::submit_sealed)) is relayed as
//!   usual, and each peer whose handshake proved a key gets, right after it, the
//!   bodies sealed to that key, and no other.
//! - **Pulled when missing.** When blocks enter the chain, the node looks in its vault
//!   (off this task) for the bodies their transactions name; it asks every peer that
//!   proved a key for those it lacks, and again each peer that connects later, until a
//!   peer sends the body or says it is not for this node (`Denied`).
//! - **Served only against the proof.** A `GetBodies` is answered with the bodies
//!   sealed to the key the asker's handshake proved; every other body it asked for,
//!   held here, is answered `Denied`, and a peer that proved no key gets `Denied` for
//!   everything. A body this node does not hold yet is left out, and the ask is
//!   remembered (a bounded number): a peer may ask before the body reached this node,
//!   and gets it, or `Denied`, when it arrives.
//! - **Kept only if checked and ours.** A body is kept only if it matches a sealed
//!   reference of a transaction this node has seen (id, length and hash of the
//!   ciphertext) and is sealed to this node's key; anything else is dropped. A body
//!   whose subject asked for erasure ([`BodyAccess::Erased`]) is dropped too, and not
//!   asked for: a lagging peer's old bodies of an erased patient are never stored.
//! - **Served only under consent.** Each body is kept with its policy label
//!   ([`Policy::labelled_refs`]), and a body asked for is served only if the policy
//!   grants the asker access now ([`Policy::body_access`]); otherwise `Denied`. Every
//!   body served is reported ([`NodeEvent::BodiesServed`]), so the front end can
//!   record the read on chain.
//!
//! The vault is read and written on the blocking pool, never on the ledger task: the
//! results come back as [`VaultDone`] messages.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use ledger_core::sealed::{BodyAccess, BodyId, BodyLabel, SealedBody, SealedRef};
use ledger_core::{AccountId, Hash, Policy, Transaction, TxBody};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::NodeTask;
use crate::NodeEvent;
use crate::limits;
use crate::protocol::Message;
use crate::store::BlockStore;
use crate::vault::Vault;

/// What a vault job on the blocking pool reports to the ledger task.
pub(crate) enum VaultDone {
    /// These references (with their labels) name bodies the vault lacks.
    Missing(Vec<(SealedRef, BodyLabel)>),
    /// The answer to a peer's `GetBodies` (what is not here is left out): the bodies
    /// held, with their labels, still to be checked against consent.
    Served {
        peer: u64,
        bodies: Vec<(SealedBody, BodyLabel)>,
    },
    /// These bodies were kept (each with the peer it came from); empty if the vault
    /// failed.
    Kept(Vec<(Option<SocketAddr>, BodyLabel, SealedBody)>),
}

/// The node's side of the body exchange: who it is, where it keeps bodies, the
/// references it saw lately and the bodies it waits for.
pub(crate) struct BodyExchange {
    /// The key this node proves, and the vault it keeps bodies for it in: without
    /// both, the node exchanges no bodies.
    keeper: Option<(AccountId, Vault)>,
    /// References of recent transactions, with their labels, by ciphertext hash,
    /// oldest first out.
    recent: HashMap<Hash, (SealedRef, BodyLabel)>,
    recent_order: VecDeque<Hash>,
    /// Bodies this node lacks and may read, by ciphertext hash.
    wanted: HashMap<Hash, (SealedRef, BodyLabel)>,
    /// Peers that asked for a body that was not here, by ciphertext hash, oldest
    /// first out (some bodies never come here, and their asks go stale).
    awaited: HashMap<Hash, Vec<u64>>,
    awaited_order: VecDeque<Hash>,
    /// Bodies checked and waiting to be kept while the vault keeps the previous lot:
    /// whatever arrived meanwhile goes in one durable commit.
    to_keep: Vec<(Option<SocketAddr>, SealedRef, BodyLabel, SealedBody)>,
    /// A keeping job is under way.
    keeping: bool,
    done: mpsc::Sender<VaultDone>,
}

impl BodyExchange {
    pub(crate) fn new(keeper: Option<(AccountId, Vault)>, done: mpsc::Sender<VaultDone>) -> Self {
        BodyExchange {
            keeper,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            wanted: HashMap::new(),
            awaited: HashMap::new(),
            awaited_order: VecDeque::new(),
            to_keep: Vec::new(),
            keeping: false,
            done,
        }
    }

    /// Remembers that `peer` asked for `hashes`, within the bounds: the oldest ask is
    /// forgotten first.
    fn await_bodies(&mut self, peer: u64, hashes: Vec<Hash>) {
        for hash in hashes {
            if let Some(askers) = self.awaited.get_mut(&hash) {
                if !askers.contains(&peer) && askers.len() < limits::MAX_PEERS_AWAITING {
                    askers.push(peer);
                }
                continue;
            }
            self.awaited.insert(hash, vec![peer]);
            self.awaited_order.push_back(hash);
            while self.awaited.len() > limits::MAX_AWAITED_BODIES {
                match self.awaited_order.pop_front() {
                    Some(old) => {
                        self.awaited.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    /// Forgets that `peer` waits for `hashes`: it was answered.
    fn answered(&mut self, peer: u64, hashes: impl Iterator<Item = Hash>) {
        for hash in hashes {
            if let Some(askers) = self.awaited.get_mut(&hash) {
                askers.retain(|p| *p != peer);
                if askers.is_empty() {
                    self.awaited.remove(&hash);
                }
            }
        }
    }

    /// Remembers `refs` so bodies pushed for them are recognised.
    fn remember(&mut self, refs: &[(SealedRef, BodyLabel)]) {
        for labelled in refs {
            let hash = labelled.0.ciphertext_hash;
            if self.recent.insert(hash, *labelled).is_none() {
                self.recent_order.push_back(hash);
            }
        }
        while self.recent_order.len() > limits::MAX_RECENT_REFS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// The reference a delivered body must match, with its label, if this node saw or
    /// wants it.
    fn reference(&self, hash: &Hash) -> Option<(SealedRef, BodyLabel)> {
        self.wanted
            .get(hash)
            .or_else(|| self.recent.get(hash))
            .copied()
    }

    /// Adds references to the wanted set, within its bound; returns those added.
    fn want(&mut self, refs: Vec<(SealedRef, BodyLabel)>) -> Vec<Hash> {
        let mut added = Vec::new();
        for labelled in refs {
            if self.wanted.len() >= limits::MAX_WANTED_BODIES {
                break;
            }
            let hash = labelled.0.ciphertext_hash;
            if self.wanted.insert(hash, labelled).is_none() {
                added.push(hash);
            }
        }
        added
    }
}

/// The sealed references of `tx`, labelled by the policy.
fn refs_of<P: Policy>(policy: &P, tx: &Transaction<P::Payload>) -> Vec<(SealedRef, BodyLabel)> {
    match &tx.body {
        TxBody::App(payload) => policy.labelled_refs(&tx.author, payload),
        TxBody::Transfer { .. } => Vec::new(),
    }
}

impl<P: Policy, S: BlockStore<P::Payload>> NodeTask<P, S> {
    /// Whether `reader` may be given a body labelled `label` now, by the policy.
    fn body_access(&self, label: &BodyLabel, reader: &AccountId) -> BodyAccess {
        self.ledger.policy().body_access(
            self.ledger.genesis(),
            self.ledger.state().app(),
            label,
            reader,
            self.now(),
        )
    }

    /// What `reader` may be given of `body` now: the body itself if it is sealed to the
    /// reader, a copy wrapped to the reader too if consent lets it read a body this
    /// node holds for itself (the configured [`Rewrap`](crate::Rewrap)), or nothing.
    fn give(&self, body: &SealedBody, label: &BodyLabel, reader: &AccountId) -> Option<SealedBody> {
        if self.body_access(label, reader) != BodyAccess::Granted {
            return None;
        }
        if body.is_sealed_to(reader) {
            return Some(body.clone());
        }
        let rewrap = self.shared.config.rewrap.as_ref()?;
        let key = self
            .ledger
            .policy()
            .encryption_key(self.ledger.state().app(), reader)?;
        rewrap(body, label, reader, &key)
    }

    /// Reports the bodies served to `reader`, for the record of reads.
    fn report_served(&mut self, reader: AccountId, served: &[(SealedBody, BodyLabel)]) {
        if served.is_empty() {
            return;
        }
        let bodies: Vec<(BodyId, BodyLabel)> = served
            .iter()
            .map(|(b, label)| (b.body_id, *label))
            .collect();
        self.emit(NodeEvent::BodiesServed { reader, bodies });
    }

    /// Runs `job` on the blocking pool and reports its result to this task.
    fn vault_job(&self, job: impl FnOnce() -> Option<VaultDone> + Send + 'static) {
        let done = self.bodies.done.clone();
        self.shared.tracker.spawn(async move {
            match tokio::task::spawn_blocking(job).await {
                Ok(Some(result)) => {
                    let _ = done.send(result).await;
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "a vault job failed"),
            }
        });
    }

    /// A transaction entered the mempool: remember its references, so its bodies are
    /// recognised when they are pushed.
    pub(super) fn note_tx(&mut self, tx: &Transaction<P::Payload>) {
        if self.bodies.keeper.is_some() {
            let refs = refs_of(self.ledger.policy(), tx);
            self.bodies.remember(&refs);
        }
    }

    /// Blocks entered the chain: look for the bodies their transactions name, and ask
    /// the peers for those the vault lacks.
    pub(super) fn note_blocks(&mut self, hashes: &[ledger_core::BlockHash]) {
        let mut refs = Vec::new();
        for hash in hashes {
            if let Ok(Some(block)) = self.ledger.block(hash) {
                for tx in &block.transactions {
                    refs.extend(refs_of(self.ledger.policy(), tx));
                }
            }
        }
        self.fetch_bodies(refs);
    }

    /// Asks the peers for the bodies `refs` name that the vault lacks.
    pub(super) fn fetch_bodies(&mut self, mut refs: Vec<(SealedRef, BodyLabel)>) {
        let Some((me, vault)) = &self.bodies.keeper else {
            return;
        };
        let (me, vault) = (*me, vault.clone());
        // An erased subject's bodies are neither kept nor asked for.
        refs.retain(|(_, label)| self.body_access(label, &me) != BodyAccess::Erased);
        if refs.is_empty() {
            return;
        }
        self.bodies.remember(&refs);
        self.vault_job(move || {
            let missing: Vec<(SealedRef, BodyLabel)> = refs
                .into_iter()
                .filter(|(r, _)| !vault.contains(&r.ciphertext_hash).unwrap_or(false))
                .collect();
            (!missing.is_empty()).then_some(VaultDone::Missing(missing))
        });
    }

    /// Pushes `bodies` of a transaction just relayed to each peer that proved a key
    /// they are sealed to.
    pub(super) fn push_bodies(&mut self, bodies: &[SealedBody]) {
        // Whoever asked before gets them with the push below (it proved a key).
        for body in bodies {
            self.bodies.awaited.remove(&Hash::of(&body.ciphertext));
        }
        let targets: Vec<(u64, AccountId)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.info.proven.map(|a| (*id, a)))
            .collect();
        for (id, account) in targets {
            let theirs: Vec<SealedBody> = bodies
                .iter()
                .filter(|b| b.is_sealed_to(&account))
                .cloned()
                .collect();
            for chunk in theirs.chunks(limits::MAX_BODIES_PER_MESSAGE) {
                self.send(id, &Message::Bodies(chunk.to_vec()));
            }
        }
    }

    /// Asks peer `id` (every peer that proved a key, if `None`) for `hashes`.
    fn ask_bodies(&mut self, hashes: &[Hash], to: Option<u64>) {
        let targets: Vec<u64> = match to {
            Some(id) => vec![id],
            None => self
                .peers
                .iter()
                .filter(|(_, p)| p.info.proven.is_some())
                .map(|(id, _)| *id)
                .collect(),
        };
        for id in targets {
            for chunk in hashes.chunks(limits::MAX_BODIES_PER_MESSAGE) {
                self.send(id, &Message::GetBodies(chunk.to_vec()));
            }
        }
    }

    /// A peer connected: if it proved a key, ask it for the bodies still wanted.
    pub(super) fn bodies_peer_up(&mut self, id: u64) {
        let proven = self.peers.get(&id).is_some_and(|p| p.info.proven.is_some());
        if proven && !self.bodies.wanted.is_empty() {
            let hashes: Vec<Hash> = self.bodies.wanted.keys().copied().collect();
            self.ask_bodies(&hashes, Some(id));
        }
    }

    /// What a vault job found or did.
    pub(super) fn on_vault_done(&mut self, done: VaultDone) {
        match done {
            VaultDone::Missing(refs) => {
                let added = self.bodies.want(refs);
                if !added.is_empty() {
                    self.ask_bodies(&added, None);
                }
            }
            VaultDone::Served { peer, bodies } => {
                // The asks answered now are forgotten; those for bodies not here stay
                // on record (since the ask came in) and are answered when they arrive.
                let answered: Vec<Hash> = bodies
                    .iter()
                    .map(|(b, _)| Hash::of(&b.ciphertext))
                    .collect();
                let mut denied = Vec::new();
                self.bodies.answered(peer, answered.into_iter());
                let Some(reader) = self.peers.get(&peer).and_then(|p| p.info.proven) else {
                    return;
                };
                // Consent is checked now, on the chain as it is when the answer goes.
                let mut give = Vec::new();
                for (body, label) in bodies {
                    match self.give(&body, &label, &reader) {
                        Some(body) => give.push((body, label)),
                        None => denied.push(Hash::of(&body.ciphertext)),
                    }
                }
                let sent: Vec<SealedBody> = give.iter().map(|(b, _)| b.clone()).collect();
                for chunk in sent.chunks(limits::MAX_BODIES_PER_MESSAGE) {
                    self.send(peer, &Message::Bodies(chunk.to_vec()));
                }
                self.report_served(reader, &give);
                if !denied.is_empty() {
                    self.deny(peer, denied);
                }
            }
            VaultDone::Kept(kept) => {
                self.bodies.keeping = false;
                let mut by_peer: Vec<(Option<SocketAddr>, Vec<Hash>)> = Vec::new();
                for (from, _, body) in &kept {
                    let hash = Hash::of(&body.ciphertext);
                    match by_peer.iter_mut().find(|(f, _)| f == from) {
                        Some((_, hashes)) => hashes.push(hash),
                        None => by_peer.push((*from, vec![hash])),
                    }
                }
                let bodies: Vec<(SealedBody, BodyLabel)> =
                    kept.into_iter().map(|(_, label, b)| (b, label)).collect();
                self.serve_awaited(&bodies);
                for (from, hashes) in by_peer {
                    self.emit(NodeEvent::BodiesKept { hashes, from });
                }
                self.drive_keeping();
            }
        }
    }

    /// Serves `bodies`, just arrived, to the peers that asked for them before: each
    /// gets those sealed to the key it proved that consent grants it now, and `Denied`
    /// for the others.
    fn serve_awaited(&mut self, bodies: &[(SealedBody, BodyLabel)]) {
        type Answer = (AccountId, Vec<(SealedBody, BodyLabel)>, Vec<Hash>);
        let mut served: HashMap<u64, Answer> = HashMap::new();
        for (body, label) in bodies {
            let hash = Hash::of(&body.ciphertext);
            let Some(askers) = self.bodies.awaited.remove(&hash) else {
                continue;
            };
            for peer in askers {
                let Some(account) = self.peers.get(&peer).and_then(|p| p.info.proven) else {
                    continue;
                };
                let given = self.give(body, label, &account);
                let (_, give, deny) = served
                    .entry(peer)
                    .or_insert_with(|| (account, Vec::new(), Vec::new()));
                match given {
                    Some(body) => give.push((body, *label)),
                    None => deny.push(hash),
                }
            }
        }
        for (peer, (account, give, deny)) in served {
            let sent: Vec<SealedBody> = give.iter().map(|(b, _)| b.clone()).collect();
            for chunk in sent.chunks(limits::MAX_BODIES_PER_MESSAGE) {
                self.send(peer, &Message::Bodies(chunk.to_vec()));
            }
            self.report_served(account, &give);
            if !deny.is_empty() {
                self.deny(peer, deny);
            }
        }
    }

    fn deny(&mut self, peer: u64, hashes: Vec<Hash>) {
        for chunk in hashes.chunks(limits::MAX_BODIES_PER_MESSAGE) {
            self.send(peer, &Message::Denied(chunk.to_vec()));
        }
        if let Some(to) = self.peers.get(&peer).map(|p| p.info.addr) {
            self.emit(NodeEvent::BodiesRefused { hashes, to });
        }
    }

    /// Peer `id` asks for bodies: served on the blocking pool, against its proven key.
    pub(super) fn on_get_bodies(&mut self, id: u64, hashes: Vec<Hash>) {
        let proven = self.peers.get(&id).and_then(|p| p.info.proven);
        let (Some(_), Some((_, vault))) = (proven, &self.bodies.keeper) else {
            // No proof (or no vault here): nothing but a refusal.
            self.deny(id, hashes);
            return;
        };
        let vault = vault.clone();
        // On record from now: a body kept before the vault is read is served from the
        // vault, one kept after from the record.
        self.bodies.await_bodies(id, hashes.clone());
        self.vault_job(move || {
            let mut bodies = Vec::new();
            for hash in hashes {
                match vault.get_labelled(&hash) {
                    // Whether the asker may have it is decided on the ledger task.
                    Ok(Some((body, label))) => bodies.push((body, label)),
                    Ok(None) => {}
                    Err(e) => warn!(%hash, error = %e, "cannot read the vault"),
                }
            }
            Some(VaultDone::Served { peer: id, bodies })
        });
    }

    /// Peer `id` sent bodies: each kept if it matches a reference seen here and is
    /// sealed to this node's key.
    pub(super) fn on_bodies(&mut self, id: u64, bodies: Vec<SealedBody>) {
        let from = self.peers.get(&id).map(|p| p.info.addr);
        let Some((me, _)) = &self.bodies.keeper else {
            return;
        };
        let me = *me;
        let mut keep = Vec::new();
        for body in bodies {
            let hash = Hash::of(&body.ciphertext);
            let Some((reference, label)) = self.bodies.reference(&hash) else {
                debug!(?from, %hash, "a body for no transaction seen here");
                continue;
            };
            if let Err(e) = body.check(&reference) {
                debug!(?from, %hash, error = %e, "a body that does not match its reference");
                continue;
            }
            if !body.is_sealed_to(&me) {
                continue;
            }
            self.bodies.wanted.remove(&hash);
            if self.body_access(&label, &me) == BodyAccess::Erased {
                debug!(?from, %hash, "a body of an erased subject, dropped");
                continue;
            }
            keep.push((from, reference, label, body));
        }
        self.bodies.to_keep.extend(keep);
        self.drive_keeping();
    }

    /// Keeps every body waiting to be kept, in one durable commit, unless a commit is
    /// under way: under load, bodies from many messages share one.
    fn drive_keeping(&mut self) {
        let Some((_, vault)) = &self.bodies.keeper else {
            return;
        };
        if self.bodies.keeping || self.bodies.to_keep.is_empty() {
            return;
        }
        let vault = vault.clone();
        let lot = std::mem::take(&mut self.bodies.to_keep);
        self.bodies.keeping = true;
        self.vault_job(move || {
            let (sources, triples): (Vec<Option<SocketAddr>>, Vec<_>) = lot
                .into_iter()
                .map(|(from, reference, label, body)| (from, (reference, label, body)))
                .unzip();
            // Each body was checked against its reference before it queued.
            if let Err(e) = vault.keep_all(&triples) {
                warn!(error = %e, "cannot keep sealed bodies");
                return Some(VaultDone::Kept(Vec::new()));
            }
            let kept = sources
                .into_iter()
                .zip(triples)
                .map(|(from, (_, label, body))| (from, label, body))
                .collect();
            Some(VaultDone::Kept(kept))
        });
    }

    /// Peer `id` refused bodies: they are not for this node, so they are not wanted.
    pub(super) fn on_denied(&mut self, id: u64, hashes: Vec<Hash>) {
        for hash in &hashes {
            self.bodies.wanted.remove(hash);
        }
        if let Some(from) = self.peers.get(&id).map(|p| p.info.addr) {
            self.emit(NodeEvent::BodiesDenied { hashes, from });
        }
    }
}

/// The exchange's channel for vault results, sized for the jobs a node has out.
pub(crate) fn vault_channel() -> (mpsc::Sender<VaultDone>, mpsc::Receiver<VaultDone>) {
    mpsc::channel(limits::SERVE_QUEUE)
}

/// The keeper of a node's configuration: its member key's account and its vault.
pub(crate) fn keeper(config: &crate::NodeConfig) -> Option<(AccountId, Vault)> {
    match (&config.member_key, &config.vault) {
        (Some(key), Some(vault)) => Some((key.account(), vault.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::sealed::BodyId;

    use super::*;

    fn reference(n: u8) -> SealedRef {
        SealedRef {
            body_id: BodyId::from_byte_array([n; 16]),
            commitment: Hash::of(&[n]),
            ciphertext_hash: Hash::of(&[n, n]),
            ciphertext_len: 10,
        }
    }

    #[test]
    fn recent_references_are_bounded_and_wanted_ones_unique() {
        let (done, _rx) = vault_channel();
        let mut exchange = BodyExchange::new(None, done);
        let labelled = |n: u8| (reference(n), BodyLabel::default());
        exchange.remember(&[labelled(1), labelled(1), labelled(2)]);
        assert_eq!(exchange.recent_order.len(), 2);
        assert_eq!(
            exchange.reference(&reference(2).ciphertext_hash),
            Some(labelled(2))
        );
        assert_eq!(exchange.reference(&reference(3).ciphertext_hash), None);
        let added = exchange.want(vec![labelled(3), labelled(3)]);
        assert_eq!(added, [reference(3).ciphertext_hash]);
        assert_eq!(
            exchange.reference(&reference(3).ciphertext_hash),
            Some(labelled(3))
        );
    }

    #[test]
    fn asks_for_absent_bodies_are_remembered_within_bounds() {
        let (done, _rx) = vault_channel();
        let mut exchange = BodyExchange::new(None, done);
        let hash = |n: u64| Hash::of(&n.to_le_bytes());
        // One peer asking twice counts once; many peers for one body are capped.
        exchange.await_bodies(1, vec![hash(0), hash(0)]);
        assert_eq!(exchange.awaited[&hash(0)], [1]);
        for peer in 2..100 {
            exchange.await_bodies(peer, vec![hash(0)]);
        }
        assert_eq!(exchange.awaited[&hash(0)].len(), limits::MAX_PEERS_AWAITING);
        exchange.answered(2, [hash(0)].into_iter());
        assert!(!exchange.awaited[&hash(0)].contains(&2));
        // A flood of asks for bodies that never come: the oldest asks go first, and the
        // newest stay answerable.
        let flood: Vec<Hash> = (1..=limits::MAX_AWAITED_BODIES as u64 + 10)
            .map(hash)
            .collect();
        exchange.await_bodies(7, flood.clone());
        assert_eq!(exchange.awaited.len(), limits::MAX_AWAITED_BODIES);
        assert!(!exchange.awaited.contains_key(&hash(0)));
        assert!(
            exchange
                .awaited
                .contains_key(flood.last().expect("a flood"))
        );
    }
}
