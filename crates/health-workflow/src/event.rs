//! The clinical events: the application payload carried by ledger transactions.

use std::fmt;

use ledger_core::{AccountId, TxId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{OrderId, PatientId, PrescriptionId};
use crate::limits;

/// The test ordered when a consultation does not name one.
pub const DEFAULT_TEST_NAME: &str = "Blood Test";

/// A doctor registers a new patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRegistration {
    /// The new patient's id (UUID v4, unused so far).
    pub patient_id: PatientId,
    /// The patient's name (1 to [`MAX_PATIENT_NAME`](limits::MAX_PATIENT_NAME) bytes).
    pub name: String,
}

/// A test a doctor orders during a consultation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOrder {
    /// The order's id (UUID v4, unused so far); the lab result names it.
    pub order_id: OrderId,
    /// What to test (1 to [`MAX_TEST_NAME`](limits::MAX_TEST_NAME) bytes).
    pub test_name: String,
}

impl TestOrder {
    /// An order for the default test, [`DEFAULT_TEST_NAME`].
    pub fn blood_test(order_id: OrderId) -> TestOrder {
        TestOrder {
            order_id,
            test_name: DEFAULT_TEST_NAME.to_string(),
        }
    }
}

/// A doctor sees a registered patient and may order a test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorConsultation {
    /// The patient seen.
    pub patient_id: PatientId,
    /// Free-text notes (at most [`MAX_NOTES`](limits::MAX_NOTES) bytes; may be empty).
    pub notes: String,
    /// The test ordered, if any.
    pub test_order: Option<TestOrder>,
}

/// A lab technician records the result of an open test order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabTestResult {
    /// The patient tested: the one the order was made for.
    pub patient_id: PatientId,
    /// The open order this result answers.
    pub order_id: OrderId,
    /// The results (1 to [`MAX_RESULTS`](limits::MAX_RESULTS) bytes).
    pub results: String,
}

/// A doctor prescribes medication, possibly based on lab results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prescription {
    /// The prescription's id (UUID v4, unused so far); the fill names it.
    pub prescription_id: PrescriptionId,
    /// The patient it is for.
    pub patient_id: PatientId,
    /// Medication (1 to [`MAX_MEDICATION`](limits::MAX_MEDICATION) bytes).
    pub medication: String,
    /// Dosage (1 to [`MAX_DOSAGE`](limits::MAX_DOSAGE) bytes).
    pub dosage: String,
    /// Instructions (at most [`MAX_INSTRUCTIONS`](limits::MAX_INSTRUCTIONS) bytes).
    pub instructions: String,
    /// The lab results read, each named by the id of the transaction that recorded it,
    /// all of this patient, without repeats, at most
    /// [`MAX_BASED_ON`](limits::MAX_BASED_ON). Their technicians are paid.
    pub based_on: Vec<TxId>,
}

/// A pharmacist fills a prescription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrescriptionFilled {
    /// The prescription filled: existing and not filled before.
    pub prescription_id: PrescriptionId,
}

/// A clinical event: the payload of an application transaction.
///
/// Events name each other by id: a lab result names its test order, a prescription
/// the lab results it is based on, a fill its prescription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// See [`PatientRegistration`].
    PatientRegistration(PatientRegistration),
    /// See [`DoctorConsultation`].
    DoctorConsultation(DoctorConsultation),
    /// See [`LabTestResult`].
    LabTestResult(LabTestResult),
    /// See [`Prescription`].
    Prescription(Prescription),
    /// See [`PrescriptionFilled`].
    PrescriptionFilled(PrescriptionFilled),
}

/// The kind of an [`Event`], for permissions and messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// [`Event::PatientRegistration`].
    PatientRegistration,
    /// [`Event::DoctorConsultation`].
    DoctorConsultation,
    /// [`Event::LabTestResult`].
    LabTestResult,
    /// [`Event::Prescription`].
    Prescription,
    /// [`Event::PrescriptionFilled`].
    PrescriptionFilled,
}

impl EventKind {
    /// Every kind, in workflow order.
    pub const ALL: [EventKind; 5] = [
        EventKind::PatientRegistration,
        EventKind::DoctorConsultation,
        EventKind::LabTestResult,
        EventKind::Prescription,
        EventKind::PrescriptionFilled,
    ];

