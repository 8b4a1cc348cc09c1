//! The healthcare state the chain implies, with indexes for every query.

use std::collections::BTreeMap;

use ledger_core::{AccountId, Height, Timestamp, TxId};

use crate::event::Event;
use crate::ids::{OrderId, PatientId, PrescriptionId};

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

/// One event of a patient's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Where and by whom it was recorded.
    pub recorded: Recorded,
    /// The event.
    pub event: Event,
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    /// The patient's id.
    pub id: PatientId,
    /// The name given at registration.
    pub name: String,
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
}

/// A test order made in a consultation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The order's id.
    pub id: OrderId,
    /// The patient to test.
    pub patient_id: PatientId,
    /// What to test.
    pub test_name: String,
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

/// A recorded lab result, named by the id of its transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabResult {
    /// The patient tested.
    pub patient_id: PatientId,
    /// The order it answers.
    pub order_id: OrderId,
    /// The results text.
    pub results: String,
    /// Its transaction (whose id names the result), block and technician.
    pub recorded: Recorded,
}

/// A prescription and whether it has been filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrescriptionRecord {
    /// The prescription's id.
    pub id: PrescriptionId,
    /// The patient it is for.
    pub patient_id: PatientId,
    /// Medication.
    pub medication: String,
    /// Dosage.
    pub dosage: String,
    /// Instructions.
    pub instructions: String,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthState {
    pub(crate) patients: BTreeMap<PatientId, Patient>,
    /// Patients in registration (chain) order, for the registry.
    pub(crate) registrations: Vec<PatientId>,
    pub(crate) orders: BTreeMap<OrderId, Order>,
    pub(crate) results: BTreeMap<TxId, LabResult>,
    pub(crate) prescriptions: BTreeMap<PrescriptionId, PrescriptionRecord>,
}

impl HealthState {
    /// A registered patient.
    pub fn patient(&self, id: &PatientId) -> Option<&Patient> {
        self.patients.get(id)
    }

    /// Every patient, in registration order.
    pub fn patients(&self) -> impl ExactSizeIterator<Item = &Patient> {
        self.registrations.iter().map(|id| &self.patients[id])
    }

    /// Number of registered patients.
    pub fn patient_count(&self) -> usize {
        self.registrations.len()
    }

    /// A patient's history in chain order, with block height and time of each event;
    /// `None` for an unknown patient.
    pub fn history(&self, patient: &PatientId) -> Option<&[HistoryEntry]> {
        self.patients.get(patient).map(|p| p.history.as_slice())
    }

    /// A test order.
    pub fn order(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id)
    }

    /// A patient's test orders still waiting for a result, oldest first (empty for an
    /// unknown patient).
    pub fn open_orders(&self, patient: &PatientId) -> Vec<&Order> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.orders)
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.is_open())
            .collect()
    }

    /// A lab result, by the id of the transaction that recorded it.
    pub fn lab_result(&self, id: &TxId) -> Option<&LabResult> {
        self.results.get(id)
    }

    /// A patient's lab results, oldest first, with their ids.
    pub fn lab_results(&self, patient: &PatientId) -> Vec<(TxId, &LabResult)> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.results)
            .filter_map(|id| self.results.get(id).map(|r| (*id, r)))
            .collect()
    }

    /// A prescription.
    pub fn prescription(&self, id: &PrescriptionId) -> Option<&PrescriptionRecord> {
        self.prescriptions.get(id)
    }

    /// A patient's prescriptions not yet filled, oldest first.
    pub fn unfilled_prescriptions(&self, patient: &PatientId) -> Vec<&PrescriptionRecord> {
        self.patients
            .get(patient)
            .into_iter()
            .flat_map(|p| &p.prescriptions)
            .filter_map(|id| self.prescriptions.get(id))
            .filter(|p| p.filled.is_none())
            .collect()
    }
}
