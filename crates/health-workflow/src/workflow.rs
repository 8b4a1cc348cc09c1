//! The API front ends call: an acting user signs events, and queries read the ledger.
//!
//! Everything takes the ledger by shared reference and the current time as an
//! argument, so it runs wherever the ledger lives (a node runs such closures on its
//! ledger task). Building a transaction changes nothing: the caller submits it with
//! [`Ledger::submit_transaction`], in the order returned.

use ledger_core::{
    AccountId, Amount, BodySource, Keypair, Ledger, Member, Timestamp, Transaction, TxBody, TxId,
};
use rand_core::CryptoRng;

use crate::body::Category;
use crate::body::{Body, Section};
use crate::clinical::{Coding, LabReport, MedicationCode, PatientDetails, Visit};
use crate::consent::ConsentTable;
use crate::event::{
    DEFAULT_TEST_NAME, DoctorConsultation, EncryptionKeyRotation, Event, EventError, EventKind,
    LabTestResult, PatientRegistration, Prescription, PrescriptionFilled, TestOrder,
};
use crate::ids::GrantId;
use crate::ids::{OrderId, PatientId, PrescriptionId};
use crate::patient::{
    AccessPurpose, AccessRecord, ConsentGrant, ConsentRevocation, ErasureReceipt, ErasureRequest,
    GrantRef, Grantee, PatientKeys,
};
use crate::policy::{HealthPolicy, Rates};
use crate::role::Role;
use crate::seal::BodyId;
use crate::seal::{
    Binding, EncryptionKey, EncryptionPublicKey, Reader, SealError, SealedBody, SealedRef, seal,
};
use crate::state::HealthState;

/// A transaction of the healthcare network.
pub type HealthTx = Transaction<Event>;

/// Why an [`Actor`] cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The username is not in the genesis roster.
    #[error("user '{username}' is not a member of this network")]
    UnknownUser {
        /// The username.
        username: String,
    },
    /// The key does not sign for the member's account.
    #[error("the signing key given for '{username}' is not the key of that account")]
    KeyMismatch {
        /// The username.
        username: String,
    },
    /// The member's roster role is not one this crate knows.
    #[error("user '{username}' has unknown role '{role}'")]
    UnknownRole {
        /// The username.
        username: String,
        /// The roster label.
        role: String,
    },
    /// No registered patient has this key.
    #[error("no registered patient has the key {account}")]
    UnknownPatientKey {
        /// The key's account.
        account: AccountId,
    },
}

/// Why a workflow action could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The event breaks a rule that needs no chain state (role, text limits, ids).
    #[error(transparent)]
    Event(#[from] EventError),
    /// No test order of this patient is waiting for a result.
    #[error("patient {patient} has no open test order")]
    NoOpenOrder {
        /// The patient.
        patient: PatientId,
    },
    /// A body could not be sealed (no reader has an encryption key, or a limit).
    #[error("cannot seal the {section}: {source}")]
    Seal {
        /// The section.
        section: Section,
        /// Why.
        #[source]
        source: SealError,
    },
    /// A lab result named by a prescription is neither confirmed nor pending.
    #[error("lab result {result} is not known to this node")]
    UnknownResult {
        /// The result.
        result: TxId,
    },
}

/// Why a lab technician was not paid for a prescription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotPaid {
    /// The doctor's balance (pending transfers included) cannot cover the payment.
    #[error("insufficient funds: balance {balance}, payment {amount}")]
    InsufficientFunds {
        /// The doctor's balance before this payment.
        balance: Amount,
        /// The payment.
        amount: Amount,
    },
}

/// The payment for one lab technician's results read by a prescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabPayment {
    /// The technician's account.
    pub technician: AccountId,
    /// The technician's username.
    pub username: String,
    /// The amount ([`Rates::lab_payment`]).
    pub amount: Amount,
    /// The signed transfer, or why there is none.
    pub transfer: Result<HealthTx, NotPaid>,
}

