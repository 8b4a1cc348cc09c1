//! The healthcare state the chain implies, with indexes for every query.
//!
//! The state holds what the rules need (who registered whom, which orders are open,
//! which results and prescriptions exist) and where each event was recorded; the free
//! text of events (notes, results, medication) stays in the block bodies, which live
//! in the block store. [`records`](crate::records) reads it back by these indexes.

use std::collections::HashMap;

use ledger_core::{AccountId, Height, Timestamp, TxId};

use crate::event::EventKind;
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

/// One event of a patient's history, as indexed: which kind, and where to read it.
///
/// The event itself is in the block at `height`; [`records::patient_history`]
/// reads the history back with each event's text, time and author.
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

/// A recorded lab result, named by the id of its transaction. Its text is read back
/// from the block with [`records::recorded_event`](crate::records::recorded_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabResult {
    /// The patient tested.
    pub patient_id: PatientId,
    /// The order it answers.
    pub order_id: OrderId,
    /// Its transaction (whose id names the result), block and technician.
    pub recorded: Recorded,
}

/// A prescription and whether it has been filled. Its text (medication, dosage,
/// instructions) is read back from the block with
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
/// hundred bytes each), not with the text of the events: that stays in the blocks.
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
}

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

    /// A prescription.
    pub fn prescription(&self, id: &PrescriptionId) -> Option<&PrescriptionRecord> {
        self.prescriptions.get(id).map(Box::as_ref)
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
