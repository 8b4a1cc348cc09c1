//! Writing a [`PatientPlan`] as signed events on a ledger: the registration, each
//! consultation with its test orders, each lab result, each prescription with its
//! payments to the lab, and each fill, each by the member of the role that records it.
//!
//! Importing is idempotent: every record an import writes names its source (the FHIR
//! resource type and id) inside its sealed body, and a record whose source the
//! patient's history already holds is not written again. The importer reads those
//! sources with the keys it signs with, so nothing about the source is public.

use std::collections::{BTreeMap, HashSet};

use crate::chaingen::random_id;
use anyhow::Context;
use health_workflow::clinical::SourceId;
use health_workflow::seal::SealedRef;
use health_workflow::seal::{EncryptionKey, SealedBody};
use health_workflow::{
    Actor, Body, BodyReader, Event, EventKind, HealthPolicy, HealthTx, OrderId, PatientId,
    PrescriptionDraft, PrescriptionId, Reading, TestRequest, Written, limits, records,
};
use ledger_core::sealed::BodyLabel;
use ledger_core::{BodySource, Hash, Keypair, Ledger, Timestamp, TxBody, TxId};
use std::sync::Arc;

use super::plan::{PatientPlan, PrescriptionPlan};

/// The members an import signs as, with the keys that open what they wrote.
pub(crate) struct Signers {
    pub(crate) doctor: Signer,
    pub(crate) lab: Signer,
    pub(crate) pharmacist: Signer,
}

/// One member an import signs as.
pub(crate) struct Signer {
    pub(crate) actor: Actor,
    pub(crate) keys: Keypair,
    pub(crate) encryption: EncryptionKey,
}

/// What importing one patient did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Whether the patient was registered now (not by an earlier import).
    pub(crate) registered: bool,
    /// Events written, by kind.
    pub(crate) events: BTreeMap<EventKind, usize>,
    /// Lab payments signed.
    pub(crate) payments: usize,
    /// Records found already imported, and not written again.
    pub(crate) already: usize,
    /// Lab reports of encounters imported before without them: not written.
    pub(crate) incomplete: usize,
}

/// The sources of every record already in `patient`'s history, as `signers` read them.
///
/// A body that the vault lacks may be one an earlier import wrote: then nothing can
/// tell whether its records are there, and this refuses rather than write them twice.
/// A body sealed to none of the signers was not written with their keys, and is passed
/// over.
pub(crate) fn existing_sources<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    vault: &p2p::Vault,
    signers: &Signers,
    patient: &PatientId,
) -> anyhow::Result<HashSet<SourceId>> {
    let vault = |hash: &Hash| vault.get(hash).ok().flatten();
    let mut sources = HashSet::new();
    let Some(history) = records::patient_history(ledger, patient)
        .with_context(|| format!("reading the history of patient {patient}"))?
    else {
        return Ok(sources);
    };
    let genesis = ledger.genesis_hash();
    let readers: Vec<BodyReader<'_>> = [&signers.doctor, &signers.lab, &signers.pharmacist]
        .into_iter()
        .map(|s| BodyReader::new(genesis, s.keys.account(), &s.encryption))
        .collect();
    let mut missing = 0;
    for recorded in &history {
        for (section, reference) in recorded.event.sealed() {
            let readings: Vec<Reading> = readers
                .iter()
                .filter_map(|reader| {
                    reader.read_at(
                        &recorded.recorded.author,
                        &recorded.event,
                        section,
                        &reference,
                        vault,
                    )
                })
                .collect();
            match readings.iter().find_map(Reading::clear) {
                Some(body) => sources.extend(body_sources(body).into_iter().cloned()),
                None if readings.iter().any(|r| matches!(r, Reading::Missing)) => missing += 1,
                None => {}
            }
        }
    }
    if missing > 0 {
        anyhow::bail!(
            "{missing} sealed record(s) of patient {patient} are not in this node's vault, \
             so it cannot tell what an earlier import wrote; import where they are (the \
             doctor's node), or sync this node's bodies first"
        );
    }
    Ok(sources)
}