/// A signed event and the bodies sealed for it: submit the transaction, and keep the
/// bodies in the vault (and deliver them to their readers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The signed transaction.
    pub tx: HealthTx,
    /// Its sealed bodies, in the order of [`Event::sealed`].
    pub bodies: Vec<SealedBody>,
    /// For a registration, the new patient's keys: hand them to the patient (in a
    /// passphrase-protected key file) and keep no copy.
    pub patient: Option<PatientSecret>,
}

/// A new patient's signing key (the encryption key derives from it,
/// [`EncryptionKey::of_member`](crate::seal::EncryptionKey::of_member)). Compared by
/// account; its `Debug` form shows the account only, and the secret is zeroed when
/// dropped.
#[derive(Clone, Debug)]
pub struct PatientSecret(pub Keypair);

impl PartialEq for PatientSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.account() == other.0.account()
    }
}

impl Eq for PatientSecret {}

/// A test to order in a consultation: the order's id and, sealed, what to test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRequest {
    /// The order's id (a fresh UUID v4 the caller draws).
    pub order_id: OrderId,
    /// What to test.
    pub test_name: String,
    /// The tests, coded (LOINC), if known.
    pub tests: Vec<Coding>,
}

impl TestRequest {
    /// An order for `test_name`, uncoded.
    pub fn new(order_id: OrderId, test_name: &str) -> TestRequest {
        TestRequest {
            order_id,
            test_name: test_name.to_string(),
            tests: Vec::new(),
        }
    }

    /// An order for the default test, [`DEFAULT_TEST_NAME`].
    pub fn blood_test(order_id: OrderId) -> TestRequest {
        TestRequest::new(order_id, DEFAULT_TEST_NAME)
    }
}

/// A prescription to write: the public facts and, sealed, what is prescribed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrescriptionDraft {
    /// The prescription's id (a fresh UUID v4 the caller draws).
    pub prescription_id: PrescriptionId,
    /// The patient it is for.
    pub patient_id: PatientId,
    /// Medication.
    pub medication: String,
    /// Dosage.
    pub dosage: String,
    /// Instructions (may be empty).
    pub instructions: String,
    /// The lab results read ([`HealthState::unpaid_lab_results`] for the usual choice).
    pub based_on: Vec<TxId>,
}

/// A prescription and the payments it causes.
///
/// Payments are one per lab technician whose results the prescription is based on
/// (not one per result), in order of first mention, each a normal signed `Transfer`
/// from the doctor. A payment the doctor cannot afford is left out and the reason
/// reported: the prescription stands, as in the original project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prescribed {
    /// The prescription transaction.
    pub prescription: HealthTx,
    /// Its sealed body.
    pub bodies: Vec<SealedBody>,
    /// The payments, paid or not.
    pub payments: Vec<LabPayment>,
}

impl Prescribed {
    /// The transactions to submit, in order: the prescription, then each signed payment.
    pub fn transactions(&self) -> impl Iterator<Item = &HealthTx> {
        std::iter::once(&self.prescription).chain(
            self.payments
                .iter()
                .filter_map(|p| p.transfer.as_ref().ok()),
        )
    }
}

/// A logged-in user acting on the ledger: their roster entry, role and signing key,
/// and, if they narrow it, the consent table that bounds to whom what they write is
/// sealed.
#[derive(Clone, Debug)]
pub struct Actor {
    member: Member,
    role: Role,
    keys: Keypair,
    /// `None`: whoever the patient's consent lets read.
    narrowed: Option<ConsentTable>,
}

impl Actor {
    /// The member `username` of the ledger's network, signing with `keys`.
    pub fn new<B: BodySource<Event>>(
        ledger: &Ledger<HealthPolicy, B>,
        username: &str,
        keys: Keypair,
    ) -> Result<Actor, ActorError> {
        let member = ledger
            .genesis()
            .member_by_username(username)
            .ok_or_else(|| ActorError::UnknownUser {
                username: username.to_string(),
            })?;
        if member.account != keys.account() {
            return Err(ActorError::KeyMismatch {
                username: username.to_string(),
            });
        }
        let role = Role::from_label(&member.role).ok_or_else(|| ActorError::UnknownRole {
            username: username.to_string(),
            role: member.role.clone(),
        })?;
        Ok(Actor {
            member: member.clone(),
            role,
            keys,
            narrowed: None,
        })
    }

