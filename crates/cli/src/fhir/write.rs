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
use health_workflow::seal::{EncryptionKey, SealedBody};
use health_workflow::{
    Actor, Body, BodyReader, Event, EventKind, HealthPolicy, HealthTx, OrderId, PatientId,
    PrescriptionDraft, PrescriptionId, Reading, TestRequest, Written, limits, records,
};
use ledger_core::{BlockStatus, BodySource, Hash, Keypair, Ledger, Timestamp, TxBody, TxId};

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
}

/// The sources of every record already in `patient`'s history, as `signers` read them.
pub(crate) fn existing_sources<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    vault: &dyn Fn(&Hash) -> Option<SealedBody>,
    signers: &Signers,
    patient: &PatientId,
) -> anyhow::Result<HashSet<SourceId>> {
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
    for recorded in &history {
        for (section, reference) in recorded.event.sealed() {
            let body = readers.iter().find_map(|reader| {
                match reader.read_at(
                    &recorded.recorded.author,
                    &recorded.event,
                    section,
                    &reference,
                    vault,
                )? {
                    Reading::Clear(body) => Some(body),
                    _ => None,
                }
            });
            if let Some(body) = body {
                sources.extend(body_sources(&body).into_iter().cloned());
            }
        }
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

/// A ledger an import writes to: transactions go to its mempool, and the bodies they
/// seal are held until the transactions are in blocks.
pub(crate) struct Writer<'a, B: BodySource<Event>> {
    pub(crate) ledger: &'a mut Ledger<HealthPolicy, B>,
    pub(crate) now: Timestamp,
    /// Each body sealed so far, with the reference it was sealed under.
    pub(crate) bodies: Vec<(health_workflow::seal::SealedRef, SealedBody)>,
}

impl<B: BodySource<Event>> Writer<'_, B> {
    fn submit(&mut self, tx: HealthTx, what: &str) -> anyhow::Result<TxId> {
        self.ledger
            .submit_transaction(tx, self.now)
            .map_err(|e| anyhow::anyhow!("{what} was refused: {e}"))
    }

    fn submit_written(&mut self, written: Written, what: &str) -> anyhow::Result<TxId> {
        let refs = match &written.tx.body {
            TxBody::App(event) => event.sealed(),
            TxBody::Transfer { .. } => Vec::new(),
        };
        let id = self.submit(written.tx, what)?;
        self.bodies.extend(
            refs.into_iter()
                .map(|(_, reference)| reference)
                .zip(written.bodies),
        );
        Ok(id)
    }
}

fn count(outcome: &mut Outcome, kind: EventKind) {
    *outcome.events.entry(kind).or_default() += 1;
}

/// The lab results each visit of a plan recorded, for the prescriptions that follow.
pub(crate) type VisitResults = Vec<Vec<TxId>>;

/// Signs and submits the first part of `plan` that `existing` does not already hold:
/// the registration, and each visit's consultation and lab results. Mine these before
/// [`write_prescriptions`], so the doctor holds the rewards that pay the lab, as in
/// the walkthrough.
pub(crate) fn write_visits<B: BodySource<Event>>(
    writer: &mut Writer<'_, B>,
    signers: &Signers,
    plan: &PatientPlan,
    existing: &HashSet<SourceId>,
    outcome: &mut Outcome,
    rng: &mut rand::rngs::ThreadRng,
) -> anyhow::Result<VisitResults> {
    let patient = plan.patient_id;
    let now = writer.now;
    let known = writer.ledger.state().app().patient(&patient).is_some();
    if known {
        outcome.already += 1;
    } else {
        let written = signers.doctor.actor.register_patient(
            writer.ledger,
            patient,
            &plan.name,
            plan.details.clone(),
            now,
            rng,
        )?;
        writer.submit_written(written, "the registration")?;
        outcome.registered = true;
        count(outcome, EventKind::PatientRegistration);
    }
    let mut results = Vec::with_capacity(plan.visits.len());
    for visit in &plan.visits {
        let mut recorded = Vec::new();
        if visit
            .visit
            .source
            .as_ref()
            .is_some_and(|s| existing.contains(s))
        {
            outcome.already += 1;
            results.push(recorded);
            continue;
        }
        let orders: Vec<OrderId> = visit
            .orders
            .iter()
            .map(|_| OrderId::from_random_bytes(random_id(rng)))
            .collect();
        let tests = visit
            .orders
            .iter()
            .zip(&orders)
            .map(|(o, id)| TestRequest {
                order_id: *id,
                test_name: o.test_name.clone(),
                tests: o.tests.clone(),
            })
            .collect();
        let written = signers.doctor.actor.record_consultation(
            writer.ledger,
            patient,
            &visit.notes,
            visit.visit.clone(),
            tests,
            now,
            rng,
        )?;
        writer.submit_written(written, "a consultation")?;
        count(outcome, EventKind::DoctorConsultation);
        for (order, id) in visit.orders.iter().zip(orders) {
            let written = signers.lab.actor.record_results(
                writer.ledger,
                patient,
                id,
                &order.results,
                order.reports.clone(),
                now,
                rng,
            )?;
            recorded.push(writer.submit_written(written, "a lab result")?);
            count(outcome, EventKind::LabTestResult);
        }
        results.push(recorded);
    }
    Ok(results)
}

