//! The clinical events: the application payload carried by ledger transactions.

use std::fmt;

use ledger_core::{AccountId, TxId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::body::{Category, Section};
use crate::ids::{GrantId, OrderId, PatientId, PrescriptionId};
use crate::limits;
use crate::patient::{
    AccessPurpose, AccessRecord, ConsentGrant, ConsentRevocation, ErasureReceipt, ErasureRequest,
    GrantRef, MAX_ACCESS_BODIES, MAX_PURPOSE, PatientKeys,
};
use crate::seal::{BodyId, EncryptionPublicKey, MAX_CIPHERTEXT_LEN, SealedRef};

/// The test ordered when a consultation does not name one.
pub const DEFAULT_TEST_NAME: &str = "Blood Test";

/// A doctor registers a new patient. The name is sealed
/// ([`Section::Demographics`]); the patient's own keys are recorded, signed by the
/// patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRegistration {
    /// The new patient's id (UUID v4, unused so far): the patient's pseudonym.
    pub patient_id: PatientId,
    /// The sealed name.
    pub demographics: SealedRef,
    /// The patient's signing and encryption keys, with the patient's proof.
    pub patient_keys: PatientKeys,
}

/// A test a doctor orders during a consultation. What to test is sealed
/// ([`Section::TestOrder`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOrder {
    /// The order's id (UUID v4, unused so far); the lab result names it.
    pub order_id: OrderId,
    /// The sealed test name.
    pub test: SealedRef,
}

/// A doctor sees a registered patient and may order a test. The notes are sealed
/// ([`Section::Notes`]), even when empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorConsultation {
    /// The patient seen.
    pub patient_id: PatientId,
    /// The sealed notes.
    pub notes: SealedRef,
    /// The tests ordered, if any: each order is answered by one lab result. At most
    /// [`MAX_TEST_ORDERS`](limits::MAX_TEST_ORDERS), each id unused so far.
    pub test_orders: Vec<TestOrder>,
}

/// A lab technician records the result of an open test order. The results are sealed
/// ([`Section::Results`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabTestResult {
    /// The patient tested: the one the order was made for.
    pub patient_id: PatientId,
    /// The open order this result answers.
    pub order_id: OrderId,
    /// The sealed results.
    pub results: SealedRef,
}

/// A doctor prescribes medication, possibly based on lab results. Medication, dosage
/// and instructions are sealed ([`Section::Prescription`]); which results it is based
/// on is public, since it decides who is paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prescription {
    /// The prescription's id (UUID v4, unused so far); the fill names it.
    pub prescription_id: PrescriptionId,
    /// The patient it is for.
    pub patient_id: PatientId,
    /// The sealed medication, dosage and instructions.
    pub details: SealedRef,
    /// The lab results read, each named by the id of the transaction that recorded it,
    /// all of this patient, without repeats, at most
    /// [`MAX_BASED_ON`](limits::MAX_BASED_ON). Their technicians are paid.
    pub based_on: Vec<TxId>,
}

/// A pharmacist fills a prescription. A fill carries nothing sealed: what it hands out
/// is the prescription's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrescriptionFilled {
    /// The prescription filled: existing and not filled before.
    pub prescription_id: PrescriptionId,
}

/// A member replaces its encryption key: bodies written from the next block on are
/// sealed to the new key. The transaction's signature binds the key to the member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionKeyRotation {
    /// The member's new X25519 encryption key.
    pub key: EncryptionPublicKey,
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
    /// See [`EncryptionKeyRotation`].
    EncryptionKeyRotation(EncryptionKeyRotation),
    /// See [`ConsentGrant`].
    ConsentGrant(ConsentGrant),
    /// See [`ConsentRevocation`].
    ConsentRevocation(ConsentRevocation),
    /// See [`AccessRecord`].
    AccessRecord(AccessRecord),
    /// See [`ErasureRequest`].
    ErasureRequest(ErasureRequest),
    /// See [`ErasureReceipt`].
    ErasureReceipt(ErasureReceipt),
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
    /// [`Event::EncryptionKeyRotation`].
    EncryptionKeyRotation,
    /// [`Event::ConsentGrant`].
    ConsentGrant,
    /// [`Event::ConsentRevocation`].
    ConsentRevocation,
    /// [`Event::AccessRecord`].
    AccessRecord,
    /// [`Event::ErasureRequest`].
    ErasureRequest,
    /// [`Event::ErasureReceipt`].
    ErasureReceipt,
}