    /// Seals what this actor writes only to readers whose role `consent` names for the
    /// category, among those the patient's consent lets read (a writer may narrow its
    /// readers, never widen them).
    pub fn with_consent(mut self, consent: ConsentTable) -> Actor {
        self.narrowed = Some(consent);
        self
    }

    /// Refuses an event of `kind` this actor's role may not record, before anything is
    /// sealed.
    fn may_record(&self, kind: EventKind) -> Result<(), WorkflowError> {
        if self.role.may_record(kind) {
            Ok(())
        } else {
            Err(EventError::NotPermitted {
                role: self.member.role.clone(),
                event: kind,
            }
            .into())
        }
    }

    /// Seals `body` for an event of `kind` about `patient` to its readers, after
    /// checking its text limits: the author, the patient, and every member that holds a
    /// live grant of the patient for its category at `now` ([`HealthState::may_read`]),
    /// within the table this actor narrowed its readers to, if any.
    fn seal_body<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        (kind, patient, now): (EventKind, PatientId, Timestamp),
        body: &Body,
        rng: &mut impl CryptoRng,
    ) -> Result<(SealedRef, SealedBody), WorkflowError> {
        self.seal_body_for(ledger, (kind, patient, now), body, None, rng)
    }

    /// [`Actor::seal_body`], sealing to `patient_reader` as the patient (a registration,
    /// whose patient the state does not know yet).
    fn seal_body_for<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        (kind, patient, now): (EventKind, PatientId, Timestamp),
        body: &Body,
        patient_reader: Option<Reader>,
        rng: &mut impl CryptoRng,
    ) -> Result<(SealedRef, SealedBody), WorkflowError> {
        body.check_form()?;
        let section = body.section();
        let category = section.category();
        let (genesis, state) = (ledger.genesis(), state(ledger));
        let author = self.account();
        let mut readers: Vec<Reader> = state
            .encryption_key(&author)
            .map(|key| Reader {
                account: author,
                key,
            })
            .into_iter()
            .collect();
        for member in &genesis.roster {
            let role = Role::from_label(&member.role);
            let within = match (&self.narrowed, role) {
                (None, _) => true,
                (Some(table), Some(role)) => table.may_read(role, category),
                (Some(_), None) => false,
            };
            let granted = state
                .may_read(genesis, &patient, category, &member.account, now)
                .is_ok();
            if member.account != author
                && within
                && granted
                && let Some(key) = state.encryption_key(&member.account)
            {
                readers.push(Reader {
                    account: member.account,
                    key,
                });
            }
        }
        readers.extend(patient_reader.or_else(|| patient_as_reader(ledger, &patient)));
        let binding = Binding::new(ledger.genesis_hash(), self.account(), patient, kind);
        seal(&body.encode(), &binding, &readers, rng)
            .map_err(|source| WorkflowError::Seal { section, source })
    }

    /// The roster entry.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The account.
    pub fn account(&self) -> AccountId {
        self.keys.account()
    }

    /// Signs `event` with the next nonce after checking what needs no chain state (the
    /// role and the event's form). Chain rules are checked when it is submitted.
    pub fn sign_event<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        event: Event,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        self.sign_event_with_nonce(ledger, event, ledger.next_nonce(&self.account()), now)
    }

    fn sign_event_with_nonce<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        event: Event,
        nonce: u64,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        if !self.role.may_record(event.kind()) {
            return Err(EventError::NotPermitted {
                role: self.member.role.clone(),
                event: event.kind(),
            }
            .into());
        }
        event.check_form()?;
        Ok(Transaction::new_signed(
            &ledger.genesis_hash(),
            &self.keys,
            nonce,
            now,
            TxBody::App(event),
        ))
    }

    /// Registers a new patient under `patient_id` (a fresh UUID v4 the caller draws),
    /// the name sealed to the care team.
    pub fn register<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        name: &str,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        self.register_patient(
            ledger,
            patient_id,
            name,
            PatientDetails::default(),
            now,
            rng,
        )
    }

    /// Registers a new patient with a structured name, birth date and gender besides
    /// the display `name`, all sealed to the care team and the patient. The patient's
    /// keys are drawn from `rng` and returned in [`Written::patient`].
    pub fn register_patient<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        name: &str,
        details: PatientDetails,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let keys = Keypair::generate(rng);
        self.register_with_keys(ledger, patient_id, name, details, keys, now, rng)
    }

    /// [`Actor::register_patient`] with the patient's keys given (the demo network
    /// derives its patients' keys from the published demo seed,
    /// [`demo::demo_patient_keypair`](crate::demo::demo_patient_keypair)).
    #[allow(clippy::too_many_arguments)]
    pub fn register_with_keys<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        name: &str,
        details: PatientDetails,
        patient_keys: Keypair,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let kind = EventKind::PatientRegistration;
        self.may_record(kind)?;
        let body = Body::Demographics {
            name: name.to_string(),
            details,
        };
        let patient_reader = Reader {
            account: patient_keys.account(),
            key: EncryptionKey::of_member(&patient_keys).public(),
        };
        let (demographics, sealed) = self.seal_body_for(
            ledger,
            (kind, patient_id, now),
            &body,
            Some(patient_reader),
            rng,
        )?;
        let event = Event::PatientRegistration(PatientRegistration {
            patient_id,
            demographics,
            patient_keys: PatientKeys::sign(&ledger.genesis_hash(), &patient_id, &patient_keys),
        });
        Ok(Written {
            tx: self.sign_event(ledger, event, now)?,
            bodies: vec![sealed],
            patient: Some(PatientSecret(patient_keys)),
        })
    }

    /// Records a consultation, optionally ordering a test ([`TestRequest::blood_test`]
    /// for the default one). The notes are sealed to doctors, the test ordered to
    /// doctors and the lab.
    pub fn consult<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        notes: &str,
        test: Option<TestRequest>,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let visit = Visit::default();
        let tests = test.into_iter().collect();
        self.record_consultation(ledger, patient_id, notes, visit, tests, now, rng)
    }

    /// Records a consultation with its visit details and coded conditions, ordering
    /// any number of tests (at most [`MAX_TEST_ORDERS`](crate::limits::MAX_TEST_ORDERS)).
    #[allow(clippy::too_many_arguments)] // each is one part of the consultation
    pub fn record_consultation<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        notes: &str,
        visit: Visit,
        tests: Vec<TestRequest>,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let kind = EventKind::DoctorConsultation;
        self.may_record(kind)?;
        let body = Body::Notes {
            notes: notes.to_string(),
            visit,
        };
        let (notes, sealed_notes) = self.seal_body(ledger, (kind, patient_id, now), &body, rng)?;
        let mut bodies = vec![sealed_notes];
        let mut test_orders = Vec::with_capacity(tests.len());
        for request in tests {
            let body = Body::TestOrder {
                test_name: request.test_name,
                tests: request.tests,
            };
            let (test, sealed) = self.seal_body(ledger, (kind, patient_id, now), &body, rng)?;
            bodies.push(sealed);
            test_orders.push(TestOrder {
                order_id: request.order_id,
                test,
            });
        }
        let event = Event::DoctorConsultation(DoctorConsultation {
            patient_id,
            notes,
            test_orders,
        });
        Ok(Written {
            tx: self.sign_event(ledger, event, now)?,
            bodies,
            patient: None,
        })
    }

    /// Records the results of test order `order`, or of the patient's oldest open
    /// order (confirmed on the chain) when `order` is `None`.
    pub fn perform_test<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        order: Option<OrderId>,
        results: &str,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let kind = EventKind::LabTestResult;
        self.may_record(kind)?;
        let order_id = match order {
            Some(id) => id,
            None => state(ledger)
                .open_orders(&patient_id)
                .first()
                .map(|o| o.id)
                .ok_or(WorkflowError::NoOpenOrder {
                    patient: patient_id,
                })?,
        };
        self.record_results(ledger, patient_id, order_id, results, Vec::new(), now, rng)
    }

    /// Records the results of test order `order` as text and typed observations.
    #[allow(clippy::too_many_arguments)] // each is one part of the result
    pub fn record_results<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        order_id: OrderId,
        results: &str,
        reports: Vec<LabReport>,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Written, WorkflowError> {
        let kind = EventKind::LabTestResult;
        self.may_record(kind)?;
        let body = Body::Results {
            results: results.to_string(),
            reports,
        };
        let (results, sealed) = self.seal_body(ledger, (kind, patient_id, now), &body, rng)?;
        let event = Event::LabTestResult(LabTestResult {
            patient_id,
            order_id,
            results,
        });
        Ok(Written {
            tx: self.sign_event(ledger, event, now)?,
            bodies: vec![sealed],
            patient: None,
        })
    }

    /// Prescribes (medication, dosage and instructions sealed to doctors and the
    /// pharmacy), and signs the payment of [`Rates::lab_payment`] to each lab
    /// technician whose results `draft.based_on` names, as far as this doctor's
    /// balance (pending transfers included) allows. See [`Prescribed`].
    pub fn prescribe<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        draft: PrescriptionDraft,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Prescribed, WorkflowError> {
        self.prescribe_coded(ledger, draft, MedicationCode::default(), now, rng)
    }

    /// Prescribes as [`prescribe`](Self::prescribe) does, with the medication coded
    /// (RxNorm) and the date it was written.
    pub fn prescribe_coded<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        draft: PrescriptionDraft,
        coded: MedicationCode,
        now: Timestamp,
        rng: &mut impl CryptoRng,
    ) -> Result<Prescribed, WorkflowError> {
        let kind = EventKind::Prescription;
        self.may_record(kind)?;
        let PrescriptionDraft {
            prescription_id,
            patient_id,
            medication,
            dosage,
            instructions,
            based_on,
        } = draft;
        let body = Body::Prescription {
            medication,
            dosage,
            instructions,
            coded,
        };
        let (details, sealed) = self.seal_body(ledger, (kind, patient_id, now), &body, rng)?;
        let prescription = Prescription {
            prescription_id,
            patient_id,
            details,
            based_on: based_on.clone(),
        };
        let mut nonce = ledger.next_nonce(&self.account());
        // Signing first checks the form, which bounds `based_on`.
        let tx =
            self.sign_event_with_nonce(ledger, Event::Prescription(prescription), nonce, now)?;
        let mut technicians: Vec<AccountId> = Vec::new();
        for result in &based_on {
            let technician = result_author(ledger, result)
                .ok_or(WorkflowError::UnknownResult { result: *result })?;
            if !technicians.contains(&technician) {
                technicians.push(technician);
            }
        }
        let amount = Rates::of(ledger.genesis()).lab_payment;
        let mut balance = pending_balance(ledger, &self.account());
        let mut payments = Vec::new();
        if amount == Amount::ZERO {
            return Ok(Prescribed {
                prescription: tx,
                bodies: vec![sealed],
                payments,
            });
        }
        for technician in technicians {
            let transfer = match balance.checked_sub(amount) {
                Some(left) => {
                    balance = left;
                    nonce += 1;
                    Ok(Transaction::new_signed(
                        &ledger.genesis_hash(),
                        &self.keys,
                        nonce,
                        now,
                        TxBody::Transfer {
                            to: technician,
                            amount,
                        },
                    ))
                }
                None => Err(NotPaid::InsufficientFunds { balance, amount }),
            };
            payments.push(LabPayment {
                technician,
                username: username_of(ledger, &technician),
                amount,
                transfer,
            });
        }
        Ok(Prescribed {
            prescription: tx,
            bodies: vec![sealed],
            payments,
        })
    }

    /// Fills prescription `prescription_id`.
    pub fn fill<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        prescription_id: PrescriptionId,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::PrescriptionFilled(PrescriptionFilled { prescription_id });
        self.sign_event(ledger, event, now)
    }

    /// Replaces this member's encryption key with `key`: bodies written once the
    /// rotation is in a block are sealed to it. Keep the secret part before submitting.
    pub fn rotate_encryption_key<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        key: EncryptionPublicKey,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::EncryptionKeyRotation(EncryptionKeyRotation { key });
        self.sign_event(ledger, event, now)
    }

    /// Records that `reader` read (or was served) `bodies` about `patient` under a
    /// live grant: the access record the patient's audit shows. At most
    /// [`MAX_ACCESS_BODIES`](crate::patient::MAX_ACCESS_BODIES) bodies a record.
    pub fn record_access<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        reader: AccountId,
        bodies: Vec<BodyId>,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::AccessRecord(AccessRecord {
            patient_id,
            reader,
            bodies,
            purpose: AccessPurpose::Treatment,
        });
        self.sign_event(ledger, event, now)
    }

    /// Breaks the glass: this doctor reads `bodies` of `patient` without a grant, for
    /// `reason` (public: no clinical details). Once in a block it opens the doctor's
    /// break-glass window, and the patient sees it flagged.
    pub fn break_glass<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        reason: &str,
        bodies: Vec<BodyId>,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        if self.role != Role::Doctor {
            return Err(EventError::BreakGlassNotPermitted {
                role: self.member.role.clone(),
            }
            .into());
        }
        let event = Event::AccessRecord(AccessRecord {
            patient_id,
            reader: self.account(),
            bodies,
            purpose: AccessPurpose::BreakGlass {
                reason: reason.to_string(),
            },
        });
        self.sign_event(ledger, event, now)
    }

    /// Confirms that this member's node erased the bodies of `patient`, who asked for
    /// erasure in transaction `request`.
    pub fn confirm_erasure<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        patient_id: PatientId,
        request: TxId,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::ErasureReceipt(ErasureReceipt {
            patient_id,
            request,
        });
        self.sign_event(ledger, event, now)
    }
}

