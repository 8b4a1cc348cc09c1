//! The healthcare state the chain implies, with indexes for every query.
//!
//! The state holds what the rules need (who registered whom, which orders are open,
//! which results and prescriptions exist, each member's encryption key) and where each
//! event was recorded. It holds no clinical text: names, notes, tests, results and
//! medication are sealed bodies, kept in the vaults of the nodes that may read them.
//! [`records`](crate::records) reads events back from the blocks by these indexes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ledger_core::{AccountId, BoundedSet, Hash, Height, Timestamp, TxId};

use crate::event::EventKind;
use crate::ids::{OrderId, PatientId, PrescriptionId};
use crate::patient::Consent;
use crate::seal::{EncryptionPublicKey, SealedRef};

/// Where and by whom an event was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The transaction that carried it.
    pub tx_id: TxId,
    /// Height of its block.
    pub height: Height,
    /// Timestamp of its block.
    pub time: Timestamp,
    /// Its signing author.
    pub author: AccountId,
}

/// One event of a patient's history, as indexed: which kind, and where to read it.
///
/// The event itself is in the block at `height`; [`records::patient_history`]
/// reads the history back with each event, its time and author.
///
/// [`records::patient_history`]: crate::records::patient_history
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The transaction that carried it.
    pub tx_id: TxId,
    /// Height of its block.
    pub height: Height,
    /// What kind of event it is.
    pub kind: EventKind,
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    /// The patient's id: the pseudonym the chain knows the patient by. The name is
    /// sealed in the registration.
    pub id: PatientId,
    /// The sealed name, as the registration names it: the registry and lookups open
    /// it without reading the registration's block.
    pub demographics: SealedRef,
    /// The registration: its transaction, block and registering doctor.
    pub registered: Recorded,
    /// Every event about this patient, in chain order (the registration first).
    pub history: Vec<HistoryEntry>,
    /// The patient's test orders, in chain order.
    pub orders: Vec<OrderId>,
    /// The patient's lab results, in chain order.
    pub results: Vec<TxId>,
    /// The patient's prescriptions, in chain order.
    pub prescriptions: Vec<PrescriptionId>,
    /// The patient's signing account (its encryption key is in
    /// [`HealthState::encryption_key`]).
    pub account: AccountId,
    /// What the patient changed of the treatment-consent default, who read what, and
    /// the erasure: `None` while the patient has changed nothing and nobody's read was
    /// recorded.
    pub consent: Option<Box<Consent>>,
}

impl Patient {
    /// Whether the patient asked for erasure.
    pub fn is_erased(&self) -> bool {
        self.consent.as_ref().is_some_and(|c| c.erased.is_some())
    }

    /// The patient's consent record (the treatment default when the patient changed
    /// nothing).
    pub fn consent(&self) -> Consent {
        self.consent.as_deref().cloned().unwrap_or_default()
    }
}

/// A test order made in a consultation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The order's id.
    pub id: OrderId,
    /// The patient to test. What to test is sealed in the consultation.
    pub patient_id: PatientId,
    /// The consultation that ordered it.
    pub ordered: Recorded,
    /// The lab result that answered it, once there is one.
    pub result: Option<TxId>,
}

impl Order {
    /// Whether the order still waits for its result.
    pub fn is_open(&self) -> bool {
        self.result.is_none()
    }
}

/// A recorded lab result, named by the id of its transaction. The event (its sealed
/// results) is read back from the block with
/// [`records::recorded_event`](crate::records::recorded_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabResult {
    /// The patient tested.
    pub patient_id: PatientId,
    /// The order it answers.
    pub order_id: OrderId,
    /// Its transaction (whose id names the result), block and technician.
    pub recorded: Recorded,
}

/// A prescription and whether it has been filled. The event (its sealed medication,
/// dosage and instructions) is read back from the block with
/// [`records::prescription`](crate::records::prescription).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrescriptionRecord {
    /// The prescription's id.
    pub id: PrescriptionId,
    /// The patient it is for.
    pub patient_id: PatientId,
    /// The lab results it is based on.
    pub based_on: Vec<TxId>,
    /// Its transaction, block and prescribing doctor.
    pub prescribed: Recorded,
    /// The fill: its transaction, block and pharmacist, once filled.
    pub filled: Option<Recorded>,
}