impl EventKind {
    /// Every kind, in workflow order, then the key rotation, then the patient's
    /// consent, reads and erasure.
    pub const ALL: [EventKind; 11] = [
        EventKind::PatientRegistration,
        EventKind::DoctorConsultation,
        EventKind::LabTestResult,
        EventKind::Prescription,
        EventKind::PrescriptionFilled,
        EventKind::EncryptionKeyRotation,
        EventKind::ConsentGrant,
        EventKind::ConsentRevocation,
        EventKind::AccessRecord,
        EventKind::ErasureRequest,
        EventKind::ErasureReceipt,
    ];

    /// Its code in a body label and a body's binding.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind with code `code`.
    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether it is one of the patient's clinical records (registration, consultation,
    /// lab result, prescription, fill): what a history shows.
    pub fn is_record(self) -> bool {
        matches!(
            self,
            EventKind::PatientRegistration
                | EventKind::DoctorConsultation
                | EventKind::LabTestResult
                | EventKind::Prescription
                | EventKind::PrescriptionFilled
        )
    }

    /// Whether only the patient may record it (with the patient's own key).
    pub fn is_patients(self) -> bool {
        matches!(
            self,
            EventKind::ConsentGrant | EventKind::ConsentRevocation | EventKind::ErasureRequest
        )
    }