/// Signs and submits the prescriptions of `plan` that `existing` does not already
/// hold, each based on the lab results recorded since the one before (`results`, from
/// [`write_visits`], after the results an earlier import left unpaid), with its
/// payments to the lab and, where the bundle shows one, its fill.
pub(crate) fn write_prescriptions<B: BodySource<Event>>(
    writer: &mut Writer<'_, B>,
    signers: &Signers,
    plan: &PatientPlan,
    existing: &HashSet<SourceId>,
    results: VisitResults,
    outcome: &mut Outcome,
    rng: &mut rand::rngs::ThreadRng,
) -> anyhow::Result<()> {
    let patient = plan.patient_id;
    // Results an earlier import left unpaid come first; this import's results join
    // as their visit comes.
    let new: HashSet<TxId> = results.iter().flatten().copied().collect();
    let mut unpaid: Vec<TxId> = writer
        .ledger
        .state()
        .app()
        .unpaid_lab_results(&patient)
        .into_iter()
        .filter(|r| !new.contains(r))
        .collect();
    for (visit, recorded) in plan.visits.iter().zip(results) {
        unpaid.extend(recorded);
        for prescription in &visit.prescriptions {
            write_prescription(
                writer,
                signers,
                patient,
                prescription,
                existing,
                &mut unpaid,
                outcome,
                rng,
            )?;
        }
    }
    for prescription in &plan.prescriptions {
        write_prescription(
            writer,
            signers,
            patient,
            prescription,
            existing,
            &mut unpaid,
            outcome,
            rng,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the import's whole context, passed down
fn write_prescription<B: BodySource<Event>>(
    writer: &mut Writer<'_, B>,
    signers: &Signers,
    patient: PatientId,
    plan: &PrescriptionPlan,
    existing: &HashSet<SourceId>,
    unpaid: &mut Vec<TxId>,
    outcome: &mut Outcome,
    rng: &mut rand::rngs::ThreadRng,
) -> anyhow::Result<()> {
    if plan
        .coded
        .source
        .as_ref()
        .is_some_and(|s| existing.contains(s))
    {
        outcome.already += 1;
        return Ok(());
    }
    let cited = unpaid.len().min(limits::MAX_BASED_ON);
    let draft = PrescriptionDraft {
        prescription_id: PrescriptionId::from_random_bytes(random_id(rng)),
        patient_id: patient,
        medication: plan.medication.clone(),
        dosage: plan.dosage.clone(),
        instructions: plan.instructions.clone(),
        based_on: unpaid.drain(..cited).collect(),
    };
    let prescription_id = draft.prescription_id;
    let prescribed = signers.doctor.actor.prescribe_coded(
        writer.ledger,
        draft,
        plan.coded.clone(),
        writer.now,
        rng,
    )?;
    let payments: Vec<HealthTx> = prescribed
        .payments
        .iter()
        .filter_map(|p| p.transfer.clone().ok())
        .collect();
    writer.submit_written(
        Written {
            tx: prescribed.prescription,
            bodies: prescribed.bodies,
        },
        "a prescription",
    )?;
    count(outcome, EventKind::Prescription);
    for payment in payments {
        writer.submit(payment, "a lab payment")?;
        outcome.payments += 1;
    }
    if plan.dispensed {
        let fill = signers
            .pharmacist
            .actor
            .fill(writer.ledger, prescription_id, writer.now)?;
        writer.submit(fill, "a fill")?;
        count(outcome, EventKind::PrescriptionFilled);
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
        let outcome = ledger.submit(block, time);
        if outcome.status != BlockStatus::Accepted {
            let reason = outcome
                .invalid
                .first()
                .map_or_else(|| format!("{:?}", outcome.status), |(_, e)| e.to_string());
            anyhow::bail!("a mined block was refused: {reason}");
        }
        stored(ledger, &outcome.accepted)?;
        ledger.mark_stored(outcome.accepted);
        mined += 1;
    }
    Ok(mined)
}
