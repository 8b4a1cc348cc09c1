//! The healthcare rules as a ledger [`Policy`].

use std::collections::hash_map::Entry;

use ledger_core::sealed::{BodyAccess, BodyLabel};
use ledger_core::{
    AccountId, Amount, Applied, BlockHash, Genesis, Policy, Timestamp, TxContext, TxId,
};
use uuid::Uuid;

use crate::body::Category;
use crate::event::{
    DoctorConsultation, Event, EventError, EventKind, LabTestResult, PatientRegistration,
    Prescription, PrescriptionFilled,
};
use crate::ids::{OrderId, PatientId, PrescriptionId};
use crate::patient::{Asker, GrantRef, PatientKeys};
use crate::role::Role;
use crate::seal::{EncryptionPublicKey, SealedRef};

mod patient_rules;

use crate::state::{
    HealthState, HistoryEntry, LabResult, Order, Patient, PrescriptionRecord, Recorded,
};
use patient_rules::{asker, consented};

/// Genesis parameter: e-cash the ordering doctor earns when a lab result answers their
/// test order.
pub const PARAM_REWARD_LAB_RESULT: &str = "reward_lab_result";
/// Genesis parameter: e-cash the prescribing doctor earns when their prescription is
/// filled.
pub const PARAM_REWARD_FILL: &str = "reward_fill";
/// Genesis parameter: e-cash a doctor pays each lab technician whose results a
/// prescription is based on.
pub const PARAM_LAB_PAYMENT: &str = "lab_payment";

/// Default of [`PARAM_REWARD_LAB_RESULT`], as in the original project.
pub const DEFAULT_REWARD_LAB_RESULT: u64 = 500;
/// Default of [`PARAM_REWARD_FILL`], as in the original project.
pub const DEFAULT_REWARD_FILL: u64 = 700;
/// Default of [`PARAM_LAB_PAYMENT`], as in the original project.
pub const DEFAULT_LAB_PAYMENT: u64 = 100;

/// The network's reward and payment amounts, read from the genesis parameters (with
/// the defaults above when a parameter is absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Reward to the ordering doctor per lab result.
    pub reward_lab_result: Amount,
    /// Reward to the prescribing doctor per fill.
    pub reward_fill: Amount,
    /// Payment from the prescribing doctor to each lab technician read.
    pub lab_payment: Amount,
}

impl Rates {
    /// The rates of the network `genesis`.
    pub fn of(genesis: &Genesis) -> Rates {
        Rates {
            reward_lab_result: Self::reward_lab_result_of(genesis),
            reward_fill: Self::reward_fill_of(genesis),
            lab_payment: Amount(genesis.parameter(PARAM_LAB_PAYMENT, DEFAULT_LAB_PAYMENT)),
        }
    }

    /// [`Rates::reward_lab_result`] alone, for the rules that pay it per event.
    fn reward_lab_result_of(genesis: &Genesis) -> Amount {
        Amount(genesis.parameter(PARAM_REWARD_LAB_RESULT, DEFAULT_REWARD_LAB_RESULT))
    }

    /// [`Rates::reward_fill`] alone, for the rules that pay it per event.
    fn reward_fill_of(genesis: &Genesis) -> Amount {
        Amount(genesis.parameter(PARAM_REWARD_FILL, DEFAULT_REWARD_FILL))
    }
}

/// An applied event that earns `doctor` a reward of `amount` from the reserve.
fn rewarded((undo, doctor): (HealthUndo, AccountId), amount: Amount) -> Applied<HealthUndo> {
    Applied {
        undo,
        rewards: vec![(doctor, amount)],
    }
}

/// The healthcare [`Policy`]: who may record which [`Event`], how events must refer to
/// each other, and which rewards they earn.
///
/// Rules, checked identically in the mempool and in blocks:
/// - the author must be a roster member whose role may record the event
///   ([`Role::may_record`]), or, for the patient's own events, the patient's key; then
///   the event's form ([`Event::check_form`]);
/// - every event names a registered patient (a fill through its prescription); new
///   patient, order and prescription ids are unused; a registration carries the
///   patient's keys, proven by the patient's signature;
/// - a clinical event needs a live grant of the patient for each category it writes,
///   at the block time, and nothing is recorded about an erased patient (see
///   [`patient`](crate::patient));
/// - a lab result answers an open test order of the same patient;
/// - a prescription names existing lab results of the same patient, each once;
/// - a fill names an existing prescription not yet filled.
///
/// The patient's proof is a signature the ledger does not see: the policy verifies it
/// itself, with the ledger's one rule ([`ledger_core::verify_signature`]). A bulk import
/// hands it each block's registrations first ([`Policy::prepare`]), which it verifies in
/// one batch ([`ledger_core::verify_signatures`]); the mempool path verifies a proof
/// alone, once per node, since valid proofs are remembered (not part of the state's
/// value). Putting the proof in the block's own signature batch would need a
/// co-signature in the ledger's transaction format: the decision recorded here is to
/// keep the core's format and pay one more check per registration.
///
/// Rewards, paid by the ledger from the reserve in the same block (none once the
/// reserve cannot afford them): [`Rates::reward_lab_result`] to the doctor who ordered
/// the test a lab result answers, [`Rates::reward_fill`] to the doctor whose
/// prescription is filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthPolicy;

