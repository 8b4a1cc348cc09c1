//! The patient's consent as the ledger enforces it: every refusal checked in the
//! mempool and inside a block with the same error, each at its exact boundary, and the
//! serving rule ([`HealthState::body_access`]) agreeing with what validation allows.

mod common;

use common::{Net, block_policy_error, policy_error};
use health_workflow::seal::{BodyId, EncryptionPublicKey};
use health_workflow::{
    AccessPurpose, AccessRecord, Category, DoctorConsultation, Event, EventError, GrantId,
    GrantRef, Grantee, HealthTx, PatientActor, PatientId, PatientKeys, PatientRegistration,
    PrescriptionDraft, PrescriptionId, Role, TestRequest,
    demo::{demo_keypair, demo_patient_keypair},
    patient::DEFAULT_BREAK_GLASS_MINUTES,
};
use ledger_core::sealed::BodyAccess;
use ledger_core::{Amount, Keypair, Timestamp, TxBody, TxId};

/// A patient through the walkthrough up to an unfilled prescription, and the patient's
/// own key.
struct Scene {
    net: Net,
    patient: PatientId,
    me: PatientActor,
    /// The patient's key, as handed over at registration.
    keys: Keypair,
    prescription: PrescriptionId,
}

fn scene() -> Scene {
    let mut net = Net::new(0);
    let patient = net.patient_id();
    let now = net.now();
    let alice = net.alice.clone();
    let written = alice
        .register(&net.ledger, patient, "Jane", now, &mut net.rng)
        .expect("valid");
    let keys = written.patient.clone().expect("the patient's keys").0;
    let tx = net.keep(written);
    net.submit(tx).expect("registered");
    let order = TestRequest::blood_test(net.order_id());
    let written = alice
        .consult(
            &net.ledger,
            patient,
            "tired",
            Some(order),
            now,
            &mut net.rng,
        )
        .expect("valid");
    let tx = net.keep(written);
    net.submit(tx).expect("consulted");
    net.mine();
    let now = net.now();
    let bob = net.bob.clone();
    let written = bob
        .perform_test(&net.ledger, patient, None, "Hb 13.5", now, &mut net.rng)
        .expect("valid");
    let tx = net.keep(written);
    let result = net.submit(tx).expect("result");
    net.mine();
    let prescription = net.prescription_id();
    let now = net.now();
    let draft = PrescriptionDraft {
        prescription_id: prescription,
        patient_id: patient,
        medication: "Iron".into(),
        dosage: "1".into(),
        instructions: "daily".into(),
        based_on: vec![result],
    };
    let prescribed = alice
        .prescribe(&net.ledger, draft, now, &mut net.rng)
        .expect("valid");
    common::keep_in(&mut net.vault, prescribed.bodies.clone());
    for tx in prescribed.transactions().cloned().collect::<Vec<_>>() {
        net.submit(tx).expect("prescribed and paid");
    }
    net.mine();
    let me = PatientActor::new(&net.ledger, keys.clone()).expect("a registered patient");
    Scene {
        net,
        patient,
        me,
        keys,
        prescription,
    }
}

/// The transaction is refused at `time`, in the mempool and in a block stamped `time`,
/// with the same error, leaving the state as it was.
fn refused_at(net: &mut Net, tx: HealthTx, time: Timestamp) -> EventError {
    let in_mempool = net
        .ledger
        .submit_transaction(tx.clone(), time)
        .expect_err("the mempool refuses it");
    let error = policy_error(&in_mempool)
        .unwrap_or_else(|| panic!("a rule refused it: {in_mempool}"))
        .clone();
    let state = net.ledger.state().clone();
    let block = net.craft_at(time, |t| t.transactions.push(tx));
    let in_block = net
        .ledger
        .submit(block, time)
        .into_result()
        .expect_err("the block is invalid");
    assert_eq!(block_policy_error(&in_block), Some(&error), "{in_block}");
    assert_eq!(net.ledger.state(), &state);
    error
}