/// The sources a body names.
fn body_sources(body: &Body) -> Vec<&SourceId> {
    match body {
        Body::Notes { visit, .. } => visit.source.iter().collect(),
        Body::Results { reports, .. } => reports
            .iter()
            .flat_map(|r| {
                r.source
                    .iter()
                    .chain(r.observations.iter().flat_map(|o| &o.source))
            })
            .collect(),
        Body::Prescription { coded, .. } => coded.source.iter().collect(),
        _ => Vec::new(),
    }
}

/// Where an import writes: a ledger it can read (the mempool included) and submit
/// signed transactions to, with their sealed bodies.
pub(crate) trait Chain {
    /// Where the ledger keeps block bodies.
    type Bodies: BodySource<Event>;

    /// Runs `f` on the ledger as it stands.
    fn read<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Ledger<HealthPolicy, Self::Bodies>) -> R + Send + 'static,
    ) -> anyhow::Result<R>;

    /// Submits `tx` with the bodies it seals; `what` names it in an error.
    fn submit(&mut self, tx: HealthTx, bodies: Vec<SealedBody>, what: &str)
    -> anyhow::Result<TxId>;
}

/// A ledger in this process: transactions go to its mempool, and the bodies they
/// seal are held until the transactions are in blocks ([`mine_all`]).
pub(crate) struct LocalChain<'a, B: BodySource<Event>> {
    pub(crate) ledger: &'a mut Ledger<HealthPolicy, B>,
    /// Each body sealed so far, with the reference it was sealed under.
    pub(crate) bodies: Vec<(SealedRef, BodyLabel, SealedBody)>,
}

impl<B: BodySource<Event>> Chain for LocalChain<'_, B> {
    type Bodies = B;

    fn read<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Ledger<HealthPolicy, B>) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        Ok(f(self.ledger))
    }

    fn submit(
        &mut self,
        tx: HealthTx,
        bodies: Vec<SealedBody>,
        what: &str,
    ) -> anyhow::Result<TxId> {
        let refs = sealed_refs(&tx);
        let id = self
            .ledger
            .submit_transaction(tx, crate::tools::now())
            .map_err(|e| anyhow::anyhow!("{what} was refused: {e}"))?;
        self.bodies.extend(
            refs.into_iter()
                .zip(bodies)
                .map(|((reference, label), body)| (reference, label, body)),
        );
        Ok(id)
    }
}

/// The sealed references of `tx`'s event, in the order of its bodies, each with the
/// label the vault keeps beside its body.
pub(crate) fn sealed_refs(tx: &HealthTx) -> Vec<(SealedRef, BodyLabel)> {
    match &tx.body {
        TxBody::App(event) => ledger_core::Policy::labelled_refs(&HealthPolicy, &tx.author, event),
        TxBody::Transfer { .. } => Vec::new(),
    }
}

fn count(outcome: &mut Outcome, kind: EventKind) {
    *outcome.events.entry(kind).or_default() += 1;
}

/// The lab results each visit of a plan recorded, for the prescriptions that follow.
pub(crate) type VisitResults = Vec<Vec<TxId>>;

/// Signs a [`Written`] on the chain's ledger with `sign`, and submits it.
fn write<C: Chain>(
    chain: &mut C,
    what: &str,
    sign: impl FnOnce(
        &Ledger<HealthPolicy, C::Bodies>,
    ) -> Result<Written, health_workflow::WorkflowError>
    + Send
    + 'static,
) -> anyhow::Result<TxId> {
    let written = chain
        .read(sign)?
        .map_err(|e| anyhow::anyhow!("{what} could not be written: {e}"))?;
    chain.submit(written.tx, written.bodies, what)
}