    /// The name used in the original project (`PATIENT_REGISTRATION`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::PatientRegistration => "PATIENT_REGISTRATION",
            EventKind::DoctorConsultation => "DOCTOR_CONSULTATION",
            EventKind::LabTestResult => "LAB_TEST_RESULT",
            EventKind::Prescription => "PRESCRIPTION",
            EventKind::PrescriptionFilled => "PRESCRIPTION_FILLED",
            EventKind::EncryptionKeyRotation => "ENCRYPTION_KEY_ROTATION",
            EventKind::ConsentGrant => "CONSENT_GRANT",
            EventKind::ConsentRevocation => "CONSENT_REVOCATION",
            EventKind::AccessRecord => "ACCESS_RECORD",
            EventKind::ErasureRequest => "ERASURE_REQUEST",
            EventKind::ErasureReceipt => "ERASURE_RECEIPT",
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
    /// A required text field is empty (checked before a body is sealed).
    #[error("{field} must not be empty")]
    EmptyText {
        /// The field.
        field: &'static str,
    },
    /// A list in a body holds more entries than allowed (checked before sealing).
    #[error("{len} {field} are above the limit of {max}")]
    TooMany {
        /// The list.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
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
    /// A consultation orders more tests than allowed.
    #[error("a consultation orders {count} tests, above the limit of {max}")]
    TooManyOrders {
        /// Orders in the consultation.
        count: usize,
        /// The limit.
        max: usize,
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
    /// A sealed reference announces a ciphertext above the largest a body seals to.
    #[error("a sealed {section} of {len} bytes is above the {max}-byte limit")]
    SealedTooLarge {
        /// The section.
        section: Section,
        /// The announced ciphertext length.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// Two sections of one event name the same body.
    #[error("body {body} is named twice in one event")]
    RepeatedBody {
        /// The body id.
        body: BodyId,
    },
    /// A key rotation names a key no body can be sealed to (a low-order point).
    #[error("encryption key {key} cannot be sealed to")]
    UnusableEncryptionKey {
        /// The key given.
        key: EncryptionPublicKey,
    },
    /// A fill names a prescription that was already filled.
    #[error("prescription {prescription} was already filled by transaction {fill}")]
    AlreadyFilled {
        /// The prescription id.
        prescription: PrescriptionId,
        /// The transaction that filled it.
        fill: TxId,
    },
    /// A registration's patient keys are not signed by the patient's key.
    #[error("the keys registered for patient {patient} are not signed by the patient")]
    PatientKeyNotProven {
        /// The patient id.
        patient: PatientId,
    },
    /// A registration names a patient key that is already a member's or a patient's,
    /// or an encryption key nothing can be sealed to.
    #[error("account {account} cannot be a new patient's key")]
    PatientKeyInUse {
        /// The key given.
        account: AccountId,
    },
    /// A patient's own event (consent, erasure) is signed by someone else.
    #[error("a {event} for patient {patient} must be signed by the patient, not {author}")]
    NotSignedByPatient {
        /// The patient named.
        patient: PatientId,
        /// Who signed.
        author: AccountId,
        /// The event refused.
        event: EventKind,
    },
    /// A patient key may not record this event.
    #[error("a patient's key may not record {event}")]
    NotPatientsEvent {
        /// The event refused.
        event: EventKind,
    },
    /// A patient key may neither pay nor be paid.
    #[error("account {account} is a patient's key: it neither pays nor is paid e-cash")]
    PatientHoldsNoEcash {
        /// The patient key.
        account: AccountId,
    },
    /// No grant of the patient covers this member and category.
    #[error("{account:#} has no grant from patient {patient} for {category}")]
    NoGrant {
        /// The patient.
        patient: PatientId,
        /// The member.
        account: AccountId,
        /// The category.
        category: Category,
    },
    /// The grant that covered this member and category was revoked.
    #[error("patient {patient} revoked {grant}: {account:#} may no longer record {category}")]
    GrantRevoked {
        /// The patient.
        patient: PatientId,
        /// The member.
        account: AccountId,
        /// The category.
        category: Category,
        /// The grant revoked.
        grant: GrantRef,
    },
    /// The grant that covered this member and category has expired.
    #[error("the grant of patient {patient} to {account:#} for {category} expired at {expired}")]
    GrantExpired {
        /// The patient.
        patient: PatientId,
        /// The member.
        account: AccountId,
        /// The category.
        category: Category,
        /// The block time from which it is expired.
        expired: ledger_core::Timestamp,
    },
    /// The grant that covers this member and category is not live yet.
    #[error("the grant of patient {patient} to {account:#} for {category} starts at {from}")]
    GrantNotYetValid {
        /// The patient.
        patient: PatientId,
        /// The member.
        account: AccountId,
        /// The category.
        category: Category,
        /// The block time from which it is live.
        from: ledger_core::Timestamp,
    },
    /// The patient asked for erasure: nothing more is recorded about them.
    #[error("patient {patient} asked for erasure: nothing more is recorded about them")]
    PatientErased {
        /// The patient.
        patient: PatientId,
    },
    /// A receipt names a patient who did not ask for erasure, or the wrong request.
    #[error("patient {patient} has no erasure request {request}")]
    NotErased {
        /// The patient.
        patient: PatientId,
        /// The request named.
        request: TxId,
    },
    /// A member confirms the same erasure twice.
    #[error("{member:#} already confirmed the erasure of patient {patient}")]
    DuplicateReceipt {
        /// The patient.
        patient: PatientId,
        /// The member.
        member: AccountId,
    },
    /// A grant reuses a grant id.
    #[error("grant {grant} already exists")]
    DuplicateGrant {
        /// The grant id.
        grant: GrantId,
    },
    /// A revocation names a grant the patient never gave.
    #[error("patient {patient} has no {grant}")]
    UnknownGrant {
        /// The patient.
        patient: PatientId,
        /// The grant named.
        grant: GrantRef,
    },
    /// A revocation names a grant already revoked.
    #[error("patient {patient} already revoked {grant}")]
    AlreadyRevoked {
        /// The patient.
        patient: PatientId,
        /// The grant named.
        grant: GrantRef,
    },
    /// A grant names a grantee outside the care team.
    #[error("{grantee} is not a member of the care team")]
    NotCareTeam {
        /// The grantee.
        grantee: crate::patient::Grantee,
    },
    /// A grant names a category twice, or none.
    #[error("a grant names each category once, and at least one")]
    BadCategories,
    /// A grant's window is empty.
    #[error("a grant must end after it starts ({not_before} to {not_after})")]
    EmptyWindow {
        /// Its start.
        not_before: ledger_core::Timestamp,
        /// Its end.
        not_after: ledger_core::Timestamp,
    },
    /// A break-glass read by someone who is not a doctor, or recorded for someone
    /// else.
    #[error("only a doctor may break the glass, for their own read (not a {role})")]
    BreakGlassNotPermitted {
        /// The author's role label.
        role: String,
    },
}

fn v4(field: &'static str, id: Uuid) -> Result<(), EventError> {
    if id.get_version() == Some(uuid::Version::Random) {
        Ok(())
    } else {
        Err(EventError::NotUuidV4 { field, id })
    }
}

/// A public purpose or reason: not empty, at most [`MAX_PURPOSE`] bytes.
fn purpose_form(field: &'static str, text: &str) -> Result<(), EventError> {
    if text.trim().is_empty() {
        return Err(EventError::EmptyText { field });
    }
    if text.len() > MAX_PURPOSE {
        return Err(EventError::TextTooLong {
            field,
            len: text.len(),
            max: MAX_PURPOSE,
        });
    }
    Ok(())
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
            Event::EncryptionKeyRotation(_) => EventKind::EncryptionKeyRotation,
            Event::ConsentGrant(_) => EventKind::ConsentGrant,
            Event::ConsentRevocation(_) => EventKind::ConsentRevocation,
            Event::AccessRecord(_) => EventKind::AccessRecord,
            Event::ErasureRequest(_) => EventKind::ErasureRequest,
            Event::ErasureReceipt(_) => EventKind::ErasureReceipt,
        }
    }

    /// The patient the event names directly (a fill names a prescription instead).
    pub fn patient_id(&self) -> Option<PatientId> {
        match self {
            Event::PatientRegistration(e) => Some(e.patient_id),
            Event::DoctorConsultation(e) => Some(e.patient_id),
            Event::LabTestResult(e) => Some(e.patient_id),
            Event::Prescription(e) => Some(e.patient_id),
            Event::ConsentGrant(e) => Some(e.patient_id),
            Event::ConsentRevocation(e) => Some(e.patient_id),
            Event::AccessRecord(e) => Some(e.patient_id),
            Event::ErasureRequest(e) => Some(e.patient_id),
            Event::ErasureReceipt(e) => Some(e.patient_id),
            Event::PrescriptionFilled(_) | Event::EncryptionKeyRotation(_) => None,
        }
    }

    /// The sealed bodies it refers to, each with its section, in order.
    pub fn sealed(&self) -> Vec<(Section, SealedRef)> {
        match self {
            Event::PatientRegistration(e) => vec![(Section::Demographics, e.demographics)],
            Event::DoctorConsultation(e) => {
                let mut refs = vec![(Section::Notes, e.notes)];
                refs.extend(e.test_orders.iter().map(|o| (Section::TestOrder, o.test)));
                refs
            }
            Event::LabTestResult(e) => vec![(Section::Results, e.results)],
            Event::Prescription(e) => vec![(Section::Prescription, e.details)],
            _ => Vec::new(),
        }
    }

    /// The sealed body of `section`, if the event has one (the first, for a
    /// consultation's test orders).
    pub fn sealed_section(&self, section: Section) -> Option<SealedRef> {
        self.sealed()
            .into_iter()
            .find(|(s, _)| *s == section)
            .map(|(_, r)| r)
    }

    /// The sealed test name of the consultation's order `order`.
    pub fn sealed_order(&self, order: &OrderId) -> Option<SealedRef> {
        match self {
            Event::DoctorConsultation(c) => c
                .test_orders
                .iter()
                .find(|o| o.order_id == *order)
                .map(|o| o.test),
            _ => None,
        }
    }

    /// Checks what needs no chain state: id versions, list sizes, and that each sealed
    /// reference is of a possible size and names its own body. (The text inside the
    /// bodies is checked before sealing, [`Body::check_form`](crate::Body::check_form):
    /// no validator can read it.)
    pub fn check_form(&self) -> Result<(), EventError> {
        let sealed = self.sealed();
        for (i, (section, reference)) in sealed.iter().enumerate() {
            if reference.ciphertext_len as usize > MAX_CIPHERTEXT_LEN {
                return Err(EventError::SealedTooLarge {
                    section: *section,
                    len: reference.ciphertext_len,
                    max: MAX_CIPHERTEXT_LEN,
                });
            }
            if sealed[..i]
                .iter()
                .any(|(_, r)| r.body_id == reference.body_id)
            {
                return Err(EventError::RepeatedBody {
                    body: reference.body_id,
                });
            }
        }
        match self {
            Event::PatientRegistration(e) => v4("patient id", e.patient_id.0),
            Event::DoctorConsultation(e) => {
                if e.test_orders.len() > limits::MAX_TEST_ORDERS {
                    return Err(EventError::TooManyOrders {
                        count: e.test_orders.len(),
                        max: limits::MAX_TEST_ORDERS,
                    });
                }
                for (i, order) in e.test_orders.iter().enumerate() {
                    v4("order id", order.order_id.0)?;
                    if e.test_orders[..i]
                        .iter()
                        .any(|o| o.order_id == order.order_id)
                    {
                        return Err(EventError::DuplicateOrder {
                            order: order.order_id,
                        });
                    }
                }
                Ok(())
            }
            Event::Prescription(e) => {
                v4("prescription id", e.prescription_id.0)?;
                if e.based_on.len() > limits::MAX_BASED_ON {
                    return Err(EventError::TooManyResults {
                        count: e.based_on.len(),
                        max: limits::MAX_BASED_ON,
                    });
                }
                Ok(())
            }
            // A member rotating to a key no one can seal to would stop the others
            // writing anything it should read.
            Event::EncryptionKeyRotation(r) if !crate::seal::is_usable_key(&r.key) => {
                Err(EventError::UnusableEncryptionKey { key: r.key })
            }
            Event::ConsentGrant(g) => {
                v4("grant id", g.grant_id.0)?;
                purpose_form("purpose", &g.purpose)?;
                let repeated = g
                    .categories
                    .iter()
                    .enumerate()
                    .any(|(i, c)| g.categories[..i].contains(c));
                if g.categories.is_empty() || repeated {
                    return Err(EventError::BadCategories);
                }
                if g.not_after <= g.not_before {
                    return Err(EventError::EmptyWindow {
                        not_before: g.not_before,
                        not_after: g.not_after,
                    });
                }
                Ok(())
            }
            Event::AccessRecord(a) => {
                if a.bodies.is_empty() {
                    return Err(EventError::EmptyText { field: "bodies" });
                }
                if a.bodies.len() > MAX_ACCESS_BODIES {
                    return Err(EventError::TooMany {
                        field: "bodies",
                        len: a.bodies.len(),
                        max: MAX_ACCESS_BODIES,
                    });
                }
                match &a.purpose {
                    AccessPurpose::BreakGlass { reason } => purpose_form("reason", reason),
                    AccessPurpose::Treatment => Ok(()),
                }
            }
            Event::LabTestResult(_)
            | Event::PrescriptionFilled(_)
            | Event::EncryptionKeyRotation(_)
            | Event::ConsentRevocation(_)
            | Event::ErasureRequest(_)
            | Event::ErasureReceipt(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Hash;

    fn sealed(n: u8, len: u32) -> SealedRef {
        SealedRef {
            body_id: BodyId::from_byte_array([n; 16]),
            commitment: Hash::of(&[n]),
            ciphertext_hash: Hash::of(&[n, 1]),
            ciphertext_len: len,
        }
    }

    fn keys(patient: PatientId) -> PatientKeys {
        PatientKeys::sign(
            &ledger_core::BlockHash::default(),
            &patient,
            &ledger_core::Keypair::from_seed([9; 32]),
        )
    }

    #[test]
    fn form_checks_id_versions_and_sealed_sizes() {
        let registration = |id: PatientId, len: u32| {
            Event::PatientRegistration(PatientRegistration {
                patient_id: id,
                demographics: sealed(1, len),
                patient_keys: keys(id),
            })
        };
        let patient = PatientId::from_random_bytes([1; 16]);
        assert_eq!(registration(patient, 80).check_form(), Ok(()));
        assert!(matches!(
            registration(PatientId(Uuid::nil()), 80).check_form(),
            Err(EventError::NotUuidV4 { .. })
        ));
        let too_large = u32::try_from(MAX_CIPHERTEXT_LEN + 1).expect("fits");
        assert!(matches!(
            registration(patient, too_large).check_form(),
            Err(EventError::SealedTooLarge { .. })
        ));
        let same_body_twice = Event::DoctorConsultation(DoctorConsultation {
            patient_id: patient,
            notes: sealed(2, 80),
            test_orders: vec![TestOrder {
                order_id: OrderId::from_random_bytes([3; 16]),
                test: sealed(2, 90),
            }],
        });
        assert!(matches!(
            same_body_twice.check_form(),
            Err(EventError::RepeatedBody { .. })
        ));
    }

    #[test]
    fn the_limits_themselves_are_allowed_and_one_more_is_not() {
        let patient = PatientId::from_random_bytes([1; 16]);
        let at_limit = u32::try_from(MAX_CIPHERTEXT_LEN).expect("fits");
        let registration = |len: u32| {
            Event::PatientRegistration(PatientRegistration {
                patient_id: patient,
                demographics: sealed(1, len),
                patient_keys: keys(patient),
            })
        };
        assert_eq!(registration(at_limit).check_form(), Ok(()));
        assert!(matches!(
            registration(at_limit + 1).check_form(),
            Err(EventError::SealedTooLarge { .. })
        ));
        let prescription = |results: usize| {
            Event::Prescription(Prescription {
                prescription_id: PrescriptionId::from_random_bytes([2; 16]),
                patient_id: patient,
                details: sealed(3, 80),
                based_on: (0..results)
                    .map(|i| TxId::from_hash(Hash::of(&i.to_le_bytes())))
                    .collect(),
            })
        };
        assert_eq!(prescription(limits::MAX_BASED_ON).check_form(), Ok(()));
        assert_eq!(
            prescription(limits::MAX_BASED_ON + 1).check_form(),
            Err(EventError::TooManyResults {
                count: limits::MAX_BASED_ON + 1,
                max: limits::MAX_BASED_ON
            })
        );
    }

    #[test]
    fn kinds_are_named_as_in_the_original_project() {
        let names: Vec<String> = EventKind::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "PATIENT_REGISTRATION",
                "DOCTOR_CONSULTATION",
                "LAB_TEST_RESULT",
                "PRESCRIPTION",
                "PRESCRIPTION_FILLED",
                "ENCRYPTION_KEY_ROTATION",
                "CONSENT_GRANT",
                "CONSENT_REVOCATION",
                "ACCESS_RECORD",
                "ERASURE_REQUEST",
                "ERASURE_RECEIPT"
            ]
        );
        assert_eq!(EventKind::LabTestResult.name(), "LAB_TEST_RESULT");
    }

    #[test]
    fn events_round_trip_through_the_canonical_codec() {
        let event = Event::DoctorConsultation(DoctorConsultation {
            patient_id: PatientId::from_random_bytes([2; 16]),
            notes: sealed(4, 70),
            test_orders: vec![TestOrder {
                order_id: OrderId::from_random_bytes([3; 16]),
                test: sealed(5, 60),
            }],
        });
        let bytes = ledger_core::codec::encode(&event);
        let back: Event = ledger_core::codec::decode(&bytes, 1024).expect("just encoded");
        assert_eq!(back, event);
        assert_eq!(
            back.sealed().iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [Section::Notes, Section::TestOrder]
        );
    }

    #[test]
    fn a_consultation_orders_at_most_the_limit_each_once() {
        let patient = PatientId::from_random_bytes([1; 16]);
        let consult = |ids: Vec<u8>| {
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(1, 80),
                test_orders: ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| TestOrder {
                        order_id: OrderId::from_random_bytes([*id; 16]),
                        test: sealed(u8::try_from(i + 2).expect("small"), 80),
                    })
                    .collect(),
            })
        };
        let ids = |n: usize| (1..=u8::try_from(n).expect("small")).collect::<Vec<u8>>();
        assert_eq!(consult(ids(limits::MAX_TEST_ORDERS)).check_form(), Ok(()));
        assert_eq!(
            consult(ids(limits::MAX_TEST_ORDERS + 1)).check_form(),
            Err(EventError::TooManyOrders {
                count: limits::MAX_TEST_ORDERS + 1,
                max: limits::MAX_TEST_ORDERS
            })
        );
        assert_eq!(
            consult(vec![5, 6, 5]).check_form(),
            Err(EventError::DuplicateOrder {
                order: OrderId::from_random_bytes([5; 16])
            })
        );
        let event = consult(vec![5, 6]);
        assert_eq!(
            event.sealed_order(&OrderId::from_random_bytes([6; 16])),
            Some(sealed(3, 80))
        );
        assert_eq!(
            event.sealed_order(&OrderId::from_random_bytes([7; 16])),
            None
        );
    }
}