/// A patient acting on the ledger with their own key: consent, revocation, erasure.
/// The patient reads every body about them with the encryption key derived from the
/// same secret.
#[derive(Clone, Debug)]
pub struct PatientActor {
    patient: PatientId,
    keys: Keypair,
}

impl PatientActor {
    /// The patient whose key `keys` is, on the ledger's network.
    pub fn new<B: BodySource<Event>>(
        ledger: &Ledger<HealthPolicy, B>,
        keys: Keypair,
    ) -> Result<PatientActor, ActorError> {
        let patient = state(ledger)
            .patient_of_account(&keys.account())
            .ok_or(ActorError::UnknownPatientKey {
                account: keys.account(),
            })?
            .id;
        Ok(PatientActor { patient, keys })
    }

    /// The patient's id.
    pub fn patient_id(&self) -> PatientId {
        self.patient
    }

    /// The patient's signing account.
    pub fn account(&self) -> AccountId {
        self.keys.account()
    }

    /// The patient's encryption key, which opens every body about them.
    pub fn encryption_key(&self) -> EncryptionKey {
        EncryptionKey::of_member(&self.keys)
    }

    fn sign<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        event: Event,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        event.check_form()?;
        Ok(Transaction::new_signed(
            &ledger.genesis_hash(),
            &self.keys,
            ledger.next_nonce(&self.account()),
            now,
            TxBody::App(event),
        ))
    }

    /// Grants `grantee` access to `categories` from `not_before` until (not including)
    /// `not_after`, for `purpose` (public: no clinical details).
    #[allow(clippy::too_many_arguments)]
    pub fn grant<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        grant_id: GrantId,
        grantee: Grantee,
        categories: Vec<Category>,
        (not_before, not_after): (Timestamp, Timestamp),
        purpose: &str,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::ConsentGrant(ConsentGrant {
            grant_id,
            patient_id: self.patient,
            grantee,
            categories,
            not_before,
            not_after,
            purpose: purpose.to_string(),
        });
        self.sign(ledger, event, now)
    }

    /// Revokes `grant`.
    pub fn revoke<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        grant: GrantRef,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::ConsentRevocation(ConsentRevocation {
            patient_id: self.patient,
            grant,
        });
        self.sign(ledger, event, now)
    }

    /// Asks for erasure.
    pub fn erase<B: BodySource<Event>>(
        &self,
        ledger: &Ledger<HealthPolicy, B>,
        now: Timestamp,
    ) -> Result<HealthTx, WorkflowError> {
        let event = Event::ErasureRequest(ErasureRequest {
            patient_id: self.patient,
        });
        self.sign(ledger, event, now)
    }
}