fn refused(net: &mut Net, tx: HealthTx) -> EventError {
    let now = net.now();
    refused_at(net, tx, now)
}

/// The transaction is accepted at `time` and mined in a block stamped `time`.
fn accepted_at(net: &mut Net, tx: HealthTx, time: Timestamp) -> TxId {
    let id = net
        .ledger
        .submit_transaction(tx, time)
        .unwrap_or_else(|e| panic!("accepted at {time}: {e}"));
    net.mine_at(time);
    id
}

fn accepted(net: &mut Net, tx: HealthTx) -> TxId {
    let now = net.now();
    accepted_at(net, tx, now)
}

fn charlie() -> Keypair {
    demo_keypair("pharm_charlie")
}

fn access(s: &Scene, who: &str, category: Category, time: Timestamp) -> BodyAccess {
    let state = s.net.ledger.state().app();
    state.body_access(
        s.net.ledger.genesis(),
        &s.patient,
        category,
        &demo_keypair(who).account(),
        time,
    )
}

#[test]
fn revoking_the_pharmacy_refuses_its_fill_until_the_patient_grants_again() {
    let mut s = scene();
    let now = s.net.now();
    let revoke =
        s.me.revoke(&s.net.ledger, GrantRef::Treatment(Role::Pharmacist), now)
            .expect("valid");
    accepted(&mut s.net, revoke);
    let now = s.net.now();
    let fill = s
        .net
        .charlie
        .fill(&s.net.ledger, s.prescription, now)
        .expect("signed");
    assert_eq!(
        refused(&mut s.net, fill.clone()),
        EventError::GrantRevoked {
            patient: s.patient,
            account: charlie().account(),
            category: Category::Prescriptions,
            grant: GrantRef::Treatment(Role::Pharmacist),
        }
    );
    let now = s.net.now();
    assert_eq!(
        access(&s, "pharm_charlie", Category::Prescriptions, now),
        BodyAccess::Denied
    );
    assert_eq!(
        access(&s, "dr_alice", Category::Prescriptions, now),
        BodyAccess::Granted
    );
    let patient_account = s.me.account();
    let state = s.net.ledger.state().app();
    assert_eq!(
        state.body_access(
            s.net.ledger.genesis(),
            &s.patient,
            Category::Prescriptions,
            &patient_account,
            now
        ),
        BodyAccess::Granted
    );
    // Revoking again is its own error.
    let again =
        s.me.revoke(&s.net.ledger, GrantRef::Treatment(Role::Pharmacist), now)
            .expect("signed");
    assert!(matches!(
        refused(&mut s.net, again),
        EventError::AlreadyRevoked { .. }
    ));
    // The patient grants the pharmacist by name, for prescriptions only.
    let now = s.net.now();
    let grant =
        s.me.grant(
            &s.net.ledger,
            GrantId::from_random_bytes([5; 16]),
            Grantee::Member(charlie().account()),
            vec![Category::Prescriptions],
            (now, Timestamp(now.millis() + 86_400_000)),
            "pharmacy of choice",
            now,
        )
        .expect("valid");
    accepted(&mut s.net, grant);
    // The same grant id again is refused.
    let now = s.net.now();
    let again =
        s.me.grant(
            &s.net.ledger,
            GrantId::from_random_bytes([5; 16]),
            Grantee::Role(Role::Doctor),
            vec![Category::Demographics],
            (now, Timestamp(now.millis() + 1_000)),
            "again",
            now,
        )
        .expect("signed");
    assert!(matches!(
        refused(&mut s.net, again),
        EventError::DuplicateGrant { .. }
    ));
    let before = s.net.balance("dr_alice");
    accepted(&mut s.net, fill);
    assert_eq!(
        s.net.balance("dr_alice"),
        before.checked_add(Amount(700)).expect("fits")
    );
    let now = s.net.now();
    assert_eq!(
        access(&s, "pharm_charlie", Category::Prescriptions, now),
        BodyAccess::Granted
    );
    assert_eq!(
        access(&s, "pharm_charlie", Category::ConsultationNotes, now),
        BodyAccess::Denied,
        "the grant names prescriptions only"
    );
}