/// Signs and submits the first part of `plan` that `existing` does not already hold:
/// the registration, and each visit's consultation and lab results. Mine these before
/// [`write_prescriptions`], so the doctor holds the rewards that pay the lab, as in
/// the walkthrough.
pub(crate) fn write_visits<C: Chain>(
    chain: &mut C,
    signers: &Arc<Signers>,
    plan: &PatientPlan,
    existing: &HashSet<SourceId>,
    outcome: &mut Outcome,
) -> anyhow::Result<VisitResults> {
    let patient = plan.patient_id;
    let known = chain.read(move |l| l.state().app().patient(&patient).is_some())?;
    if known {
        outcome.already += 1;
    } else {
        let (s, name, details) = (Arc::clone(signers), plan.name.clone(), plan.details.clone());
        write(chain, "the registration", move |l| {
            let now = crate::tools::now();
            s.doctor
                .actor
                .register_patient(l, patient, &name, details, now, &mut rand::rng())
        })?;
        outcome.registered = true;
        count(outcome, EventKind::PatientRegistration);
    }
    let mut results = Vec::with_capacity(plan.visits.len());
    let mut rng = rand::rng();
    for visit in &plan.visits {
        let mut recorded = Vec::new();
        if visit
            .visit
            .source
            .as_ref()
            .is_some_and(|s| existing.contains(s))
        {
            outcome.already += 1;
            // Its results went with it; one that did not (an import through a node
            // that stopped between the two) is reported, not silently passed over.
            let absent = visit
                .orders
                .iter()
                .flat_map(|o| &o.reports)
                .filter(|r| r.source.as_ref().is_some_and(|s| !existing.contains(s)))
                .count();
            outcome.incomplete += absent;
            results.push(recorded);
            continue;
        }
        let orders: Vec<OrderId> = visit
            .orders
            .iter()
            .map(|_| OrderId::from_random_bytes(random_id(&mut rng)))
            .collect();
        let tests: Vec<TestRequest> = visit
            .orders
            .iter()
            .zip(&orders)
            .map(|(o, id)| TestRequest {
                order_id: *id,
                test_name: o.test_name.clone(),
                tests: o.tests.clone(),
            })
            .collect();
        let (s, notes, details) = (
            Arc::clone(signers),
            visit.notes.clone(),
            visit.visit.clone(),
        );
        write(chain, "a consultation", move |l| {
            let now = crate::tools::now();
            s.doctor.actor.record_consultation(
                l,
                patient,
                &notes,
                details,
                tests,
                now,
                &mut rand::rng(),
            )
        })?;
        count(outcome, EventKind::DoctorConsultation);
        for (order, id) in visit.orders.iter().zip(orders) {
            let (s, text, reports) = (
                Arc::clone(signers),
                order.results.clone(),
                order.reports.clone(),
            );
            recorded.push(write(chain, "a lab result", move |l| {
                let now = crate::tools::now();
                s.lab
                    .actor
                    .record_results(l, patient, id, &text, reports, now, &mut rand::rng())
            })?);
            count(outcome, EventKind::LabTestResult);
        }
        results.push(recorded);
    }
    Ok(results)
}

/// Signs and submits the prescriptions of `plan` that `existing` does not already
/// hold, each based on the lab results recorded since the one before (`results`, from
/// [`write_visits`]; the first also on the patient's results that no prescription
/// cites yet, as the REPL's `prescribe` does), with its payments to the lab and, where
/// the bundle shows one, its fill.
pub(crate) fn write_prescriptions<C: Chain>(
    chain: &mut C,
    signers: &Arc<Signers>,
    plan: &PatientPlan,
    existing: &HashSet<SourceId>,
    results: VisitResults,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let patient = plan.patient_id;
    // The patient's results no prescription cites yet come first; this import's
    // results join as their visit comes.
    let new: HashSet<TxId> = results.iter().flatten().copied().collect();
    let mut unpaid: Vec<TxId> = chain
        .read(move |l| l.state().app().unpaid_lab_results(&patient))?
        .into_iter()
        .filter(|r| !new.contains(r))
        .collect();
    let mut context = Prescribing {
        signers,
        patient,
        existing,
        unpaid: &mut unpaid,
        outcome,
    };
    for (visit, recorded) in plan.visits.iter().zip(results) {
        context.unpaid.extend(recorded);
        for prescription in &visit.prescriptions {
            write_prescription(chain, &mut context, prescription)?;
        }
    }
    for prescription in &plan.prescriptions {
        write_prescription(chain, &mut context, prescription)?;
    }
    Ok(())
}