fn state<B: BodySource<Event>>(ledger: &Ledger<HealthPolicy, B>) -> &HealthState {
    ledger.state().app()
}

/// Who recorded lab result `result`: from the confirmed state, else from the mempool.
fn result_author<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    result: &TxId,
) -> Option<AccountId> {
    if let Some(r) = state(ledger).lab_result(result) {
        return Some(r.recorded.author);
    }
    ledger
        .mempool()
        .find(|p| p.id == *result && matches!(p.tx.body, TxBody::App(Event::LabTestResult(_))))
        .map(|p| p.tx.author)
}

/// `patient` as the reader of a body about them: from the confirmed state, else from
/// a registration in the mempool.
fn patient_as_reader<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    patient: &PatientId,
) -> Option<Reader> {
    let state = state(ledger);
    if let Some(p) = state.patient(patient) {
        let key = state.encryption_key(&p.account)?;
        return Some(Reader {
            account: p.account,
            key,
        });
    }
    ledger.mempool().find_map(|p| match &p.tx.body {
        TxBody::App(Event::PatientRegistration(r)) if r.patient_id == *patient => Some(Reader {
            account: r.patient_keys.account,
            key: r.patient_keys.encryption,
        }),
        _ => None,
    })
}

/// The username of `account` in the roster, or its hex form if it is not a member.
pub fn username_of<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    account: &AccountId,
) -> String {
    ledger
        .genesis()
        .member(account)
        .map_or_else(|| account.to_string(), |m| m.username.clone())
}

