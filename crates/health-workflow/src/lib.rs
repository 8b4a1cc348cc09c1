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
//!   [`Prescription`], [`PrescriptionFilled`]. They name each other by id:
//!   [`PatientId`], [`OrderId`], [`PrescriptionId`] (UUID v4 drawn by the front end)
//!   and, for lab results, the [`TxId`](ledger_core::TxId) of the recording
//!   transaction. Free text is bounded by the constants in [`limits`].
//! - **Rules** ([`HealthPolicy`], a [`ledger_core::Policy`]): checked identically in
//!   the mempool and in blocks, each refusal its own [`EventError`]. Rewards from the
//!   reserve (500 to the ordering doctor per lab result, 700 to the prescribing doctor
//!   per fill: [`Rates`], genesis parameters) are paid by the ledger in the same block
//!   and re-derived by every validator.
//! - **State** ([`HealthState`]): patients, orders, results, prescriptions and each
//!   patient's history in chain order, all indexed, with exact undo. It holds where
//!   each event was recorded, not its text, so it grows with the number of records,
//!   not with what they say; [`records`] reads events back from the block store.
//! - **Workflow API** ([`Actor`]): a logged-in user signs `register`, `consult`,
//!   `perform_test`, `prescribe` (with the payment of 100 to each lab technician read,
//!   when affordable: [`Prescribed`]) and `fill` transactions; [`balances`] lists
//!   balances by username.
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
//! - Ids are UUID v4 drawn by the front end: this crate draws no randomness.
//!
//! # Example
//!
//! The start of the original walkthrough on one in-memory ledger: Dr. Alice logs in,
//! registers a patient, consults with a blood test order, and a block is mined.
//!
//! ```
//! use health_workflow::{
//!     demo, Actor, Credentials, HealthPolicy, OrderId, PatientId, TestOrder,
//! };
//! use ledger_core::{Ledger, Timestamp};
//!
//! let genesis = demo::DemoGenesisBuilder::new().pow_bits(4).build();
//! let mut ledger = Ledger::new(genesis, HealthPolicy)?;
//! let now = Timestamp(demo::DEMO_GENESIS_TIME.millis() + 60_000);
//!
//! // login (node-local credentials; the demo keys come from the published demo seed)
//! let member = Credentials::demo().verify(ledger.genesis(), "dr_alice", "password123")?;
//! let alice = Actor::new(&ledger, &member.username, demo::demo_keypair("dr_alice"))?;
//!
//! // register: ids are UUID v4 drawn by the front end (e.g. `uuid::Uuid::new_v4()`)
//! let patient = PatientId::from_random_bytes([1; 16]);
//! let tx = alice.register(&ledger, patient, "Jane Doe", now)?;
//! ledger.submit_transaction(tx, now)?;
//!
//! // consult, ordering the default blood test
//! let order = TestOrder::blood_test(OrderId::from_random_bytes([2; 16]));
//! let tx = alice.consult(&ledger, patient, "fatigue", Some(order), now)?;
//! ledger.submit_transaction(tx, now)?;
//!
//! // mine (any key may produce a block on the demo network)
//! let block = ledger.mine_block(&demo::demo_keypair("dr_alice"), now);
//! ledger.submit(block, now).into_result()?;
//!
//! let state = ledger.state().app();
//! assert_eq!(state.history(&patient).map(|h| h.len()), Some(2));
//! assert_eq!(state.open_orders(&patient)[0].test_name, "Blood Test");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod credentials;
pub mod demo;
mod event;
mod ids;
pub mod limits;
mod policy;
pub mod records;
mod registry;
mod role;
pub mod seal;
mod state;
mod workflow;

pub use credentials::{
    Credentials, CredentialsError, DEMO_HASH_DR_ALICE, DEMO_HASH_LAB_TECH_BOB,
    DEMO_HASH_PHARM_CHARLIE, LoginError, hash_password,
};
pub use demo::{clinical_producers, demo_genesis, demo_keypair, is_demo};
pub use event::{
    DEFAULT_TEST_NAME, DoctorConsultation, Event, EventError, EventKind, LabTestResult,
    PatientRegistration, Prescription, PrescriptionFilled, TestOrder,
};
pub use ids::{OrderId, PatientId, PrescriptionId};
pub use policy::{
    DEFAULT_LAB_PAYMENT, DEFAULT_REWARD_FILL, DEFAULT_REWARD_LAB_RESULT, HealthPolicy, HealthUndo,
    PARAM_LAB_PAYMENT, PARAM_REWARD_FILL, PARAM_REWARD_LAB_RESULT, Rates,
};
pub use records::{RecordError, RecordedEvent};
pub use registry::{
    REGISTRY_HEADER, RegistryError, RegistryRow, escape_cell, registry_rows, rfc3339,
    unescape_cell, write_registry,
};
pub use role::Role;
pub use state::{
    HealthState, HistoryEntry, LabResult, Order, Patient, PrescriptionRecord, Recorded,
};
pub use workflow::{
    Actor, ActorError, Balance, HealthTx, LabPayment, NotPaid, Prescribed, WorkflowError, balances,
    pending_balance, username_of,
};

/// The ledger of a healthcare network, block bodies in `B` (in memory by default).
pub type HealthLedger<B = ledger_core::MemoryBodies<Event>> = ledger_core::Ledger<HealthPolicy, B>;