/// What writing one patient's prescriptions carries from one to the next.
struct Prescribing<'a> {
    signers: &'a Arc<Signers>,
    patient: PatientId,
    existing: &'a HashSet<SourceId>,
    unpaid: &'a mut Vec<TxId>,
    outcome: &'a mut Outcome,
}

fn write_prescription<C: Chain>(
    chain: &mut C,
    context: &mut Prescribing<'_>,
    plan: &PrescriptionPlan,
) -> anyhow::Result<()> {
    if plan
        .coded
        .source
        .as_ref()
        .is_some_and(|s| context.existing.contains(s))
    {
        context.outcome.already += 1;
        return Ok(());
    }
    let cited = context.unpaid.len().min(limits::MAX_BASED_ON);
    let prescription_id = PrescriptionId::from_random_bytes(random_id(&mut rand::rng()));
    let draft = PrescriptionDraft {
        prescription_id,
        patient_id: context.patient,
        medication: plan.medication.clone(),
        dosage: plan.dosage.clone(),
        instructions: plan.instructions.clone(),
        based_on: context.unpaid.drain(..cited).collect(),
    };
    let (s, coded) = (Arc::clone(context.signers), plan.coded.clone());
    let prescribed = chain
        .read(move |l| {
            let now = crate::tools::now();
            s.doctor
                .actor
                .prescribe_coded(l, draft, coded, now, &mut rand::rng())
        })?
        .map_err(|e| anyhow::anyhow!("a prescription could not be written: {e}"))?;
    let payments: Vec<HealthTx> = prescribed
        .payments
        .iter()
        .filter_map(|p| p.transfer.clone().ok())
        .collect();
    chain.submit(prescribed.prescription, prescribed.bodies, "a prescription")?;
    count(context.outcome, EventKind::Prescription);
    for payment in payments {
        chain.submit(payment, Vec::new(), "a lab payment")?;
        context.outcome.payments += 1;
    }
    if plan.dispensed {
        let s = Arc::clone(context.signers);
        let fill = chain
            .read(move |l| {
                s.pharmacist
                    .actor
                    .fill(l, prescription_id, crate::tools::now())
            })?
            .map_err(|e| anyhow::anyhow!("a fill could not be written: {e}"))?;
        chain.submit(fill, Vec::new(), "a fill")?;
        count(context.outcome, EventKind::PrescriptionFilled);
    }
    Ok(())
}

/// Mines blocks with `producer` until the mempool is empty, calling `stored` with
/// each accepted block so the caller commits it; returns how many were mined.
pub(crate) fn mine_all<B: BodySource<Event>>(
    ledger: &mut Ledger<HealthPolicy, B>,
    producer: &Keypair,
    mut stored: impl FnMut(&Ledger<HealthPolicy, B>, &[ledger_core::BlockHash]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut mined = 0;
    while ledger.mempool().next().is_some() {
        let tip_time = ledger
            .header(&ledger.tip().hash)
            .map_or(Timestamp(0), |h| h.timestamp);
        let time = Timestamp(crate::tools::now().millis().max(tip_time.millis() + 1));
        let block = ledger.mine_block(producer, time);
        if block.transactions.is_empty() {
            anyhow::bail!("the waiting transactions fit in no block");
        }
        let outcome = crate::chaingen::submit_mined(ledger, block, time)
            .context("a block of the imported events")?;
        stored(ledger, &outcome.accepted)?;
        ledger.mark_stored(outcome.accepted);
        mined += 1;
    }
    Ok(mined)
}