/// A scene where the pharmacy's treatment consent is revoked and the pharmacist holds a
/// grant live from `start` until (not including) `end`, both well after now.
fn granted_window() -> (Scene, Timestamp, Timestamp) {
    let mut s = scene();
    let now = s.net.now();
    let revoke =
        s.me.revoke(&s.net.ledger, GrantRef::Treatment(Role::Pharmacist), now)
            .expect("valid");
    accepted(&mut s.net, revoke);
    let now = s.net.now();
    let (start, end) = (
        Timestamp(now.millis() + 100_000),
        Timestamp(now.millis() + 200_000),
    );
    let grant =
        s.me.grant(
            &s.net.ledger,
            GrantId::from_random_bytes([6; 16]),
            Grantee::Role(Role::Pharmacist),
            vec![Category::Prescriptions],
            (start, end),
            "refill",
            now,
        )
        .expect("valid");
    accepted(&mut s.net, grant);
    (s, start, end)
}

#[test]
fn a_grant_is_live_from_its_first_instant_until_the_instant_it_ends() {
    /// When, from the window's start and end.
    type At = fn(Timestamp, Timestamp) -> Timestamp;
    let cases: [(&str, At); 4] = [
        ("just before it starts", |start, _| {
            Timestamp(start.millis() - 1)
        }),
        ("as it starts", |start, _| start),
        ("just before it ends", |_, end| Timestamp(end.millis() - 1)),
        ("as it ends", |_, end| end),
    ];
    for (when, time) in cases {
        let (mut s, start, end) = granted_window();
        let at = time(start, end);
        let fill = s
            .net
            .charlie
            .fill(&s.net.ledger, s.prescription, at)
            .expect("signed");
        let patient = s.patient;
        let account = charlie().account();
        let category = Category::Prescriptions;
        let live = start <= at && at < end;
        assert_eq!(
            access(&s, "pharm_charlie", category, at),
            if live {
                BodyAccess::Granted
            } else {
                BodyAccess::Denied
            },
            "{when}"
        );
        if live {
            accepted_at(&mut s.net, fill, at);
        } else if at < start {
            assert_eq!(
                refused_at(&mut s.net, fill, at),
                EventError::GrantNotYetValid {
                    patient,
                    account,
                    category,
                    from: start
                },
                "{when}"
            );
        } else {
            assert_eq!(
                refused_at(&mut s.net, fill, at),
                EventError::GrantExpired {
                    patient,
                    account,
                    category,
                    expired: end
                },
                "{when}"
            );
        }
    }
}

#[test]
fn a_revoked_grant_is_revoked_however_long_its_window() {
    let (mut s, start, _) = granted_window();
    let now = s.net.now();
    let revoke =
        s.me.revoke(
            &s.net.ledger,
            GrantRef::Grant(GrantId::from_random_bytes([6; 16])),
            now,
        )
        .expect("valid");
    accepted(&mut s.net, revoke);
    let fill = s
        .net
        .charlie
        .fill(&s.net.ledger, s.prescription, start)
        .expect("signed");
    assert!(matches!(
        refused_at(&mut s.net, fill, start),
        EventError::GrantRevoked {
            grant: GrantRef::Grant(_),
            ..
        }
    ));
    let unknown =
        s.me.revoke(
            &s.net.ledger,
            GrantRef::Grant(GrantId::from_random_bytes([9; 16])),
            now,
        )
        .expect("signed");
    assert!(matches!(
        refused(&mut s.net, unknown),
        EventError::UnknownGrant { .. }
    ));
}

#[test]
fn the_pharmacy_has_no_grant_for_consultation_notes() {
    let s = scene();
    let state = s.net.ledger.state().app();
    let now = Timestamp(u64::MAX / 2);
    assert_eq!(
        state.may_read(
            s.net.ledger.genesis(),
            &s.patient,
            Category::ConsultationNotes,
            &charlie().account(),
            now
        ),
        Err(EventError::NoGrant {
            patient: s.patient,
            account: charlie().account(),
            category: Category::ConsultationNotes
        })
    );
}

