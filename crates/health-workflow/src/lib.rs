//! `health-workflow`: the healthcare rules of healthchain on top of [`ledger_core`].
//!
//! A Doctor, a Diagnostic Lab and a Pharmacy share one ledger of patient events. This
//! crate says who may record what and what it earns; it is pure (no clock, no
//! randomness, no I/O except the `io::Write` the registry is written to).
//!
//! - **Roles** ([`Role`]): `doctor`, `lab_technician`, `pharmacist` and the `system`
//!   reserve `SYSTEM_BANK_001`, read from the genesis roster labels.
//! - **Events** ([`Event`]), the ledger payload: [`PatientRegistration`],
//!   [`DoctorConsultation`] with an optional [`TestOrder`], [`LabTestResult`],
//!   [`Prescription`], [`PrescriptionFilled`], and [`EncryptionKeyRotation`]. They
//!   name each other by id: [`PatientId`], [`OrderId`], [`PrescriptionId`] (UUID v4
//!   drawn by the front end) and, for lab results, the [`TxId`](ledger_core::TxId) of
//!   the recording transaction.
//! - **Sealed bodies** ([`Body`], [`seal`]): an event holds only public facts (the
//!   patient pseudonym, the kind, the author, the linking ids, the results a
//!   prescription pays for) and, for everything a person wrote, a
//!   [`SealedRef`](seal::SealedRef). The body itself (name, notes, test, results,
//!   medication; free text bounded by the constants in [`limits`]) is encrypted once
//!   and its key wrapped to each reader's X25519 key, listed in the genesis roster.
//!   No rule reads a body. [`BodyReader`] opens what is sealed to a member. Beside its
//!   free text a body may carry coded data ([`clinical`]: LOINC observations with UCUM
//!   units, SNOMED CT conditions, RxNorm medications, clinical dates, source ids), as
//!   a FHIR import writes it.
//! - **Consent** ([`ConsentTable`]): who reads each [`Category`]; the default is
//!   treatment consent (demographics to the care team, notes to doctors, tests and
//!   results to doctors and the lab, prescriptions to doctors and the pharmacy).
//! - **Rules** ([`HealthPolicy`], a [`ledger_core::Policy`]): checked identically in
//!   the mempool and in blocks, each refusal its own [`EventError`]. Rewards from the
//!   reserve (500 to the ordering doctor per lab result, 700 to the prescribing doctor
//!   per fill: [`Rates`], genesis parameters) are paid by the ledger in the same block
//!   and re-derived by every validator.
//! - **State** ([`HealthState`]): patients, orders, results, prescriptions, each
//!   patient's history in chain order and each member's encryption key, all indexed,
//!   with exact undo. It holds where each event was recorded and no clinical text;
//!   [`records`] reads events back from the block store.
//! - **Workflow API** ([`Actor`]): a logged-in user signs `register`, `consult`,
//!   `perform_test`, `prescribe` (with the payment of 100 to each lab technician read,
//!   when affordable: [`Prescribed`]) and `fill` transactions, sealing what they write
//!   ([`Written`]); [`balances`] lists balances by username.
//! - **The patient** ([`patient`], [`PatientActor`]): a registration records the
//!   patient's own keys, signed by the patient ([`PatientKeys`]); the patient signs
//!   grants and revocations ([`ConsentGrant`], [`ConsentRevocation`]) that validation
//!   enforces against the block time, and an erasure request ([`ErasureRequest`]);
//!   members record reads ([`AccessRecord`], break-glass included) and erasure receipts
//!   ([`ErasureReceipt`]). The treatment consent above is each role's default grant,
//!   the patient's to revoke.
//! - **Logins** ([`Credentials`]): node-local usernames with argon2 hashes.
//! - **Registry** ([`write_registry`]): the patient registry CSV, spreadsheet-safe.
//! - **DEMO network** ([`demo`]): the original three users with keys from a published
//!   seed, [`demo_genesis`], [`Credentials::demo`]. Never for real data.
//!
//! # Decisions
//!
//! - A lab result has no id of its own: it is named by the [`TxId`](ledger_core::TxId)
//!   of the transaction that recorded it (unique, and known once it is signed).
//! - Prescribing pays each lab technician whose results the prescription is based on
//!   once per prescription (not once per result), from the doctor's balance including
//!   pending transfers; what the doctor cannot afford is reported in [`Prescribed`]
//!   and the prescription stands. A new prescription is based on the patient's results
//!   that no recorded prescription cites yet ([`HealthState::unpaid_lab_results`]), so
//!   no result is paid twice.
//! - Building a transaction ([`Actor`]) checks only what needs no chain state (role,
//!   text limits, id versions) and uses the author's next nonce: submit each
//!   transaction before building the next one by the same user.
//! - History records each event with the height and time of its block; the registry's
//!   `timestamp` is that block time in RFC 3339 (UTC, milliseconds).
//! - Ids are UUID v4 drawn by the front end, and sealing takes the caller's random
//!   number generator: this crate draws no randomness of its own.
//!
//! # Example
//!
//! The start of the original walkthrough on one in-memory ledger: Dr. Alice logs in,
//! registers a patient, consults with a blood test order, and a block is mined.
//!
//! ```
//! use health_workflow::{
//!     demo, Actor, Body, BodyReader, Credentials, HealthPolicy, OrderId, PatientId, Section,
//!     TestRequest,
//! };
//! use ledger_core::{Hash, Ledger, Timestamp};
//! use rand_core::SeedableRng;
//!
//! let genesis = demo::DemoGenesisBuilder::new().pow_bits(4).build();
//! let mut ledger = Ledger::new(genesis, HealthPolicy)?;
//! let now = Timestamp(demo::DEMO_GENESIS_TIME.millis() + 60_000);
//!
//! // login (node-local credentials; the demo keys come from the published demo seed)
//! let member = Credentials::demo().verify(ledger.genesis(), "dr_alice", "password123")?;
//! let alice = Actor::new(&ledger, &member.username, demo::demo_keypair("dr_alice"))?;
//! // a cryptographic generator; a front end seeds it from the operating system
//! let mut rng = chacha20::ChaCha20Rng::from_seed([7; 32]);
//! let mut vault = std::collections::HashMap::new();
//!
//! // register: ids are UUID v4 drawn by the front end (e.g. `uuid::Uuid::new_v4()`);
//! // the name is sealed to the care team, and the node keeps the sealed body
//! let patient = PatientId::from_random_bytes([1; 16]);
//! let written = alice.register(&ledger, patient, "Jane Doe", now, &mut rng)?;
//! for body in written.bodies {
//!     vault.insert(Hash::of(&body.ciphertext), body);
//! }
//! ledger.submit_transaction(written.tx, now)?;
//!
//! // consult, ordering the default blood test
//! let order = TestRequest::blood_test(OrderId::from_random_bytes([2; 16]));
//! let written = alice.consult(&ledger, patient, "fatigue", Some(order), now, &mut rng)?;
//! for body in written.bodies {
//!     vault.insert(Hash::of(&body.ciphertext), body);
//! }
//! ledger.submit_transaction(written.tx, now)?;
//!
//! // mine (any key may produce a block on the demo network)
//! let block = ledger.mine_block(&demo::demo_keypair("dr_alice"), now);
//! ledger.submit(block, now).into_result()?;
//!
//! let state = ledger.state().app();
//! assert_eq!(state.history(&patient).map(|h| h.len()), Some(2));
//!
//! // the lab reads which test was ordered, but not the notes
//! let key = demo::demo_encryption_key("lab_tech_bob");
//! let lab = BodyReader::new(ledger.genesis_hash(), demo::demo_keypair("lab_tech_bob").account(), &key);
//! let history = health_workflow::records::patient_history(&ledger, &patient)?.expect("known");
//! let consultation = &history[1];
//! let read = |section| {
//!     lab.read(&consultation.recorded.author, &consultation.event, section, |h| vault.get(h).cloned())
//! };
//! assert_eq!(read(Section::TestOrder).expect("a consultation with a test order").clear(), Some(&Body::test_order("Blood Test")));
//! assert_eq!(read(Section::Notes).expect("a consultation has notes").clear(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
pub mod clinical;
mod consent;
mod credentials;
pub mod demo;
mod event;
mod ids;
pub mod limits;
pub mod patient;
mod policy;
pub mod records;
mod registry;
mod role;
pub mod seal;
mod state;
mod workflow;