/// What reverting one applied event needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthUndo {
    /// A registration added this patient.
    Registered(PatientId),
    /// A consultation of this patient, adding its test orders (none or several).
    Consulted(PatientId, Vec<OrderId>),
    /// A lab result (by transaction id) answered this order of this patient.
    ResultRecorded(PatientId, OrderId, TxId),
    /// A prescription was added for this patient.
    Prescribed(PatientId, PrescriptionId),
    /// A prescription of this patient was filled.
    Filled(PatientId, PrescriptionId),
    /// A member's encryption key was replaced; this was the one before.
    KeyRotated(AccountId, Option<EncryptionPublicKey>),
    /// The patient signed a grant.
    Granted(PatientId),
    /// The patient revoked this grant.
    Revoked(PatientId, GrantRef),
    /// An access to this patient's bodies was recorded (a break-glass read opened a
    /// window too).
    Accessed(PatientId, bool),
    /// The patient asked for erasure.
    ErasureRequested(PatientId),
    /// A member confirmed this patient's erasure.
    ErasureConfirmed(PatientId),
}

const UNDO_ORDER: &str = "undo reverts the latest apply, whose records still exist";

fn recorded(ctx: &TxContext<'_>) -> Recorded {
    Recorded {
        tx_id: ctx.tx_id,
        height: ctx.height,
        time: ctx.block_time,
        author: ctx.author,
    }
}

/// Who may record `event`: a patient key only the patient's own events (for that
/// patient) and its key rotation; a member only what its role may record, never a
/// patient's own event.
fn authorise(ctx: &TxContext<'_>, state: &HealthState, event: &Event) -> Result<(), EventError> {
    let kind = event.kind();
    if let Some(own) = state.patient_accounts.get(&ctx.author) {
        return match event.patient_id() {
            Some(patient) if kind.is_patients() && patient != *own => {
                Err(EventError::NotSignedByPatient {
                    patient,
                    author: ctx.author,
                    event: kind,
                })
            }
            _ if kind.is_patients() || kind == EventKind::EncryptionKeyRotation => Ok(()),
            _ => Err(EventError::NotPatientsEvent { event: kind }),
        };
    }
    if kind.is_patients() {
        return Err(EventError::NotSignedByPatient {
            patient: event.patient_id().unwrap_or(PatientId(Uuid::nil())),
            author: ctx.author,
            event: kind,
        });
    }
    let member = ctx.member.ok_or(EventError::NotAMember {
        account: ctx.author,
    })?;
    let allowed = Role::from_label(&member.role).is_some_and(|r| r.may_record(kind));
    if !allowed {
        return Err(EventError::NotPermitted {
            role: member.role.clone(),
            event: kind,
        });
    }
    Ok(())
}

/// Room for one episode in a new patient's history (registration, consultation, lab
/// result, prescription, fill and one more) before it grows.
const HISTORY_START: usize = 6;

/// Pushes onto a per-patient list that usually holds one item: the first push
/// allocates room for exactly one, later ones grow as usual. (An empty `Vec` would
/// otherwise allocate room for four at once; with hundreds of thousands of patients
/// that unused room is a sizeable part of the state.)
fn push_compact<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

// Each event looks every record up once (the patient first, so that an unknown
// patient is the error reported before any other) and changes nothing until every
// check has passed.
impl HealthState {
    fn pop_history(&mut self, patient: &PatientId) -> &mut Patient {
        let p = self.patients.get_mut(patient).expect(UNDO_ORDER);
        p.history.pop();
        p
    }

