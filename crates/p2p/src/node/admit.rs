//! The ledger task's transaction admission: submissions and relayed transactions queue
//! in the [`Admission`] state machine, the verifier task checks each batch's
//! signatures off this task, and the verified batch enters the mempool here, in
//! arrival order, then goes to peers as `Txs` relays.
//!
//! A third `impl NodeTask` block beside `node.rs` and `node/blocks.rs`.

use std::collections::HashMap;

use bytes::Bytes;
use ledger_core::sealed::SealedBody;
use ledger_core::{Policy, Preverified, Screen, Transaction, TxError, TxId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{NodeEvent, NodeTask};
use crate::admission::{Origin, Waiting};
use crate::gossip;
use crate::handle::SubmitReply;
use crate::limits;
use crate::protocol::encode_txs;
use crate::store::BlockStore;

/// A client submission waiting for the verdicts of its transactions.
pub(super) struct Client<P: Policy> {
    /// Each transaction's verdict, once known.
    verdicts: Vec<Option<Result<TxId, TxError<P::Error>>>>,
    /// The bodies to push after each transaction, if it is accepted.
    bodies: Vec<Vec<SealedBody>>,
    /// Verdicts still to come.
    remaining: usize,
    reply: oneshot::Sender<SubmitReply<P::Error>>,
}

/// An admission batch back from the verifier: the transactions, and which signatures
/// verified.
pub(super) struct Admitted<T> {
    batch: Vec<Waiting<T>>,
    verified: Preverified,
}

/// Verifies the signatures of admission batches on the blocking pool (on every core),
/// one batch at a time, while the ledger task admits the previous one. Pure work on the
/// transactions; the ledger trusts the result only for its own genesis.
pub(super) async fn verify_admissions<T>(
    screen: Screen,
    batches: mpsc::Receiver<Vec<Waiting<T>>>,
    admitted: mpsc::Sender<Admitted<T>>,
    token: CancellationToken,
) where
    T: serde::Serialize + Send + Sync + 'static,
{
    super::in_order_off_the_ledger(
        batches,
        admitted,
        token,
        "admission verification",
        |batch| ((), batch),
        move |(), batch: Vec<Waiting<T>>| {
            let txs: Vec<&Transaction<T>> = batch.iter().map(|w| &w.tx).collect();
            let verified = screen.preverify_txs(&txs);
            Admitted { batch, verified }
        },
        // The batch is lost with the panicking job; the ledger task still hears of it,
        // to free the verifier.
        |()| Admitted {
            batch: Vec::new(),
            verified: Preverified::default(),
        },
    )
    .await;
}

impl<P: Policy, S: BlockStore<P::Payload>> NodeTask<P, S> {
    /// A client's submission: queued whole, or refused whole when the queue is full.
    pub(super) fn submit(
        &mut self,
        txs: Vec<(Transaction<P::Payload>, Vec<SealedBody>)>,
        reply: oneshot::Sender<SubmitReply<P::Error>>,
    ) {
        if txs.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
            return;
        }
        let count = txs.len();
        let (txs, bodies): (Vec<_>, Vec<_>) = txs.into_iter().unzip();
        // Their sealed references are known from now on, as for relayed ones.
        for tx in &txs {
            self.note_tx(tx);
        }
        match self.admission.submit(txs, std::time::Instant::now()) {
            Ok(ticket) => {
                self.clients.insert(
                    ticket,
                    Client {
                        verdicts: (0..count).map(|_| None).collect(),
                        bodies,
                        remaining: count,
                        reply,
                    },
                );
                self.drive_admission();
            }
            Err(full) => {
                let _ = reply.send(Err(full));
            }
        }
    }

    /// Transactions a peer relayed: those not seen before queue for admission; what
    /// does not fit is dropped and reported.
    pub(super) fn on_relayed(&mut self, id: u64, txs: Vec<Transaction<P::Payload>>) {
        let fresh: Vec<Transaction<P::Payload>> = txs
            .into_iter()
            .filter(|tx| {
                let tx_id = tx.id();
                self.seen_txs.record(tx_id) && !self.ledger.is_pending(&tx_id)
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        // A peer pushes a transaction's bodies right after it: the references must be
        // known when they arrive, before the transaction is verified and admitted (a
        // body is kept only if it matches a reference and is sealed to this node).
        for tx in &fresh {
            self.note_tx(tx);
        }
        let dropped = self.admission.relayed(id, fresh, std::time::Instant::now());
        if dropped > 0
            && let Some(peer) = self.peers.get(&id)
        {
            warn!(peer = %peer.info.addr, dropped, "admission queue full, dropping relayed transactions");
            let from = peer.info.addr;
            self.emit(NodeEvent::TxsDropped {
                count: dropped,
                from,
            });
        }
        self.drive_admission();
    }

    /// Hands the next batch to the verifier when it is free and the batch is ready (see
    /// [`Admission`](crate::admission::Admission)); the node loop calls this again at
    /// the admission deadline.
    pub(super) fn drive_admission(&mut self) {
        if let Some(batch) = self.admission.next_batch(std::time::Instant::now())
            && let Err(e) = self.to_admit.try_send(batch)
        {
            // Only one batch is ever under way, so the queue is never full; it closes
            // only as the node stops.
            warn!(error = %e, "the admission verifier is gone");
        }
    }

    /// A batch came back verified: admits it in arrival order, relays what entered the
    /// mempool, pushes the bodies of accepted client transactions, answers the clients
    /// whose submissions are complete, then starts the next batch.
    pub(super) fn on_admitted(&mut self, admitted: Admitted<P::Payload>) {
        self.admission.verified();
        self.ledger.accept_preverified(admitted.verified);
        let now = self.now();
        let mut relay: Vec<(Transaction<P::Payload>, Option<u64>)> = Vec::new();
        let mut complete = Vec::new();
        for Waiting { tx, origin } in admitted.batch {
            let from = origin.peer();
            let addr = from.and_then(|id| self.peers.get(&id)).map(|p| p.info.addr);
            let result = self.ledger.submit_transaction(tx.clone(), now);
            match &result {
                Ok(id) => {
                    self.seen_txs.insert(*id);
                    self.emit(NodeEvent::TxAccepted {
                        id: *id,
                        from: addr,
                    });
                    relay.push((tx, from));
                }
                Err(error) => self.emit(NodeEvent::TxRejected {
                    error: error.clone(),
                    from: addr,
                }),
            }
            match origin {
                Origin::Peer(id) => {
                    if let Err(error) = &result
                        && let Some(offence) = gossip::tx_offence(error)
                    {
                        self.punish(id, offence);
                    }
                }
                Origin::Client { ticket, index } => {
                    if let Some(client) = self.clients.get_mut(&ticket) {
                        client.verdicts[index] = Some(result);
                        client.remaining -= 1;
                        if client.remaining == 0 {
                            complete.push(ticket);
                        }
                    }
                }
            }
        }
        self.relay_txs(&relay);
        for ticket in complete {
            let Some(client) = self.clients.remove(&ticket) else {
                continue;
            };
            let verdicts: Vec<Result<TxId, TxError<P::Error>>> =
                client.verdicts.into_iter().flatten().collect();
            for (verdict, bodies) in verdicts.iter().zip(&client.bodies) {
                if verdict.is_ok() && !bodies.is_empty() {
                    self.push_bodies(bodies);
                }
            }
            let _ = client.reply.send(Ok(verdicts));
        }
        self.drive_admission();
    }

    /// Relays transactions to every peer but the one each came from, in order, as
    /// `Txs` messages of at most [`limits::MAX_TXS_PER_MESSAGE`] transactions and about
    /// [`limits::MAX_RELAY_BYTES`].
    pub(super) fn relay_txs(&mut self, txs: &[(Transaction<P::Payload>, Option<u64>)]) {
        if txs.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        let mut frames_for_all: Option<Vec<Bytes>> = None;
        let mut frames_by_peer: HashMap<u64, Vec<Bytes>> = HashMap::new();
        let everyone = txs.iter().all(|(_, from)| from.is_none());
        for id in ids {
            let frames = if everyone {
                frames_for_all
                    .get_or_insert_with(|| relay_frames(txs.iter().map(|(tx, _)| tx)))
                    .clone()
            } else {
                frames_by_peer
                    .entry(id)
                    .or_insert_with(|| {
                        relay_frames(
                            txs.iter()
                                .filter(|(_, from)| *from != Some(id))
                                .map(|(tx, _)| tx),
                        )
                    })
                    .clone()
            };
            for frame in frames {
                self.send_frame(id, frame);
            }
        }
    }
}

/// `Txs` frames holding `txs` in order, each within the relay limits.
fn relay_frames<'a, T: serde::Serialize + 'a>(
    txs: impl Iterator<Item = &'a Transaction<T>>,
) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut chunk: Vec<&Transaction<T>> = Vec::new();
    let mut bytes = 0;
    for tx in txs {
        let size = ledger_core::codec::encoded_len(tx);
        if !chunk.is_empty()
            && (chunk.len() == limits::MAX_TXS_PER_MESSAGE
                || bytes + size > limits::MAX_RELAY_BYTES)
        {
            frames.push(Bytes::from(encode_txs(&chunk)));
            chunk.clear();
            bytes = 0;
        }
        chunk.push(tx);
        bytes += size;
    }
    if !chunk.is_empty() {
        frames.push(Bytes::from(encode_txs(&chunk)));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::relay_frames;
    use crate::limits;
    use crate::protocol::{Message, decode_message};
    use ledger_core::{BlockHash, Keypair, Timestamp, Transaction, TxBody};

    #[test]
    fn relay_frames_keep_order_and_stay_within_the_limits() {
        let key = Keypair::from_seed([5; 32]);
        let genesis = BlockHash::default();
        // Transactions of about 100 KiB: ten fill a relay's byte budget.
        let big = "x".repeat(100 * 1024);
        let txs: Vec<Transaction<String>> = (1..=25)
            .map(|n| {
                Transaction::new_signed(&genesis, &key, n, Timestamp(n), TxBody::App(big.clone()))
            })
            .collect();
        let frames = relay_frames(txs.iter());
        assert!(frames.len() >= 3, "split by bytes: {} frames", frames.len());
        let mut nonces = Vec::new();
        for frame in &frames {
            assert!(frame.len() <= limits::MAX_RELAY_BYTES + 2 * 100 * 1024);
            match decode_message::<String>(frame, limits::MAX_FRAME_BYTES) {
                Ok(Message::Txs(batch)) => nonces.extend(batch.iter().map(|t| t.nonce)),
                other => panic!("not a Txs relay: {other:?}"),
            }
        }
        assert_eq!(nonces, (1..=25).collect::<Vec<u64>>());
        let small: Vec<Transaction<String>> = (1..=(limits::MAX_TXS_PER_MESSAGE as u64 + 1))
            .map(|n| {
                Transaction::new_signed(&genesis, &key, n, Timestamp(n), TxBody::App(String::new()))
            })
            .collect();
        assert_eq!(relay_frames(small.iter()).len(), 2, "split by count");
        assert!(relay_frames(std::iter::empty::<&Transaction<String>>()).is_empty());
    }
}