/// The healthcare state: patients, test orders, lab results, prescriptions and each
/// patient's history, indexed by id. Maintained incrementally by
/// [`HealthPolicy`](crate::HealthPolicy) block by block; every query is an index
/// lookup, never a walk over the chain.
///
/// It grows with the number of patients, orders, results and prescriptions (a few
/// hundred bytes each), and holds no clinical text: that is sealed, off the chain.
///
/// Each record has its own allocation and the tables hold ids and pointers, so a
/// growing table moves entries of a few dozen bytes, not whole records, and leaves
/// no room for whole records empty (replaying a million transactions took a quarter
/// less memory, and less time, than with the records inside the tables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthState {
    pub(crate) patients: HashMap<PatientId, Box<Patient>>,
    /// Patients in registration (chain) order, for the registry.
    pub(crate) registrations: Vec<PatientId>,
    pub(crate) orders: HashMap<OrderId, Box<Order>>,
    pub(crate) results: HashMap<TxId, Box<LabResult>>,
    pub(crate) prescriptions: HashMap<PrescriptionId, Box<PrescriptionRecord>>,
    /// Each member's and patient's current encryption key: the genesis roster's or the
    /// registration's, or the latest rotation's.
    pub(crate) encryption_keys: HashMap<AccountId, EncryptionPublicKey>,
    /// Each patient's signing account, to the patient.
    pub(crate) patient_accounts: HashMap<AccountId, PatientId>,
    /// Patients who asked for erasure, in chain order.
    pub(crate) erased: Vec<PatientId>,
    /// Patient key proofs found valid lately, so a registration checked in the mempool
    /// is not checked again when its block is built and validated.
    pub(crate) proven: ProofMemo,
}

/// The registrations whose patient key proof verified lately (a bounded set of their
/// digests). Verification is a pure function, so remembering a valid proof never
/// changes a verdict; the memo is shared by the clones of a state and is not part of
/// the state's value: two states compare equal whatever their memos hold.
#[derive(Clone)]
pub(crate) struct ProofMemo(Arc<Mutex<BoundedSet<Hash>>>);

/// Most patient key proofs [`ProofMemo`] remembers: more than a block's transactions
/// ([`ledger_core::limits::MAX_TXS_PER_BLOCK`]), so the proofs of a block checked ahead
/// are all still remembered when it is applied.
pub(crate) const MAX_PROOFS_REMEMBERED: usize = 16_384;

impl Default for ProofMemo {
    fn default() -> Self {
        ProofMemo(Arc::new(Mutex::new(BoundedSet::new(MAX_PROOFS_REMEMBERED))))
    }
}

impl ProofMemo {
    /// Whether the proof with digest `digest` was found valid lately.
    pub(crate) fn knows(&self, digest: &Hash) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(digest)
    }

    /// Remembers that the proof with digest `digest` is valid: only for a proof that was
    /// verified.
    pub(crate) fn remember(&self, digest: Hash) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(digest);
    }

    /// Whether `verify` holds for the proof with digest `digest`, verifying it only if
    /// it was not found valid lately.
    pub(crate) fn check(&self, digest: Hash, verify: impl FnOnce() -> bool) -> bool {
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if lock().contains(&digest) {
            return true;
        }
        let valid = verify();
        if valid {
            lock().insert(digest);
        }
        valid
    }
}

impl std::fmt::Debug for ProofMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofMemo")
    }
}

impl PartialEq for ProofMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ProofMemo {}

impl HealthState {
    /// A registered patient.
    pub fn patient(&self, id: &PatientId) -> Option<&Patient> {
        self.patients.get(id).map(Box::as_ref)
    }

    /// Every patient, in registration order.
    pub fn patients(&self) -> impl ExactSizeIterator<Item = &Patient> {
        self.registrations.iter().map(|id| &*self.patients[id])
    }

    /// Number of registered patients.
    pub fn patient_count(&self) -> usize {
        self.registrations.len()
    }

    /// A patient's history in chain order: each event's kind, transaction and block
    /// height; `None` for an unknown patient. [`records::patient_history`] reads the
    /// events themselves.
    ///
    /// [`records::patient_history`]: crate::records::patient_history
    pub fn history(&self, patient: &PatientId) -> Option<&[HistoryEntry]> {
        self.patients.get(patient).map(|p| p.history.as_slice())
    }