/// The balance of `account` once the pending transfers are mined: the confirmed
/// balance plus pending transfers to it, minus pending transfers from it. (Rewards are
/// only paid when a block is made, so they do not count yet.)
pub fn pending_balance<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    account: &AccountId,
) -> Amount {
    let mut incoming: u128 = u128::from(ledger.balance(account).units());
    let mut outgoing: u128 = 0;
    for pending in ledger.mempool() {
        if let TxBody::Transfer { to, amount } = &pending.tx.body {
            if pending.tx.author == *account {
                outgoing += u128::from(amount.units());
            }
            if to == account {
                incoming += u128::from(amount.units());
            }
        }
    }
    // The mempool never lets a balance go negative or overflow, so this fits.
    Amount(u64::try_from(incoming.saturating_sub(outgoing)).unwrap_or(u64::MAX))
}

/// One line of [`balances`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The username, or the account in hex for an account outside the roster.
    pub name: String,
    /// The account.
    pub account: AccountId,
    /// The confirmed balance.
    pub amount: Amount,
}

/// Confirmed balances by username, sorted by name: one line per roster member (the
/// reserve `SYSTEM_BANK_001` included), with zero for those holding nothing, then any
/// account outside the roster that holds e-cash, named by its hex form.
pub fn balances<B: BodySource<Event>>(ledger: &Ledger<HealthPolicy, B>) -> Vec<Balance> {
    let genesis = ledger.genesis();
    let mut lines: Vec<Balance> = genesis
        .roster
        .iter()
        .map(|m| Balance {
            name: m.username.clone(),
            account: m.account,
            amount: ledger.balance(&m.account),
        })
        .collect();
    lines.extend(
        ledger
            .state()
            .balances()
            .filter(|(account, amount)| genesis.member(account).is_none() && amount.units() > 0)
            .map(|(account, amount)| Balance {
                name: account.to_string(),
                account: *account,
                amount: *amount,
            }),
    );
    lines.sort_by(|a, b| a.name.cmp(&b.name));
    lines
}