#[test]
fn consent_not_signed_by_the_patient_is_refused() {
    let mut s = scene();
    // Someone else registered: their key is a patient's key too, but not this one's.
    let other = s.net.patient_id();
    let now = s.net.now();
    let alice = s.net.alice.clone();
    let written = alice
        .register(&s.net.ledger, other, "Joe", now, &mut s.net.rng)
        .expect("valid");
    let other_keys = written.patient.clone().expect("keys").0;
    let tx = s.net.keep(written);
    accepted(&mut s.net, tx);
    let grant = |s: &mut Scene, keys: &Keypair| {
        let event = Event::ConsentGrant(health_workflow::ConsentGrant {
            grant_id: GrantId::from_random_bytes([7; 16]),
            patient_id: s.patient,
            grantee: Grantee::Role(Role::Pharmacist),
            categories: vec![Category::ConsultationNotes],
            not_before: Timestamp(0),
            not_after: Timestamp(u64::MAX),
            purpose: "curious".into(),
        });
        s.net.raw(keys, event)
    };
    for keys in [demo_keypair("dr_alice"), charlie(), other_keys] {
        let tx = grant(&mut s, &keys);
        assert_eq!(
            refused(&mut s.net, tx),
            EventError::NotSignedByPatient {
                patient: s.patient,
                author: keys.account(),
                event: health_workflow::EventKind::ConsentGrant,
            }
        );
    }
    let erase = Event::ErasureRequest(health_workflow::ErasureRequest {
        patient_id: s.patient,
    });
    let tx = s.net.raw(&demo_keypair("lab_tech_bob"), erase);
    assert!(matches!(
        refused(&mut s.net, tx),
        EventError::NotSignedByPatient { .. }
    ));
}

/// A raw registration by the doctor of a fresh patient with these keys.
fn registration(net: &mut Net, patient: PatientId, keys: PatientKeys) -> HealthTx {
    let event = Event::PatientRegistration(PatientRegistration {
        patient_id: patient,
        demographics: net.sealed_ref(),
        patient_keys: keys,
    });
    net.raw(&demo_keypair("dr_alice"), event)
}

#[test]
fn a_registration_must_carry_keys_the_patient_holds() {
    let mut s = scene();
    let genesis = s.net.ledger.genesis_hash();
    let patient = s.net.patient_id();
    let holder = demo_patient_keypair(&patient);
    let good = PatientKeys::sign(&genesis, &patient, &holder);
    // Signed by another key than the one registered.
    let mut forged = good;
    forged.proof = Keypair::from_seed([3; 32]).sign(&PatientKeys::message(
        &genesis,
        &patient,
        &good.account,
        &good.encryption,
    ));
    // The patient's proof for another patient id, replayed.
    let replayed = PatientKeys::sign(&genesis, &s.net.patient_id(), &holder);
    // Proven for another network.
    let elsewhere = PatientKeys::sign(&ledger_core::BlockHash::default(), &patient, &holder);
    for keys in [forged, replayed, elsewhere] {
        let tx = registration(&mut s.net, patient, keys);
        assert_eq!(
            refused(&mut s.net, tx),
            EventError::PatientKeyNotProven { patient }
        );
    }
    // A member's key, or another patient's, cannot be a new patient's.
    let alice = PatientKeys::sign(&genesis, &patient, &demo_keypair("dr_alice"));
    let taken = s.me.account();
    let mut reused = PatientKeys::sign(&genesis, &patient, &holder);
    reused.account = taken;
    for (keys, account) in [(alice, demo_keypair("dr_alice").account()), (reused, taken)] {
        let tx = registration(&mut s.net, patient, keys);
        assert_eq!(
            refused(&mut s.net, tx),
            EventError::PatientKeyInUse { account }
        );
    }
    // An encryption key no body can be sealed to.
    let zero = EncryptionPublicKey::from_byte_array([0; 32]);
    let unusable = PatientKeys {
        account: holder.account(),
        encryption: zero,
        proof: holder.sign(&PatientKeys::message(
            &genesis,
            &patient,
            &holder.account(),
            &zero,
        )),
    };
    let tx = registration(&mut s.net, patient, unusable);
    assert_eq!(
        refused(&mut s.net, tx),
        EventError::UnusableEncryptionKey { key: zero }
    );
    let tx = registration(&mut s.net, patient, good);
    accepted(&mut s.net, tx);
}