    fn register(
        &mut self,
        ctx: &TxContext<'_>,
        r: &PatientRegistration,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        if self.patients.contains_key(&r.patient_id) {
            return Err(EventError::DuplicatePatient {
                patient: r.patient_id,
            });
        }
        let keys = &r.patient_keys;
        if ctx.genesis.member(&keys.account).is_some()
            || keys.account == ctx.genesis.reserve
            || self.patient_accounts.contains_key(&keys.account)
        {
            return Err(EventError::PatientKeyInUse {
                account: keys.account,
            });
        }
        let genesis = ctx.genesis_hash;
        if !self.proven.check(proof_digest(&genesis, r), || {
            keys.is_proven(&genesis, &r.patient_id)
        }) {
            return Err(EventError::PatientKeyNotProven {
                patient: r.patient_id,
            });
        }
        if !crate::seal::is_usable_key(&keys.encryption) {
            return Err(EventError::UnusableEncryptionKey {
                key: keys.encryption,
            });
        }
        let Entry::Vacant(slot) = self.patients.entry(r.patient_id) else {
            unreachable!("checked above");
        };
        let mut history = Vec::with_capacity(HISTORY_START);
        history.push(HistoryEntry::of(at, EventKind::PatientRegistration));
        slot.insert(Box::new(Patient {
            id: r.patient_id,
            demographics: r.demographics,
            registered: at,
            history,
            orders: Vec::new(),
            results: Vec::new(),
            prescriptions: Vec::new(),
            account: keys.account,
            consent: None,
        }));
        self.patient_accounts.insert(keys.account, r.patient_id);
        self.encryption_keys.insert(keys.account, keys.encryption);
        self.registrations.push(r.patient_id);
        Ok(HealthUndo::Registered(r.patient_id))
    }

    fn consult(
        &mut self,
        c: &DoctorConsultation,
        asker: Asker,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self
            .patients
            .get_mut(&c.patient_id)
            .ok_or(EventError::UnknownPatient {
                patient: c.patient_id,
            })?;
        let writes: &[Category] = if c.test_orders.is_empty() {
            &[Category::ConsultationNotes]
        } else {
            &[Category::ConsultationNotes, Category::TestsAndResults]
        };
        consented(patient, asker, writes)?;
        // Every order is checked before any is added, so a refused consultation
        // leaves nothing behind (the form check refused ids repeated in the event).
        if let Some(o) = c
            .test_orders
            .iter()
            .find(|o| self.orders.contains_key(&o.order_id))
        {
            return Err(EventError::DuplicateOrder { order: o.order_id });
        }
        let orders: Vec<OrderId> = c.test_orders.iter().map(|o| o.order_id).collect();
        for &id in &orders {
            self.orders.insert(
                id,
                Box::new(Order {
                    id,
                    patient_id: c.patient_id,
                    ordered: at,
                    result: None,
                }),
            );
            push_compact(&mut patient.orders, id);
        }
        patient
            .history
            .push(HistoryEntry::of(at, EventKind::DoctorConsultation));
        Ok(HealthUndo::Consulted(c.patient_id, orders))
    }

    /// Records a lab result; returns the undo and the ordering doctor.
    fn record_result(
        &mut self,
        r: &LabTestResult,
        asker: Asker,
        at: Recorded,
    ) -> Result<(HealthUndo, AccountId), EventError> {
        let patient = self
            .patients
            .get_mut(&r.patient_id)
            .ok_or(EventError::UnknownPatient {
                patient: r.patient_id,
            })?;
        consented(patient, asker, &[Category::TestsAndResults])?;
        let order = self
            .orders
            .get_mut(&r.order_id)
            .ok_or(EventError::UnknownOrder { order: r.order_id })?;
        if order.patient_id != r.patient_id {
            return Err(EventError::OrderOfAnotherPatient {
                order: r.order_id,
                ordered_for: order.patient_id,
                patient: r.patient_id,
            });
        }
        if let Some(result) = order.result {
            return Err(EventError::OrderAlreadyAnswered {
                order: r.order_id,
                result,
            });
        }
        order.result = Some(at.tx_id);
        let doctor = order.ordered.author;
        self.results.insert(
            at.tx_id,
            Box::new(LabResult {
                patient_id: r.patient_id,
                order_id: r.order_id,
                recorded: at,
            }),
        );
        push_compact(&mut patient.results, at.tx_id);
        patient
            .history
            .push(HistoryEntry::of(at, EventKind::LabTestResult));
        Ok((
            HealthUndo::ResultRecorded(r.patient_id, r.order_id, at.tx_id),
            doctor,
        ))
    }

