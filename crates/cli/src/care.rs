//! What a node does for the patients whose records it holds, beside its REPL:
//!
//! - **Records the reads it serves.** Each body served to a peer
//!   ([`NodeEvent::BodiesServed`]) becomes an access record on chain, signed by this
//!   node's member, naming the reader, the patient and the bodies (at most
//!   [`MAX_ACCESS_BODIES`] a record): the patient's `audit` lists them.
//! - **Carries out erasures.** When a patient's erasure request is on the chain (at
//!   start, and whenever the tip moves: a node that was offline erases when it catches
//!   up), it deletes the patient's bodies from the vault (wraps and salts are inside
//!   them), the registry CSV drops the patient and the names it cached, and this node's
//!   member posts its erasure receipt, once.
//!
//! Transactions are signed with the member's next nonce; a REPL user signing with the
//! same key at the same moment can take that nonce first, so a refusal for a stale
//! nonce is retried with the next one.

use std::collections::{BTreeMap, HashSet};

use health_workflow::patient::MAX_ACCESS_BODIES;
use health_workflow::{
    Actor, Event, HealthLedger, HealthPolicy, HealthTx, PatientId, WorkflowError, records,
};
use ledger_core::sealed::{BodyId, BodyLabel};
use ledger_core::{AccountId, Hash, Keypair, TxBody, TxError, TxId};
use p2p::store::RedbStore;
use p2p::{NodeEvent, Vault};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::input::Printer;
use crate::launch::Handle;

/// How many times a transaction refused for a stale nonce is signed again.
const NONCE_RETRIES: usize = 4;

/// The node's steward of patients' records.
pub(crate) struct Steward {
    pub(crate) handle: Handle,
    pub(crate) vault: Vault,
    /// The node's roster key; without one (a patient's node, an observer) it records
    /// nothing and confirms nothing, but still erases.
    pub(crate) member: Option<Keypair>,
    pub(crate) printer: Printer,
    /// Erasures carried out completely by this process.
    pub(crate) done: HashSet<PatientId>,
}

/// One erased patient as the chain shows it.
struct Erasure {
    patient: PatientId,
    request: TxId,
    /// Whether this node's member has a receipt on the chain.
    confirmed: bool,
    /// The ciphertext hashes of every body about the patient.
    bodies: Vec<Hash>,
}