#[test]
fn a_patient_key_neither_pays_nor_is_paid_and_records_only_its_own_events() {
    let mut s = scene();
    let me = s.me.account();
    let alice = demo_keypair("dr_alice");
    let to_patient = |net: &mut Net| {
        let now = net.now();
        ledger_core::Transaction::new_signed(
            &net.ledger.genesis_hash(),
            &alice,
            net.ledger.next_nonce(&alice.account()),
            now,
            TxBody::Transfer {
                to: me,
                amount: Amount(10),
            },
        )
    };
    let tx = to_patient(&mut s.net);
    let in_mempool = s.net.submit(tx.clone()).expect_err("refused");
    assert_eq!(
        policy_error(&in_mempool),
        Some(&EventError::PatientHoldsNoEcash { account: me })
    );
    let block = s.net.craft(|t| t.transactions.push(tx));
    let in_block = s.net.reject(block);
    assert_eq!(
        block_policy_error(&in_block),
        Some(&EventError::PatientHoldsNoEcash { account: me })
    );
    assert_eq!(s.net.ledger.balance(&me), Amount(0));
    // The patient signing a consultation about themselves.
    let notes = s.net.sealed_ref();
    let event = Event::DoctorConsultation(DoctorConsultation {
        patient_id: s.patient,
        notes,
        test_orders: Vec::new(),
    });
    let keys = s.keys.clone();
    let tx = s.net.raw(&keys, event);
    assert_eq!(
        refused(&mut s.net, tx),
        EventError::NotPatientsEvent {
            event: health_workflow::EventKind::DoctorConsultation
        }
    );
}

#[test]
fn erasure_ends_every_new_record_and_each_member_confirms_once() {
    let mut s = scene();
    let balances = health_workflow::balances(&s.net.ledger);
    let now = s.net.now();
    let erase = s.me.erase(&s.net.ledger, now).expect("valid");
    let request = accepted(&mut s.net, erase);
    let now = s.net.now();
    // Nothing more about the patient: a consultation, a fill, a grant, a break-glass.
    let alice = s.net.alice.clone();
    let written = alice
        .consult(&s.net.ledger, s.patient, "again", None, now, &mut s.net.rng)
        .expect("signed");
    let erased = EventError::PatientErased { patient: s.patient };
    assert_eq!(refused(&mut s.net, written.tx), erased);
    let fill = s
        .net
        .charlie
        .fill(&s.net.ledger, s.prescription, now)
        .expect("signed");
    assert_eq!(refused(&mut s.net, fill), erased);
    let grant =
        s.me.grant(
            &s.net.ledger,
            GrantId::from_random_bytes([8; 16]),
            Grantee::Role(Role::Doctor),
            vec![Category::Demographics],
            (Timestamp(0), Timestamp(u64::MAX)),
            "after",
            now,
        )
        .expect("signed");
    assert_eq!(refused(&mut s.net, grant), erased);
    let glass = alice
        .break_glass(
            &s.net.ledger,
            s.patient,
            "emergency",
            vec![BodyId::from_byte_array([1; 16])],
            now,
        )
        .expect("signed");
    assert_eq!(refused(&mut s.net, glass), erased);
    let again = s.me.erase(&s.net.ledger, now).expect("signed");
    assert_eq!(refused(&mut s.net, again), erased);
    // No body of the patient is served to anyone, the patient included.
    for who in ["dr_alice", "lab_tech_bob", "pharm_charlie"] {
        for category in Category::ALL {
            assert_eq!(access(&s, who, category, now), BodyAccess::Erased);
        }
    }
    // Each member confirms, once; a receipt must name the request.
    for who in ["dr_alice", "lab_tech_bob", "pharm_charlie"] {
        let actor = match who {
            "dr_alice" => s.net.alice.clone(),
            "lab_tech_bob" => s.net.bob.clone(),
            _ => s.net.charlie.clone(),
        };
        let now = s.net.now();
        let wrong = actor
            .confirm_erasure(
                &s.net.ledger,
                s.patient,
                TxId::from_byte_array([1; 32]),
                now,
            )
            .expect("signed");
        assert!(matches!(
            refused(&mut s.net, wrong),
            EventError::NotErased { .. }
        ));
        let receipt = actor
            .confirm_erasure(&s.net.ledger, s.patient, request, now)
            .expect("signed");
        accepted(&mut s.net, receipt);
        let now = s.net.now();
        let twice = actor
            .confirm_erasure(&s.net.ledger, s.patient, request, now)
            .expect("signed");
        assert!(matches!(
            refused(&mut s.net, twice),
            EventError::DuplicateReceipt { .. }
        ));
    }
    let state = s.net.ledger.state().app();
    let consent = state
        .patient(&s.patient)
        .expect("still on the chain")
        .consent();
    let confirmed: Vec<_> = consent.receipts.iter().map(|r| r.author).collect();
    assert_eq!(
        confirmed,
        ["dr_alice", "lab_tech_bob", "pharm_charlie"].map(|u| demo_keypair(u).account())
    );
    // Balances are as they were, and the chain replays from genesis to the same state.
    assert_eq!(health_workflow::balances(&s.net.ledger), balances);
    let replayed = s.net.ledger.replay_from_genesis();
    assert_eq!(replayed.as_ref(), Ok(s.net.ledger.state()));
}