    fn prescribe(
        &mut self,
        p: &Prescription,
        asker: Asker,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self
            .patients
            .get_mut(&p.patient_id)
            .ok_or(EventError::UnknownPatient {
                patient: p.patient_id,
            })?;
        consented(patient, asker, &[Category::Prescriptions])?;
        let Entry::Vacant(slot) = self.prescriptions.entry(p.prescription_id) else {
            return Err(EventError::DuplicatePrescription {
                prescription: p.prescription_id,
            });
        };
        for (i, id) in p.based_on.iter().enumerate() {
            let result = self
                .results
                .get(id)
                .ok_or(EventError::UnknownResult { result: *id })?;
            if result.patient_id != p.patient_id {
                return Err(EventError::ResultOfAnotherPatient {
                    result: *id,
                    tested: result.patient_id,
                    patient: p.patient_id,
                });
            }
            // Bounded by MAX_BASED_ON, so the quadratic check stays tiny.
            if p.based_on[..i].contains(id) {
                return Err(EventError::RepeatedResult { result: *id });
            }
        }
        slot.insert(Box::new(PrescriptionRecord {
            id: p.prescription_id,
            patient_id: p.patient_id,
            based_on: p.based_on.clone(),
            prescribed: at,
            filled: None,
        }));
        push_compact(&mut patient.prescriptions, p.prescription_id);
        patient
            .history
            .push(HistoryEntry::of(at, EventKind::Prescription));
        Ok(HealthUndo::Prescribed(p.patient_id, p.prescription_id))
    }

    /// Records a fill; returns the undo and the prescribing doctor.
    fn fill(
        &mut self,
        f: &PrescriptionFilled,
        asker: Asker,
        at: Recorded,
    ) -> Result<(HealthUndo, AccountId), EventError> {
        let record = self.prescriptions.get_mut(&f.prescription_id).ok_or(
            EventError::UnknownPrescription {
                prescription: f.prescription_id,
            },
        )?;
        if let Some(patient) = self.patients.get(&record.patient_id) {
            consented(patient, asker, &[Category::Prescriptions])?;
        }
        if let Some(fill) = record.filled {
            return Err(EventError::AlreadyFilled {
                prescription: f.prescription_id,
                fill: fill.tx_id,
            });
        }
        record.filled = Some(at);
        let patient = record.patient_id;
        let doctor = record.prescribed.author;
        if let Some(p) = self.patients.get_mut(&patient) {
            p.history
                .push(HistoryEntry::of(at, EventKind::PrescriptionFilled));
        }
        Ok((HealthUndo::Filled(patient, f.prescription_id), doctor))
    }
}

/// What the proof memo knows a registration's patient key proof by: the network, the
/// patient and everything the proof covers, and the proof.
fn proof_digest(genesis: &BlockHash, r: &PatientRegistration) -> ledger_core::Hash {
    let keys = &r.patient_keys;
    ledger_core::Hash::of_parts(&[
        genesis.hash().as_bytes(),
        r.patient_id.uuid().as_bytes(),
        keys.account.as_bytes(),
        &keys.encryption.to_byte_array(),
        keys.proof.as_bytes(),
    ])
}

impl Policy for HealthPolicy {
    type Payload = Event;
    type State = HealthState;
    type Undo = HealthUndo;
    type Error = EventError;

    fn genesis_state(&self, genesis: &Genesis) -> HealthState {
        let mut state = HealthState::default();
        for member in &genesis.roster {
            if let Some(encryption) = &member.encryption {
                state.encryption_keys.insert(member.account, encryption.key);
            }
        }
        state
    }

    fn apply(
        &self,
        ctx: &TxContext<'_>,
        state: &mut HealthState,
        event: &Event,
    ) -> Result<Applied<HealthUndo>, EventError> {
        authorise(ctx, state, event)?;
        event.check_form()?;
        let at = recorded(ctx);
        let asker = asker(ctx);
        // Each step checks everything before it changes anything, so an error leaves
        // the state as it was.
        match event {
            Event::PatientRegistration(r) => state.register(ctx, r, at).map(Applied::new),
            Event::DoctorConsultation(c) => state.consult(c, asker, at).map(Applied::new),
            Event::LabTestResult(r) => state
                .record_result(r, asker, at)
                .map(|done| rewarded(done, Rates::reward_lab_result_of(ctx.genesis))),
            Event::Prescription(p) => state.prescribe(p, asker, at).map(Applied::new),
            Event::PrescriptionFilled(f) => state
                .fill(f, asker, at)
                .map(|done| rewarded(done, Rates::reward_fill_of(ctx.genesis))),
            Event::EncryptionKeyRotation(r) => {
                let before = state.encryption_keys.insert(ctx.author, r.key);
                Ok(Applied::new(HealthUndo::KeyRotated(ctx.author, before)))
            }
            Event::ConsentGrant(g) => state.grant(ctx, g, at).map(Applied::new),
            Event::ConsentRevocation(r) => state.revoke(r, at).map(Applied::new),
            Event::AccessRecord(a) => state.record_access(ctx, a, at).map(Applied::new),
            Event::ErasureRequest(e) => state.request_erasure(&e.patient_id, at).map(Applied::new),
            Event::ErasureReceipt(r) => state.confirm_erasure(r, at).map(Applied::new),
        }
    }