    /// A test order.
    pub fn order(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id).map(Box::as_ref)
    }

    /// A patient's test orders still waiting for a result, oldest first (empty for an
    /// unknown patient).
    pub fn open_orders(&self, patient: &PatientId) -> Vec<&Order> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.orders)
            .filter_map(|id| self.orders.get(id).map(Box::as_ref))
            .filter(|o| o.is_open())
            .collect()
    }

    /// A lab result, by the id of the transaction that recorded it.
    pub fn lab_result(&self, id: &TxId) -> Option<&LabResult> {
        self.results.get(id).map(Box::as_ref)
    }

    /// A patient's lab results, oldest first, with their ids.
    pub fn lab_results(&self, patient: &PatientId) -> Vec<(TxId, &LabResult)> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.results)
            .filter_map(|id| self.results.get(id).map(|r| (*id, r.as_ref())))
            .collect()
    }

    /// The lab results a new prescription for `patient` is based on, oldest first: the
    /// patient's results that none of their recorded prescriptions is based on yet.
    ///
    /// This is the rule for which results are still unpaid: a prescription pays the lab
    /// for the results it is based on ([`Actor::prescribe`](crate::Actor::prescribe)),
    /// so a result cited by an earlier prescription has been paid for and is left out.
    /// Only recorded (mined) prescriptions count; empty for an unknown patient.
    pub fn unpaid_lab_results(&self, patient: &PatientId) -> Vec<TxId> {
        let Some(record) = self.patients.get(patient) else {
            return Vec::new();
        };
        let cited: HashSet<TxId> = record
            .prescriptions
            .iter()
            .filter_map(|id| self.prescriptions.get(id))
            .flat_map(|p| p.based_on.iter().copied())
            .collect();
        record
            .results
            .iter()
            .filter(|id| self.results.contains_key(id) && !cited.contains(id))
            .copied()
            .collect()
    }

    /// A prescription.
    pub fn prescription(&self, id: &PrescriptionId) -> Option<&PrescriptionRecord> {
        self.prescriptions.get(id).map(Box::as_ref)
    }

    /// The encryption key bodies for `account` are sealed to now: the one its latest
    /// rotation set, else the genesis roster's; `None` for an account with neither.
    pub fn encryption_key(&self, account: &AccountId) -> Option<EncryptionPublicKey> {
        self.encryption_keys.get(account).copied()
    }

    /// The patients who asked for erasure, in chain order.
    pub fn erased_patients(&self) -> impl ExactSizeIterator<Item = &Patient> {
        self.erased.iter().map(|id| &*self.patients[id])
    }

    /// The patient whose signing account is `account`.
    pub fn patient_of_account(&self, account: &AccountId) -> Option<&Patient> {
        self.patient_accounts
            .get(account)
            .and_then(|id| self.patient(id))
    }

    /// A patient's prescriptions not yet filled, oldest first.
    pub fn unfilled_prescriptions(&self, patient: &PatientId) -> Vec<&PrescriptionRecord> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.prescriptions)
            .filter_map(|id| self.prescriptions.get(id).map(Box::as_ref))
            .filter(|p| p.filled.is_none())
            .collect()
    }
}