    /// The name used in the original project (`PATIENT_REGISTRATION`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::PatientRegistration => "PATIENT_REGISTRATION",
            EventKind::DoctorConsultation => "DOCTOR_CONSULTATION",
            EventKind::LabTestResult => "LAB_TEST_RESULT",
            EventKind::Prescription => "PRESCRIPTION",
            EventKind::PrescriptionFilled => "PRESCRIPTION_FILLED",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an event is refused. The same checks run in the mempool and in block
/// validation, so a refusal names the same reason in both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The author is not in the genesis roster.
    #[error("account {account} is not a member of this network")]
    NotAMember {
        /// The author.
        account: AccountId,
    },
    /// The author's role may not record this kind of event.
    #[error("a member with role '{role}' may not record {event}")]
    NotPermitted {
        /// The author's roster role label.
        role: String,
        /// The event refused.
        event: EventKind,
    },
    /// A required text field is empty.
    #[error("{field} must not be empty")]
    EmptyText {
        /// The field.
        field: &'static str,
    },
    /// A text field is above its limit.
    #[error("{field} is {len} bytes, above the {max}-byte limit")]
    TextTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An id is not a version 4 UUID.
    #[error("{field} {id} is not a version 4 uuid")]
    NotUuidV4 {
        /// The field.
        field: &'static str,
        /// The id given.
        id: Uuid,
    },
    /// A registration reuses a patient id.
    #[error("patient {patient} is already registered")]
    DuplicatePatient {
        /// The patient id.
        patient: PatientId,
    },
    /// The event names a patient that was never registered.
    #[error("patient {patient} is not registered")]
    UnknownPatient {
        /// The patient id.
        patient: PatientId,
    },
    /// A consultation reuses a test order id.
    #[error("test order {order} already exists")]
    DuplicateOrder {
        /// The order id.
        order: OrderId,
    },
    /// A lab result names a test order that does not exist.
    #[error("test order {order} does not exist")]
    UnknownOrder {
        /// The order id.
        order: OrderId,
    },
    /// A lab result names another patient's test order.
    #[error("test order {order} is for patient {ordered_for}, not {patient}")]
    OrderOfAnotherPatient {
        /// The order id.
        order: OrderId,
        /// The patient the order is for.
        ordered_for: PatientId,
        /// The patient the result names.
        patient: PatientId,
    },
    /// A lab result answers a test order that already has a result.
    #[error("test order {order} was already answered by lab result {result}")]
    OrderAlreadyAnswered {
        /// The order id.
        order: OrderId,
        /// The result recorded first.
        result: TxId,
    },
    /// A prescription reuses a prescription id.
    #[error("prescription {prescription} already exists")]
    DuplicatePrescription {
        /// The prescription id.
        prescription: PrescriptionId,
    },
    /// A prescription is based on more lab results than allowed.
    #[error("a prescription is based on {count} lab results, above the limit of {max}")]
    TooManyResults {
        /// Results named.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A prescription names a lab result that does not exist.
    #[error("lab result {result} does not exist")]
    UnknownResult {
        /// The transaction id naming the result.
        result: TxId,
    },
    /// A prescription names another patient's lab result.
    #[error("lab result {result} is for patient {tested}, not {patient}")]
    ResultOfAnotherPatient {
        /// The result.
        result: TxId,
        /// The patient the result is for.
        tested: PatientId,
        /// The patient the prescription is for.
        patient: PatientId,
    },
    /// A prescription names the same lab result twice.
    #[error("lab result {result} is named twice")]
    RepeatedResult {
        /// The result.
        result: TxId,
    },
    /// A fill names a prescription that does not exist.
    #[error("prescription {prescription} does not exist")]
    UnknownPrescription {
        /// The prescription id.
        prescription: PrescriptionId,
    },
    /// A fill names a prescription that was already filled.
    #[error("prescription {prescription} was already filled by transaction {fill}")]
    AlreadyFilled {
        /// The prescription id.
        prescription: PrescriptionId,
        /// The transaction that filled it.
        fill: TxId,
    },
}

fn text(field: &'static str, value: &str, required: bool, max: usize) -> Result<(), EventError> {
    if required && value.is_empty() {
        return Err(EventError::EmptyText { field });
    }
    if value.len() > max {
        return Err(EventError::TextTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn v4(field: &'static str, id: Uuid) -> Result<(), EventError> {
    if id.get_version() == Some(uuid::Version::Random) {
        Ok(())
    } else {
        Err(EventError::NotUuidV4 { field, id })
    }
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::PatientRegistration(_) => EventKind::PatientRegistration,
            Event::DoctorConsultation(_) => EventKind::DoctorConsultation,
            Event::LabTestResult(_) => EventKind::LabTestResult,
            Event::Prescription(_) => EventKind::Prescription,
            Event::PrescriptionFilled(_) => EventKind::PrescriptionFilled,
        }
    }

    /// The patient the event names directly (a fill names a prescription instead).
    pub fn patient_id(&self) -> Option<PatientId> {
        match self {
            Event::PatientRegistration(e) => Some(e.patient_id),
            Event::DoctorConsultation(e) => Some(e.patient_id),
            Event::LabTestResult(e) => Some(e.patient_id),
            Event::Prescription(e) => Some(e.patient_id),
            Event::PrescriptionFilled(_) => None,
        }
    }

    /// Checks what needs no chain state: text lengths, id versions, list sizes.
    pub fn check_form(&self) -> Result<(), EventError> {
        match self {
            Event::PatientRegistration(e) => {
                v4("patient id", e.patient_id.0)?;
                text("patient name", &e.name, true, limits::MAX_PATIENT_NAME)
            }
            Event::DoctorConsultation(e) => {
                text("notes", &e.notes, false, limits::MAX_NOTES)?;
                if let Some(order) = &e.test_order {
                    v4("order id", order.order_id.0)?;
                    text("test name", &order.test_name, true, limits::MAX_TEST_NAME)?;
                }
                Ok(())
            }
            Event::LabTestResult(e) => text("results", &e.results, true, limits::MAX_RESULTS),
            Event::Prescription(e) => {
                v4("prescription id", e.prescription_id.0)?;
                text("medication", &e.medication, true, limits::MAX_MEDICATION)?;
                text("dosage", &e.dosage, true, limits::MAX_DOSAGE)?;
                text(
                    "instructions",
                    &e.instructions,
                    false,
                    limits::MAX_INSTRUCTIONS,
                )?;
                if e.based_on.len() > limits::MAX_BASED_ON {
                    return Err(EventError::TooManyResults {
                        count: e.based_on.len(),
                        max: limits::MAX_BASED_ON,
                    });
                }
                Ok(())
            }
            Event::PrescriptionFilled(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str) -> Event {
        Event::PatientRegistration(PatientRegistration {
            patient_id: PatientId::from_random_bytes([1; 16]),
            name: name.to_string(),
        })
    }

    #[test]
    fn form_checks_text_limits_and_id_versions() {
        assert_eq!(registration("Jane Doe").check_form(), Ok(()));
        assert_eq!(
            registration("").check_form(),
            Err(EventError::EmptyText {
                field: "patient name"
            })
        );
        let long = "x".repeat(limits::MAX_PATIENT_NAME + 1);
        assert!(matches!(
            registration(&long).check_form(),
            Err(EventError::TextTooLong { .. })
        ));
        let nil = Event::PatientRegistration(PatientRegistration {
            patient_id: PatientId(Uuid::nil()),
            name: "Jane".into(),
        });
        assert!(matches!(
            nil.check_form(),
            Err(EventError::NotUuidV4 { .. })
        ));
    }

    #[test]
    fn events_round_trip_through_the_canonical_codec() {
        let event = Event::DoctorConsultation(DoctorConsultation {
            patient_id: PatientId::from_random_bytes([2; 16]),
            notes: "headache".into(),
            test_order: Some(TestOrder::blood_test(OrderId::from_random_bytes([3; 16]))),
        });
        let bytes = ledger_core::codec::encode(&event);
        let back: Event = ledger_core::codec::decode(&bytes, 1024).expect("just encoded");
        assert_eq!(back, event);
    }
}