    /// Verifies the patient key proofs of a run of registrations in one batch, on every
    /// core, and remembers the valid ones: `apply` then finds them proven.
    fn prepare(&self, state: &HealthState, genesis_hash: &BlockHash, events: &[&Event]) {
        let registrations: Vec<(ledger_core::Hash, Vec<u8>, &PatientRegistration)> = events
            .iter()
            .filter_map(|event| match event {
                Event::PatientRegistration(r) => Some(r),
                _ => None,
            })
            .map(|r| {
                let keys = &r.patient_keys;
                let message = PatientKeys::message(
                    genesis_hash,
                    &r.patient_id,
                    &keys.account,
                    &keys.encryption,
                );
                (proof_digest(genesis_hash, r), message, r)
            })
            .filter(|(digest, _, _)| !state.proven.knows(digest))
            .collect();
        if registrations.is_empty() {
            return;
        }
        let signatures: Vec<(AccountId, &[u8], ledger_core::Signature)> = registrations
            .iter()
            .map(|(_, message, r)| {
                (
                    r.patient_keys.account,
                    message.as_slice(),
                    r.patient_keys.proof,
                )
            })
            .collect();
        let valid = ledger_core::verify_signatures(&signatures);
        for ((digest, _, _), ok) in registrations.iter().zip(valid) {
            if ok {
                state.proven.remember(*digest);
            }
        }
    }

    fn labelled_refs(&self, author: &AccountId, event: &Event) -> Vec<(SealedRef, BodyLabel)> {
        let subject = event.patient_id().map_or([0; 16], |p| *p.uuid().as_bytes());
        let kind = event.kind().code();
        event
            .sealed()
            .into_iter()
            .map(|(section, r)| {
                let label = BodyLabel {
                    subject,
                    category: section.category().code(),
                    author: *author,
                    kind,
                };
                (r, label)
            })
            .collect()
    }

    fn encryption_key(
        &self,
        state: &HealthState,
        account: &AccountId,
    ) -> Option<EncryptionPublicKey> {
        state.encryption_key(account)
    }

    fn body_access(
        &self,
        genesis: &Genesis,
        state: &HealthState,
        label: &BodyLabel,
        reader: &AccountId,
        now: Timestamp,
    ) -> BodyAccess {
        let Some(category) = Category::from_code(label.category) else {
            return BodyAccess::Denied;
        };
        let patient = PatientId(Uuid::from_bytes(label.subject));
        state.body_access(genesis, &patient, category, reader, now)
    }

    fn check_transfer(
        &self,
        ctx: &TxContext<'_>,
        state: &HealthState,
        to: &AccountId,
        _amount: Amount,
    ) -> Result<(), EventError> {
        for account in [&ctx.author, to] {
            if state.patient_accounts.contains_key(account) {
                return Err(EventError::PatientHoldsNoEcash { account: *account });
            }
        }
        Ok(())
    }

    fn sealed_refs(&self, event: &Event) -> Vec<SealedRef> {
        event.sealed().into_iter().map(|(_, r)| r).collect()
    }