impl Steward {
    /// Runs until `shutdown`, acting on the node's `events`.
    pub(crate) async fn run(
        mut self,
        mut events: broadcast::Receiver<NodeEvent<health_workflow::EventError>>,
        shutdown: CancellationToken,
    ) {
        self.sweep().await;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(NodeEvent::BodiesServed { reader, bodies }) => {
                    self.record_served(reader, bodies).await;
                }
                Ok(NodeEvent::TipChanged(change)) => {
                    self.after_break_glass(change.connected).await;
                    self.sweep().await;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.sweep().await,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The member acting for this node, if it holds a roster key.
    async fn actor(&self) -> Option<Actor> {
        let keys = self.member.clone()?;
        self.handle
            .query(move |ledger| {
                let username = ledger.genesis().member(&keys.account())?.username.clone();
                Actor::new(ledger, &username, keys).ok()
            })
            .await
            .ok()
            .flatten()
    }

    /// Records that `reader` was served `bodies`, one access record per patient (and
    /// per [`MAX_ACCESS_BODIES`] bodies).
    async fn record_served(&self, reader: AccountId, bodies: Vec<(BodyId, BodyLabel)>) {
        let Some(actor) = self.actor().await else {
            return;
        };
        let mut by_patient: BTreeMap<PatientId, Vec<BodyId>> = BTreeMap::new();
        for (body, label) in bodies {
            let patient = PatientId(uuid::Uuid::from_bytes(label.subject));
            if !patient.0.is_nil() {
                by_patient.entry(patient).or_default().push(body);
            }
        }
        for (patient, bodies) in by_patient {
            // The patient's own node fetching the patient's records is no one else's
            // read.
            let own = self
                .handle
                .query(move |ledger| ledger.state().app().patient(&patient).map(|p| p.account))
                .await
                .ok()
                .flatten();
            if own == Some(reader) {
                continue;
            }
            for chunk in bodies.chunks(MAX_ACCESS_BODIES) {
                let (actor, chunk) = (actor.clone(), chunk.to_vec());
                let signed = sign_and_submit(&self.handle, move |ledger| {
                    let now = crate::tools::now();
                    actor.record_access(ledger, patient, reader, chunk.clone(), now)
                })
                .await;
                if let Err(e) = signed {
                    self.printer.print(format!(
                        "* WARNING: the read of patient {patient}'s records by {reader:#} \
                         was not recorded: {e}"
                    ));
                }
            }
        }
    }

    /// After this node's member broke the glass for a patient in one of `blocks`: asks
    /// the peers for the patient's records it lacks, which they give it (wrapped to its
    /// key) while the break-glass window is open.
    async fn after_break_glass(&self, blocks: Vec<ledger_core::BlockHash>) {
        let Some(me) = self.member.as_ref().map(Keypair::account) else {
            return;
        };
        let wanted = self
            .handle
            .query(move |ledger| {
                let mut refs = Vec::new();
                for hash in &blocks {
                    let Ok(Some(block)) = ledger.block(hash) else {
                        continue;
                    };
                    for tx in &block.transactions {
                        if let TxBody::App(Event::AccessRecord(a)) = &tx.body
                            && tx.author == me
                            && a.purpose.is_break_glass()
                        {
                            refs.push((a.patient_id, patient_refs(ledger, &a.patient_id)));
                        }
                    }
                }
                refs
            })
            .await;
        for (patient, refs) in wanted.unwrap_or_default() {
            self.printer.print(format!(
                "* Break-glass read of patient {patient}: fetching its {} records",
                refs.len()
            ));
            let _ = self.handle.fetch_bodies(refs).await;
        }
    }

    /// Carries out every erasure on the chain this process has not finished.
    async fn sweep(&mut self) {
        let member = self.member.as_ref().map(Keypair::account);
        let done = self.done.clone();
        let found = self
            .handle
            .query(move |ledger| erasures(ledger, member, &done))
            .await;
        let Ok(erasures) = found else {
            return;
        };
        for erasure in erasures {
            self.erase(erasure).await;
        }
    }

    async fn erase(&mut self, erasure: Erasure) {
        let vault = self.vault.clone();
        let hashes = erasure.bodies.clone();
        let erased = tokio::task::spawn_blocking(move || vault.erase(&hashes)).await;
        let count = match erased {
            Ok(Ok(count)) => count,
            Ok(Err(e)) => {
                self.printer.print(format!(
                    "* WARNING: cannot erase patient {}'s bodies: {e}",
                    erasure.patient
                ));
                return;
            }
            Err(e) => {
                self.printer
                    .print(format!("* WARNING: erasing failed: {e}"));
                return;
            }
        };
        if count > 0 {
            self.printer.print(format!(
                "* Erased {count} sealed bodies of patient {} (their erasure request: tx {:#})",
                erasure.patient, erasure.request
            ));
        }
        if erasure.confirmed {
            self.done.insert(erasure.patient);
            return;
        }
        let Some(actor) = self.actor().await else {
            // Nothing to confirm: this node holds no roster key.
            self.done.insert(erasure.patient);
            return;
        };
        let (patient, request) = (erasure.patient, erasure.request);
        let signed = sign_and_submit(&self.handle, move |ledger| {
            actor.confirm_erasure(ledger, patient, request, crate::tools::now())
        })
        .await;
        match signed {
            Ok(id) => {
                self.printer.print(format!(
                    "* Erasure of patient {patient} confirmed (receipt tx {id:#})"
                ));
                self.done.insert(patient);
            }
            // A receipt already waiting in the mempool: confirmed once it is mined.
            Err(e) if e.contains("already confirmed") => {
                self.done.insert(patient);
            }
            Err(e) => self.printer.print(format!(
                "* WARNING: cannot confirm the erasure of patient {patient}: {e}"
            )),
        }
    }
}

/// The erasures on `ledger`'s chain not in `done`: each with its request, whether
/// `member` confirmed it, and the bodies to delete.
fn erasures(
    ledger: &HealthLedger<RedbStore<health_workflow::Event>>,
    member: Option<AccountId>,
    done: &HashSet<PatientId>,
) -> Vec<Erasure> {
    let state = ledger.state().app();
    state
        .erased_patients()
        .filter(|p| !done.contains(&p.id))
        .filter_map(|p| {
            let consent = p.consent.as_deref()?;
            let request = consent.erased?.tx_id;
            let confirmed = member.is_some_and(|m| consent.receipts.iter().any(|r| r.author == m));
            let bodies = records::patient_history(ledger, &p.id)
                .ok()
                .flatten()
                .into_iter()
                .flatten()
                .flat_map(|recorded| {
                    recorded
                        .event
                        .sealed()
                        .into_iter()
                        .map(|(_, r)| r.ciphertext_hash)
                        .collect::<Vec<_>>()
                })
                .collect();
            Some(Erasure {
                patient: p.id,
                request,
                confirmed,
                bodies,
            })
        })
        .collect()
}

/// Every sealed body about `patient` on the chain, with its label.
fn patient_refs(
    ledger: &HealthLedger<RedbStore<Event>>,
    patient: &PatientId,
) -> Vec<(ledger_core::sealed::SealedRef, BodyLabel)> {
    records::patient_history(ledger, patient)
        .ok()
        .flatten()
        .into_iter()
        .flatten()
        .flat_map(|recorded| {
            ledger_core::Policy::labelled_refs(
                &HealthPolicy,
                &recorded.recorded.author,
                &recorded.event,
            )
        })
        .collect()
}

/// Signs with `build` (the member's next nonce) and submits, signing again when a
/// concurrent transaction by the same key took that nonce. The error is one line.
pub(crate) async fn sign_and_submit(
    handle: &Handle,
    build: impl Fn(&HealthLedger<RedbStore<health_workflow::Event>>) -> Result<HealthTx, WorkflowError>
    + Clone
    + Send
    + 'static,
) -> Result<TxId, String> {
    let mut last = String::new();
    for _ in 0..NONCE_RETRIES {
        let tx = handle
            .query(build.clone())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        match handle.submit_transaction(tx).await {
            Ok(Ok(id)) => return Ok(id),
            Ok(Err(TxError::StaleNonce { .. })) => last = "its nonce was taken".into(),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}