pub use body::{Body, BodyError, Category, Section};
pub use consent::ConsentTable;
pub use credentials::{
    Credentials, CredentialsError, DEMO_HASH_DR_ALICE, DEMO_HASH_LAB_TECH_BOB,
    DEMO_HASH_PHARM_CHARLIE, LoginError, hash_password,
};
pub use demo::{clinical_producers, demo_encryption_key, demo_genesis, demo_keypair, is_demo};
pub use event::{
    DEFAULT_TEST_NAME, DoctorConsultation, EncryptionKeyRotation, Event, EventError, EventKind,
    LabTestResult, PatientRegistration, Prescription, PrescriptionFilled, TestOrder,
};
pub use ids::{GrantId, OrderId, PatientId, PrescriptionId};
pub use patient::{
    AccessPurpose, AccessRecord, Consent, ConsentGrant, ConsentRevocation, ErasureReceipt,
    ErasureRequest, GrantRef, Grantee, PatientKeys,
};
pub use policy::{
    DEFAULT_LAB_PAYMENT, DEFAULT_REWARD_FILL, DEFAULT_REWARD_LAB_RESULT, HealthPolicy, HealthUndo,
    PARAM_LAB_PAYMENT, PARAM_REWARD_FILL, PARAM_REWARD_LAB_RESULT, Rates,
};
pub use records::{
    BodyReader, ReadError, Reading, RecordError, RecordedEvent, read_reference, read_section,
};
pub use registry::{
    REGISTRY_HEADER, RegistryError, RegistryRow, SEALED_NAME, escape_cell, registry_rows, rfc3339,
    unescape_cell, write_registry, write_rows,
};
pub use role::Role;
pub use state::{
    HealthState, HistoryEntry, LabResult, Order, Patient, PrescriptionRecord, Recorded,
};
pub use workflow::{
    Actor, ActorError, Balance, HealthTx, LabPayment, NotPaid, PatientActor, PatientSecret,
    Prescribed, PrescriptionDraft, TestRequest, WorkflowError, Written, balances, pending_balance,
    username_of,
};

/// The ledger of a healthcare network, block bodies in `B` (in memory by default).
pub type HealthLedger<B = ledger_core::MemoryBodies<Event>> = ledger_core::Ledger<HealthPolicy, B>;