    fn undo(&self, state: &mut HealthState, undo: HealthUndo) {
        match undo {
            HealthUndo::Registered(patient) => {
                if let Some(p) = state.patients.remove(&patient) {
                    state.patient_accounts.remove(&p.account);
                    state.encryption_keys.remove(&p.account);
                }
                state.registrations.pop();
            }
            HealthUndo::Consulted(patient, orders) => {
                let p = state.pop_history(&patient);
                let kept = p.orders.len() - orders.len();
                p.orders.truncate(kept);
                for order in &orders {
                    state.orders.remove(order);
                }
            }
            HealthUndo::ResultRecorded(patient, order, result) => {
                state.pop_history(&patient).results.pop();
                state.results.remove(&result);
                state.orders.get_mut(&order).expect(UNDO_ORDER).result = None;
            }
            HealthUndo::Prescribed(patient, prescription) => {
                state.pop_history(&patient).prescriptions.pop();
                state.prescriptions.remove(&prescription);
            }
            HealthUndo::Filled(patient, prescription) => {
                state.pop_history(&patient);
                state
                    .prescriptions
                    .get_mut(&prescription)
                    .expect(UNDO_ORDER)
                    .filled = None;
            }
            HealthUndo::KeyRotated(account, before) => match before {
                Some(key) => {
                    state.encryption_keys.insert(account, key);
                }
                None => {
                    state.encryption_keys.remove(&account);
                }
            },
            HealthUndo::Granted(patient) => state.undo_consent(&patient, |c| {
                c.grants.pop();
            }),
            HealthUndo::Revoked(patient, grant) => state.undo_consent(&patient, |c| match grant {
                GrantRef::Treatment(_) => {
                    c.treatment_revoked.pop();
                }
                GrantRef::Grant(id) => {
                    if let Some(g) = c.grants.iter_mut().find(|g| g.grant.grant_id == id) {
                        g.revoked = None;
                    }
                }
            }),
            HealthUndo::Accessed(patient, break_glass) => state.undo_consent(&patient, |c| {
                c.accesses.pop();
                if break_glass {
                    c.break_glass.pop();
                }
            }),
            HealthUndo::ErasureRequested(patient) => {
                state.erased.pop();
                state.undo_consent(&patient, |c| c.erased = None);
            }
            HealthUndo::ErasureConfirmed(patient) => state.undo_consent(&patient, |c| {
                c.receipts.pop();
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::{Hash, Height, Timestamp};

    use super::*;
    use crate::demo::{demo_genesis, demo_keypair};
    use crate::event::{EncryptionKeyRotation, TestOrder};
    use crate::seal::BodyId;

    /// A reference to a body no one here reads: the rules never look inside.
    fn sealed(n: u8) -> SealedRef {
        SealedRef {
            body_id: BodyId::from_byte_array([n; 16]),
            commitment: Hash::of(&[n]),
            ciphertext_hash: Hash::of(&[n, n]),
            ciphertext_len: 64,
        }
    }

    fn patient_keys(genesis: &Genesis, patient: PatientId) -> crate::PatientKeys {
        crate::PatientKeys::sign(
            &genesis.hash(),
            &patient,
            &crate::demo::demo_patient_keypair(&patient),
        )
    }

    fn apply(
        genesis: &Genesis,
        state: &mut HealthState,
        username: &str,
        n: u8,
        event: &Event,
    ) -> Result<Applied<HealthUndo>, EventError> {
        let author = demo_keypair(username).account();
        let ctx = TxContext {
            tx_id: TxId::from_hash(Hash::of(&[n])),
            author,
            member: genesis.member(&author),
            genesis_hash: genesis.hash(),
            height: Height(u64::from(n)),
            block_time: Timestamp(u64::from(n) * 1000),
            tx_time: Timestamp(0),
            genesis,
        };
        HealthPolicy.apply(&ctx, state, event)
    }

    #[test]
    fn undo_restores_each_previous_state_exactly() {
        let genesis = demo_genesis();
        let patient = PatientId::from_random_bytes([1; 16]);
        let order = OrderId::from_random_bytes([2; 16]);
        let prescription = PrescriptionId::from_random_bytes([3; 16]);
        let result = TxId::from_hash(Hash::of(&[3]));
        let steps = [
            (
                "dr_alice",
                Event::PatientRegistration(PatientRegistration {
                    patient_id: patient,
                    demographics: sealed(1),
                    patient_keys: patient_keys(&genesis, patient),
                }),
            ),
            (
                "dr_alice",
                Event::DoctorConsultation(DoctorConsultation {
                    patient_id: patient,
                    notes: sealed(2),
                    test_orders: vec![TestOrder {
                        order_id: order,
                        test: sealed(3),
                    }],
                }),
            ),
            (
                "lab_tech_bob",
                Event::LabTestResult(LabTestResult {
                    patient_id: patient,
                    order_id: order,
                    results: sealed(4),
                }),
            ),
            (
                "dr_alice",
                Event::DoctorConsultation(DoctorConsultation {
                    patient_id: patient,
                    notes: sealed(8),
                    test_orders: vec![
                        TestOrder {
                            order_id: OrderId::from_random_bytes([8; 16]),
                            test: sealed(9),
                        },
                        TestOrder {
                            order_id: OrderId::from_random_bytes([9; 16]),
                            test: sealed(10),
                        },
                    ],
                }),
            ),
            (
                "dr_alice",
                Event::Prescription(Prescription {
                    prescription_id: prescription,
                    patient_id: patient,
                    details: sealed(5),
                    based_on: vec![result],
                }),
            ),
            (
                "pharm_charlie",
                Event::PrescriptionFilled(PrescriptionFilled {
                    prescription_id: prescription,
                }),
            ),
            (
                "lab_tech_bob",
                Event::EncryptionKeyRotation(EncryptionKeyRotation {
                    key: EncryptionPublicKey::from_byte_array([7; 32]),
                }),
            ),
        ];
        let mut state = HealthState::default();
        let mut snapshots = Vec::new();
        let mut undos = Vec::new();
        for (n, (user, event)) in (1u8..).zip(&steps) {
            snapshots.push(state.clone());
            let applied = apply(&genesis, &mut state, user, n, event).expect("valid step");
            undos.push(applied.undo);
            // Applying the same event again fails and changes nothing (a rotation to
            // the key already in force is no error, and changes nothing either).
            let after = state.clone();
            let again = apply(&genesis, &mut state, user, n, event);
            if event.kind() == EventKind::EncryptionKeyRotation {
                assert_eq!(state, after);
            } else {
                assert!(again.is_err());
                assert_eq!(state, after);
            }
        }
        assert_eq!(state.history(&patient).map(<[_]>::len), Some(6));
        // The lab result is listed for its patient, answering its order, by the lab.
        let results = state.lab_results(&patient);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].1.order_id, order);
        assert_eq!(results[0].1.patient_id, patient);
        assert_eq!(
            results[0].1.recorded.author,
            demo_keypair("lab_tech_bob").account()
        );
        assert!(
            state
                .lab_results(&PatientId::from_random_bytes([9; 16]))
                .is_empty()
        );
        while let Some(undo) = undos.pop() {
            HealthPolicy.undo(&mut state, undo);
            assert_eq!(Some(&state), snapshots.last());
            snapshots.pop();
        }
        assert_eq!(state, HealthState::default());
    }

    #[test]
    fn the_runtime_is_told_every_sealed_body_of_an_event() {
        let consultation = Event::DoctorConsultation(DoctorConsultation {
            patient_id: PatientId::from_random_bytes([1; 16]),
            notes: sealed(2),
            test_orders: vec![TestOrder {
                order_id: OrderId::from_random_bytes([3; 16]),
                test: sealed(3),
            }],
        });
        assert_eq!(
            HealthPolicy.sealed_refs(&consultation),
            vec![sealed(2), sealed(3)]
        );
        let fill = Event::PrescriptionFilled(PrescriptionFilled {
            prescription_id: PrescriptionId::from_random_bytes([4; 16]),
        });
        assert!(HealthPolicy.sealed_refs(&fill).is_empty());
    }

    #[test]
    fn each_sealed_body_is_labelled_with_its_patient_category_author_and_kind() {
        let patient = PatientId::from_random_bytes([1; 16]);
        let consultation = Event::DoctorConsultation(DoctorConsultation {
            patient_id: patient,
            notes: sealed(2),
            test_orders: vec![TestOrder {
                order_id: OrderId::from_random_bytes([3; 16]),
                test: sealed(3),
            }],
        });
        let author = demo_keypair("dr_alice").account();
        let labelled = HealthPolicy.labelled_refs(&author, &consultation);
        let label = |category: Category| BodyLabel {
            subject: *patient.uuid().as_bytes(),
            category: category.code(),
            author,
            kind: EventKind::DoctorConsultation.code(),
        };
        assert_eq!(
            labelled,
            [
                (sealed(2), label(Category::ConsultationNotes)),
                (sealed(3), label(Category::TestsAndResults)),
            ]
        );
    }

    #[test]
    fn prepare_remembers_only_proofs_that_verify() {
        let genesis = demo_genesis();
        let state = HealthPolicy.genesis_state(&genesis);
        let (good, bad) = (
            PatientId::from_random_bytes([1; 16]),
            PatientId::from_random_bytes([2; 16]),
        );
        let registration = |patient: PatientId, keys: crate::PatientKeys| {
            Event::PatientRegistration(PatientRegistration {
                patient_id: patient,
                demographics: sealed(1),
                patient_keys: keys,
            })
        };
        let mut forged = patient_keys(&genesis, bad);
        forged.proof = demo_keypair("dr_alice").sign(b"not the keys");
        let events = [
            registration(good, patient_keys(&genesis, good)),
            registration(bad, forged),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        HealthPolicy.prepare(&state, &genesis.hash(), &refs);
        let digest = |e: &Event| match e {
            Event::PatientRegistration(r) => proof_digest(&genesis.hash(), r),
            _ => unreachable!(),
        };
        assert!(state.proven.knows(&digest(&events[0])));
        assert!(!state.proven.knows(&digest(&events[1])));
        // The forged one is still refused when applied.
        let mut state = state;
        assert_eq!(
            apply(&genesis, &mut state, "dr_alice", 1, &events[1]).map(|_| ()),
            Err(EventError::PatientKeyNotProven { patient: bad })
        );
    }

    #[test]
    fn a_readers_encryption_key_is_the_one_in_force() {
        let genesis = demo_genesis();
        let state = HealthPolicy.genesis_state(&genesis);
        let lab = demo_keypair("lab_tech_bob").account();
        assert_eq!(
            HealthPolicy.encryption_key(&state, &lab),
            genesis
                .member(&lab)
                .and_then(|m| m.encryption)
                .map(|e| e.key)
        );
        assert!(
            HealthPolicy
                .encryption_key(&state, &genesis.reserve)
                .is_none()
        );
    }

    #[test]
    fn undoing_a_patients_consent_event_gives_the_state_a_replay_would() {
        let genesis = demo_genesis();
        let mut state = HealthPolicy.genesis_state(&genesis);
        let patient = PatientId::from_random_bytes([1; 16]);
        let register = Event::PatientRegistration(PatientRegistration {
            patient_id: patient,
            demographics: sealed(1),
            patient_keys: patient_keys(&genesis, patient),
        });
        apply(&genesis, &mut state, "dr_alice", 1, &register).expect("valid");
        let registered = state.clone();
        // An access record by the lab: the consent record is created, then undone.
        let access = Event::AccessRecord(crate::patient::AccessRecord {
            patient_id: patient,
            reader: demo_keypair("lab_tech_bob").account(),
            bodies: vec![BodyId::from_byte_array([1; 16])],
            purpose: crate::patient::AccessPurpose::Treatment,
        });
        let applied = apply(&genesis, &mut state, "lab_tech_bob", 2, &access).expect("valid");
        assert!(
            state
                .patient(&patient)
                .expect("registered")
                .consent
                .is_some()
        );
        HealthPolicy.undo(&mut state, applied.undo);
        assert_eq!(state, registered);
        // The patient reads every category of her own records.
        let account = state.patient(&patient).expect("registered").account;
        for category in Category::ALL {
            assert_eq!(
                state.may_read(&genesis, &patient, category, &account, Timestamp(0)),
                Ok(())
            );
        }
    }

    #[test]
    fn a_patients_first_record_takes_room_for_one() {
        let mut list = Vec::new();
        push_compact(&mut list, 1u64);
        assert_eq!(list.capacity(), 1);
        push_compact(&mut list, 2);
        assert_eq!(list, [1, 2]);
        assert!(list.capacity() >= 2);
    }

    #[test]
    fn rewards_go_to_the_ordering_and_the_prescribing_doctor() {
        let genesis = demo_genesis();
        let rates = Rates::of(&genesis);
        assert_eq!(rates.reward_lab_result, Amount(500));
        assert_eq!(rates.reward_fill, Amount(700));
        assert_eq!(rates.lab_payment, Amount(100));
        let mut state = HealthState::default();
        let patient = PatientId::from_random_bytes([1; 16]);
        let order = OrderId::from_random_bytes([2; 16]);
        let register = Event::PatientRegistration(PatientRegistration {
            patient_id: patient,
            demographics: sealed(1),
            patient_keys: patient_keys(&genesis, patient),
        });
        let consult = Event::DoctorConsultation(DoctorConsultation {
            patient_id: patient,
            notes: sealed(2),
            test_orders: vec![TestOrder {
                order_id: order,
                test: sealed(3),
            }],
        });
        let result = Event::LabTestResult(LabTestResult {
            patient_id: patient,
            order_id: order,
            results: sealed(4),
        });
        for (n, event) in [(1, &register), (2, &consult)] {
            let applied = apply(&genesis, &mut state, "dr_alice", n, event).expect("valid");
            assert!(applied.rewards.is_empty());
        }
        let applied = apply(&genesis, &mut state, "lab_tech_bob", 3, &result).expect("valid");
        let alice = demo_keypair("dr_alice").account();
        assert_eq!(applied.rewards, vec![(alice, Amount(500))]);
    }

    #[test]
    fn a_consultation_adds_all_its_orders_or_none() {
        let genesis = demo_genesis();
        let mut state = HealthState::default();
        let patient = PatientId::from_random_bytes([1; 16]);
        let register = Event::PatientRegistration(PatientRegistration {
            patient_id: patient,
            demographics: sealed(1),
            patient_keys: patient_keys(&genesis, patient),
        });
        apply(&genesis, &mut state, "dr_alice", 1, &register).expect("valid");
        let order = |n: u8| TestOrder {
            order_id: OrderId::from_random_bytes([n; 16]),
            test: sealed(n),
        };
        let consult = |orders: Vec<TestOrder>| {
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(2),
                test_orders: orders,
            })
        };
        apply(
            &genesis,
            &mut state,
            "dr_alice",
            2,
            &consult(vec![order(10), order(11)]),
        )
        .expect("two fresh orders");
        assert_eq!(state.open_orders(&patient).len(), 2);
        let before = state.clone();
        // The second order reuses an id: nothing of the consultation is kept.
        assert_eq!(
            apply(
                &genesis,
                &mut state,
                "dr_alice",
                3,
                &consult(vec![order(12), order(11)])
            )
            .err(),
            Some(EventError::DuplicateOrder {
                order: OrderId::from_random_bytes([11; 16])
            })
        );
        assert_eq!(state, before);
        assert!(state.order(&OrderId::from_random_bytes([12; 16])).is_none());
    }
}