#[test]
fn break_glass_is_for_doctors_with_a_reason_and_ends_on_time() {
    let mut s = scene();
    let now = s.net.now();
    let revoke =
        s.me.revoke(&s.net.ledger, GrantRef::Treatment(Role::Doctor), now)
            .expect("valid");
    accepted(&mut s.net, revoke);
    let alice = s.net.alice.clone();
    let consult = |s: &mut Scene, at: Timestamp| {
        alice
            .consult(
                &s.net.ledger,
                s.patient,
                "follow-up",
                None,
                at,
                &mut s.net.rng,
            )
            .expect("signed")
            .tx
    };
    let now = s.net.now();
    let tx = consult(&mut s, now);
    assert!(matches!(
        refused(&mut s.net, tx),
        EventError::GrantRevoked {
            grant: GrantRef::Treatment(Role::Doctor),
            ..
        }
    ));
    assert_eq!(
        access(&s, "dr_alice", Category::ConsultationNotes, now),
        BodyAccess::Denied
    );
    let body = vec![BodyId::from_byte_array([1; 16])];
    // Not by the lab, not without a reason, not for someone else.
    let bob = s.net.bob.clone();
    assert!(
        bob.break_glass(&s.net.ledger, s.patient, "curious", body.clone(), now)
            .is_err()
    );
    let by_lab = Event::AccessRecord(AccessRecord {
        patient_id: s.patient,
        reader: demo_keypair("lab_tech_bob").account(),
        bodies: body.clone(),
        purpose: AccessPurpose::BreakGlass {
            reason: "curious".into(),
        },
    });
    let tx = s.net.raw(&demo_keypair("lab_tech_bob"), by_lab);
    assert!(matches!(
        refused(&mut s.net, tx),
        EventError::BreakGlassNotPermitted { .. }
    ));
    let for_lab = Event::AccessRecord(AccessRecord {
        patient_id: s.patient,
        reader: demo_keypair("lab_tech_bob").account(),
        bodies: body.clone(),
        purpose: AccessPurpose::BreakGlass {
            reason: "for a colleague".into(),
        },
    });
    let tx = s.net.raw(&demo_keypair("dr_alice"), for_lab);
    assert!(matches!(
        refused(&mut s.net, tx),
        EventError::BreakGlassNotPermitted { .. }
    ));
    assert!(matches!(
        alice.break_glass(&s.net.ledger, s.patient, "  ", body.clone(), now),
        Err(health_workflow::WorkflowError::Event(
            EventError::EmptyText { .. }
        ))
    ));
    // The doctor breaks the glass: the read is on chain, flagged, and opens a window.
    let opened = s.net.now();
    let glass = alice
        .break_glass(
            &s.net.ledger,
            s.patient,
            "unconscious in the emergency room",
            body,
            opened,
        )
        .expect("valid");
    accepted_at(&mut s.net, glass, opened);
    let until = Timestamp(opened.millis() + DEFAULT_BREAK_GLASS_MINUTES * 60_000);
    let consent = s
        .net
        .ledger
        .state()
        .app()
        .patient(&s.patient)
        .expect("registered")
        .consent();
    assert_eq!(consent.accesses.len(), 1);
    assert_eq!(consent.break_glass[0].until, until);
    let last = Timestamp(until.millis() - 1);
    assert_eq!(
        access(&s, "dr_alice", Category::ConsultationNotes, last),
        BodyAccess::Granted
    );
    assert_eq!(
        access(&s, "dr_alice", Category::ConsultationNotes, until),
        BodyAccess::Denied
    );
    let tx = consult(&mut s, until);
    assert!(matches!(
        refused_at(&mut s.net, tx, until),
        EventError::GrantRevoked { .. }
    ));
    let tx = consult(&mut s, last);
    accepted_at(&mut s.net, tx, last);
}