impl HistoryEntry {
    /// The entry of an event of kind `kind` recorded at `recorded`.
    pub fn of(recorded: Recorded, kind: EventKind) -> HistoryEntry {
        HistoryEntry {
            tx_id: recorded.tx_id,
            height: recorded.height,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tx_id(n: u64) -> TxId {
        TxId::from_hex(&format!("{n:064x}")).expect("64 hex digits")
    }

    fn recorded(n: u64) -> Recorded {
        Recorded {
            tx_id: tx_id(n),
            height: Height(n),
            time: Timestamp(n),
            author: AccountId([0; 32]),
        }
    }

    fn sealed_ref() -> SealedRef {
        SealedRef {
            body_id: crate::seal::BodyId::from_byte_array([1; 16]),
            commitment: ledger_core::Hash::of(b"c"),
            ciphertext_hash: ledger_core::Hash::of(b"h"),
            ciphertext_len: 64,
        }
    }

    fn patient_id(n: u8) -> PatientId {
        PatientId::from_random_bytes([n; 16])
    }

    /// A state with one patient and `results` lab results (ids 1..=results).
    fn state_with_results(patient: PatientId, results: u64) -> HealthState {
        let mut state = HealthState::default();
        let mut record = Patient {
            id: patient,
            demographics: sealed_ref(),
            registered: recorded(0),
            history: Vec::new(),
            orders: Vec::new(),
            results: Vec::new(),
            prescriptions: Vec::new(),
            account: AccountId([0; 32]),
            consent: None,
        };
        for n in 1..=results {
            record.results.push(tx_id(n));
            state.results.insert(
                tx_id(n),
                Box::new(LabResult {
                    patient_id: patient,
                    order_id: OrderId::from_random_bytes([n as u8; 16]),
                    recorded: recorded(n),
                }),
            );
        }
        state.patients.insert(patient, Box::new(record));
        state.registrations.push(patient);
        state
    }

    /// Records a prescription for `patient` based on `based_on`.
    fn prescribe(state: &mut HealthState, patient: PatientId, n: u8, based_on: Vec<TxId>) {
        let id = PrescriptionId::from_random_bytes([n; 16]);
        state.prescriptions.insert(
            id,
            Box::new(PrescriptionRecord {
                id,
                patient_id: patient,
                based_on,
                prescribed: recorded(1000 + u64::from(n)),
                filled: None,
            }),
        );
        state
            .patients
            .get_mut(&patient)
            .expect("the patient is registered")
            .prescriptions
            .push(id);
    }

    #[test]
    fn the_proof_memo_remembers_only_valid_proofs() {
        let memo = ProofMemo::default();
        let (a, b) = (ledger_core::Hash::of(b"a"), ledger_core::Hash::of(b"b"));
        assert!(!memo.check(a, || false));
        assert!(
            !memo.check(a, || false),
            "an invalid proof is checked again"
        );
        assert!(memo.check(b, || true));
        assert!(memo.check(b, || unreachable!("a valid proof is remembered")));
        assert!(!memo.check(a, || false));
        // Clones share it, and it is no part of a state's value.
        let clone = memo.clone();
        assert!(clone.check(b, || unreachable!("shared")));
        assert_eq!(ProofMemo::default(), memo);
    }

    #[test]
    fn unknown_patient_has_no_unpaid_results() {
        let state = state_with_results(patient_id(1), 2);
        assert!(state.unpaid_lab_results(&patient_id(2)).is_empty());
    }

    #[test]
    fn results_cited_by_a_prescription_are_paid() {
        let patient = patient_id(1);
        let mut state = state_with_results(patient, 3);
        assert_eq!(
            state.unpaid_lab_results(&patient),
            [tx_id(1), tx_id(2), tx_id(3)]
        );
        prescribe(&mut state, patient, 1, vec![tx_id(2)]);
        assert_eq!(state.unpaid_lab_results(&patient), [tx_id(1), tx_id(3)]);
        prescribe(&mut state, patient, 2, vec![tx_id(1), tx_id(3)]);
        assert!(state.unpaid_lab_results(&patient).is_empty());
    }

    #[test]
    fn another_patients_prescriptions_do_not_count() {
        let ann = patient_id(1);
        let mut state = state_with_results(ann, 1);
        let bob = patient_id(2);
        state.patients.insert(
            bob,
            Box::new(Patient {
                id: bob,
                demographics: sealed_ref(),
                registered: recorded(0),
                history: Vec::new(),
                orders: Vec::new(),
                results: Vec::new(),
                prescriptions: Vec::new(),
                account: AccountId([1; 32]),
                consent: None,
            }),
        );
        prescribe(&mut state, bob, 1, vec![tx_id(1)]);
        assert_eq!(state.unpaid_lab_results(&ann), [tx_id(1)]);
    }

    proptest! {
        /// Prescribing again and again, each prescription based on the unpaid results
        /// of its time, with new results arriving in between: no result is paid twice,
        /// and every result is paid by the next prescription after it arrives.
        #[test]
        fn no_result_is_ever_paid_twice(arrivals in proptest::collection::vec(0u64..4, 1..12)) {
            let patient = patient_id(1);
            let mut state = state_with_results(patient, 0);
            let mut next_result = 1;
            let mut paid: Vec<TxId> = Vec::new();
            for (n, arriving) in arrivals.into_iter().enumerate() {
                let mut arrived = Vec::new();
                for _ in 0..arriving {
                    let id = tx_id(next_result);
                    next_result += 1;
                    state.results.insert(
                        id,
                        Box::new(LabResult {
                            patient_id: patient,
                            order_id: OrderId::from_random_bytes([0; 16]),
                            recorded: recorded(0),
                        }),
                    );
                    state
                        .patients
                        .get_mut(&patient)
                        .expect("the patient is registered")
                        .results
                        .push(id);
                    arrived.push(id);
                }
                let unpaid = state.unpaid_lab_results(&patient);
                prop_assert_eq!(&unpaid, &arrived);
                for id in &unpaid {
                    prop_assert!(!paid.contains(id), "{id:?} paid twice");
                }
                paid.extend(&unpaid);
                let n = u8::try_from(n).expect("fewer than 256 prescriptions");
                prescribe(&mut state, patient, n, unpaid);
            }
            prop_assert_eq!(paid.len() as u64, next_result - 1);
        }
    }
}