#[test]
fn new_bodies_are_sealed_to_whom_the_patient_lets_read_them() {
    let mut s = scene();
    let readers_of =
        |written: &health_workflow::Written, n: usize| -> Vec<ledger_core::AccountId> {
            written.bodies[n].readers().copied().collect()
        };
    let account = |u: &str| demo_keypair(u).account();
    // The patient lets the pharmacist read consultation notes, and revokes the lab.
    let now = s.net.now();
    let grant =
        s.me.grant(
            &s.net.ledger,
            GrantId::from_random_bytes([4; 16]),
            Grantee::Role(Role::Pharmacist),
            vec![Category::ConsultationNotes],
            (now, Timestamp(now.millis() + 86_400_000)),
            "medication review",
            now,
        )
        .expect("valid");
    accepted(&mut s.net, grant);
    let now = s.net.now();
    let revoke =
        s.me.revoke(&s.net.ledger, GrantRef::Treatment(Role::LabTechnician), now)
            .expect("valid");
    accepted(&mut s.net, revoke);
    let now = s.net.now();
    let alice = s.net.alice.clone();
    let order = TestRequest::blood_test(s.net.order_id());
    let written = alice
        .consult(
            &s.net.ledger,
            s.patient,
            "review",
            Some(order),
            now,
            &mut s.net.rng,
        )
        .expect("valid");
    // The notes: the doctor, the pharmacist (granted), the patient; the test order: the
    // doctor and the patient, not the lab (revoked) nor the pharmacist (not granted).
    let notes = readers_of(&written, 0);
    assert!(notes.contains(&account("dr_alice")));
    assert!(notes.contains(&account("pharm_charlie")));
    assert!(notes.contains(&s.me.account()));
    assert!(!notes.contains(&account("lab_tech_bob")));
    let test = readers_of(&written, 1);
    assert_eq!(test, [account("dr_alice"), s.me.account()]);
    // A writer may narrow its readers, never widen them.
    let narrowed = alice.with_consent(health_workflow::ConsentTable::empty());
    let now = s.net.now();
    let written = narrowed
        .consult(
            &s.net.ledger,
            s.patient,
            "private",
            None,
            now,
            &mut s.net.rng,
        )
        .expect("valid");
    assert_eq!(
        readers_of(&written, 0),
        [account("dr_alice"), s.me.account()]
    );
}
