//! The privacy property: no clinical text reaches the chain, and each member of the
//! care team reads exactly the sections its role is consented to (treatment consent:
//! the name to everyone, notes to doctors, tests and results to doctors and the lab,
//! prescriptions to doctors and the pharmacy). A body opens only for the event it was
//! sealed for, a changed body is refused, and after a key rotation new bodies are
//! sealed to the new key.

mod common;

use std::collections::BTreeSet;

use common::{Net, Vault, block_policy_error, keep_in, policy_error};
use health_workflow::demo::{demo_encryption_key, demo_keypair};
use health_workflow::records::{self, RecordedEvent};
use health_workflow::seal::{EncryptionKey, OpenSealed, SALT_BYTES, SealError, SealedRef};
use health_workflow::{
    Body, BodyReader, ConsentTable, DEFAULT_TEST_NAME, EncryptionKeyRotation, Event, EventError,
    EventKind, HealthLedger, HealthPolicy, HealthTx, LabTestResult, PatientId, PrescriptionDraft,
    ReadError, Reading, Recorded, Section, TestRequest, WorkflowError, Written,
};
use ledger_core::sealed::BodyMismatch;
use ledger_core::{AccountId, BlockHash, Hash, Height, Keypair, Transaction, TxBody, codec};
use proptest::prelude::*;

// The walkthrough's clinical text: none of it may be on the chain.
const NAME: &str = "Jane Doe";
const NOTES: &str = "Persistent fatigue, pale conjunctivae";
const RESULTS: &str = "Hemoglobin 9.1 g/dL, ferritin low";
const MEDICATION: &str = "Ferrous sulfate";
const DOSAGE: &str = "325 mg";
const INSTRUCTIONS: &str = "once a day with food";

/// Every section, in the order the walkthrough writes them.
const SECTIONS: [Section; 5] = [
    Section::Demographics,
    Section::Notes,
    Section::TestOrder,
    Section::Results,
    Section::Prescription,
];

/// The clear body the walkthrough wrote in `section`.
fn written_body(section: Section) -> Body {
    match section {
        Section::Demographics => Body::demographics(NAME),
        Section::Notes => Body::notes(NOTES),
        Section::TestOrder => Body::test_order(DEFAULT_TEST_NAME),
        Section::Results => Body::results(RESULTS),
        Section::Prescription => Body::prescription(MEDICATION, DOSAGE, INSTRUCTIONS),
        other => panic!("the walkthrough writes no {other} section"),
    }
}

/// The demo members and the sections treatment consent lets each read.
fn consented() -> [(&'static str, &'static [Section]); 3] {
    [
        ("dr_alice", &SECTIONS),
        (
            "lab_tech_bob",
            &[Section::Demographics, Section::TestOrder, Section::Results],
        ),
        (
            "pharm_charlie",
            &[Section::Demographics, Section::Prescription],
        ),
    ]
}

/// The original walkthrough on one ledger, every body written kept in the net's
/// vault: register and consult with a blood test (block 1), the lab's result (block
/// 2), the prescription and the lab's payment (block 3), the fill (block 4).
fn walkthrough() -> (Net, PatientId) {
    let mut net = Net::new(0);
    let patient = net.patient_id();
    let now = net.now();
    let written = net
        .alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let tx = net.keep(written);
    net.submit(tx).expect("registration accepted");
    let order = TestRequest::blood_test(net.order_id());
    let written = net
        .alice
        .consult(&net.ledger, patient, NOTES, Some(order), now, &mut net.rng)
        .expect("a doctor consults");
    let tx = net.keep(written);
    net.submit(tx).expect("consultation accepted");
    net.mine();

    let now = net.now();
    let written = net
        .bob
        .perform_test(&net.ledger, patient, None, RESULTS, now, &mut net.rng)
        .expect("a lab technician records a result");
    let tx = net.keep(written);
    let result = net.submit(tx).expect("result accepted");
    net.mine();

    let prescription_id = net.prescription_id();
    let now = net.now();
    let draft = PrescriptionDraft {
        prescription_id,
        patient_id: patient,
        medication: MEDICATION.into(),
        dosage: DOSAGE.into(),
        instructions: INSTRUCTIONS.into(),
        based_on: vec![result],
    };
    let prescribed = net
        .alice
        .prescribe(&net.ledger, draft, now, &mut net.rng)
        .expect("a doctor prescribes");
    keep_in(&mut net.vault, prescribed.bodies.clone());
    for tx in prescribed.transactions().cloned().collect::<Vec<_>>() {
        net.submit(tx).expect("prescription and payment accepted");
    }
    net.mine();

    let now = net.now();
    let tx = net
        .charlie
        .fill(&net.ledger, prescription_id, now)
        .expect("a pharmacist fills");
    net.submit(tx).expect("fill accepted");
    net.mine();
    (net, patient)
}

/// The patient's confirmed history, read back from the blocks.
fn history(net: &Net, patient: &PatientId) -> Vec<RecordedEvent> {
    records::patient_history(&net.ledger, patient)
        .expect("every indexed event is in its block")
        .expect("a registered patient")
}

/// The account of the demo member `username`.
fn account(username: &str) -> AccountId {
    demo_keypair(username).account()
}

/// Reads `section` of `event` as `account` holding `key`, from `vault`.
fn read_with(
    net: &Net,
    account: AccountId,
    key: &EncryptionKey,
    event: &RecordedEvent,
    section: Section,
    vault: &Vault,
) -> Option<Reading> {
    BodyReader::new(net.ledger.genesis_hash(), account, key).read(
        &event.recorded.author,
        &event.event,
        section,
        |hash| vault.get(hash).cloned(),
    )
}

/// The event a signed transaction carries.
fn event_of(tx: &HealthTx) -> &Event {
    match &tx.body {
        TxBody::App(event) => event,
        TxBody::Transfer { .. } => panic!("a transfer carries no event"),
    }
}

/// A written event as if recorded (the reader needs only its author), with a vault of
/// its bodies: to read what was sealed before it is mined.
fn unmined(written: &Written) -> (RecordedEvent, Vault) {
    let recorded = Recorded {
        tx_id: written.tx.id(),
        height: Height(0),
        time: written.tx.timestamp,
        author: written.tx.author,
    };
    let event = RecordedEvent {
        recorded,
        event: event_of(&written.tx).clone(),
    };
    let mut vault = Vault::new();
    keep_in(&mut vault, written.bodies.clone());
    (event, vault)
}

#[test]
fn each_member_reads_exactly_the_sections_it_is_consented_to() {
    let (net, patient) = walkthrough();
    let history = history(&net, &patient);
    let kinds: Vec<EventKind> = history.iter().map(|e| e.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::PatientRegistration,
            EventKind::DoctorConsultation,
            EventKind::LabTestResult,
            EventKind::Prescription,
            EventKind::PrescriptionFilled,
        ]
    );
    for (member, readable) in consented() {
        let mut looked_at = Vec::new();
        for event in &history {
            for section in SECTIONS {
                let Some(reading) = net.read(member, event, section) else {
                    assert!(event.event.sealed_section(section).is_none());
                    continue;
                };
                if readable.contains(&section) {
                    assert_eq!(
                        reading,
                        Reading::Clear(written_body(section)),
                        "{member} reads the {section}"
                    );
                } else {
                    assert_eq!(
                        reading,
                        Reading::Sealed,
                        "{member} may not read the {section}"
                    );
                }
                looked_at.push(section);
            }
        }
        // Every section was written once, and looked at.
        assert_eq!(looked_at, SECTIONS, "{member}");
    }
    // Each body carries a wrap for exactly its readers: the author and the consented
    // roles, no one else.
    for event in &history {
        for (section, reference) in event.event.sealed() {
            let body = &net.vault[&reference.ciphertext_hash];
            body.check(&reference)
                .expect("the vault keeps what the chain names");
            let wrapped: BTreeSet<AccountId> = body.readers().copied().collect();
            let mut expected: BTreeSet<AccountId> = consented()
                .iter()
                .filter(|(_, readable)| readable.contains(&section))
                .map(|(member, _)| account(member))
                .collect();
            expected.insert(event.recorded.author);
            // and the patient, who reads every record about them
            let state = net.ledger.state().app();
            expected.insert(state.patient(&patient).expect("registered").account);
            assert_eq!(wrapped, expected, "readers of the {section}");
        }
    }
}

#[test]
fn the_chain_holds_none_of_the_clinical_text() {
    let (net, _) = walkthrough();
    let clinical = [
        NAME,
        NOTES,
        DEFAULT_TEST_NAME,
        RESULTS,
        MEDICATION,
        DOSAGE,
        INSTRUCTIONS,
    ];
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    // The search finds each text where it is: in the clear encoding of its body.
    for text in clinical {
        assert!(
            SECTIONS
                .iter()
                .any(|s| contains(&written_body(*s).encode(), text)),
            "{text:?} is in no body"
        );
    }
    let mut blocks = 0;
    for (height, hash) in net.ledger.main_chain().iter().enumerate() {
        let Some(block) = net.ledger.block(hash).expect("an in-memory store") else {
            assert_eq!(height, 0, "only the genesis may have no body");
            continue;
        };
        let bytes = codec::encode(&*block);
        for text in clinical {
            assert!(
                !contains(&bytes, text),
                "{text:?} is in the block at height {height}"
            );
        }
        blocks += 1;
    }
    assert_eq!(blocks, 4, "the walkthrough's four blocks were searched");
    // Nor is it in the state, nor in what the vault keeps (ciphertexts and wraps).
    let state = format!("{:?}", net.ledger.state());
    let vault: Vec<u8> = net.vault.values().flat_map(codec::encode).collect();
    for text in clinical {
        assert!(!state.contains(text), "{text:?} is in the state");
        assert!(
            !contains(&vault, text),
            "{text:?} is in the clear in the vault"
        );
    }
}

#[test]
fn equal_bodies_sealed_twice_give_unrelated_references() {
    let mut net = Net::new(0);
    let patient = net.patient_id();
    let now = net.now();
    let demographics = |net: &mut Net| -> SealedRef {
        let written = net
            .alice
            .register(&net.ledger, patient, NAME, now, &mut net.rng)
            .expect("a doctor registers");
        match event_of(&written.tx) {
            Event::PatientRegistration(r) => r.demographics,
            other => panic!("a registration was written, not {other:?}"),
        }
    };
    let (a, b) = (demographics(&mut net), demographics(&mut net));
    assert_ne!(a.commitment, b.commitment);
    assert_ne!(a.ciphertext_hash, b.ciphertext_hash);
    assert_ne!(a.body_id, b.body_id);
    // Nor is a commitment the plain hash of the name or of its encoding, which anyone
    // could compute from a guess.
    let encoded = Body::demographics(NAME).encode();
    for plain in [Hash::of(NAME.as_bytes()), Hash::of(&encoded)] {
        assert_ne!(a.commitment, plain);
        assert_ne!(b.commitment, plain);
    }
}

#[test]
fn a_body_moved_onto_another_event_is_refused() {
    let (net, patient) = walkthrough();
    let history = history(&net, &patient);
    let (registration, consultation) = (&history[0], &history[1]);
    let Event::DoctorConsultation(consult) = &consultation.event else {
        panic!("the second event is the consultation");
    };
    let test = consult
        .test_orders
        .first()
        .expect("a blood test was ordered");
    let doctor = |event: &RecordedEvent, section| net.read("dr_alice", event, section);
    assert_eq!(
        doctor(consultation, Section::Notes),
        Some(Reading::Clear(written_body(Section::Notes)))
    );
    let refused = |reading: Option<Reading>| matches!(reading, Some(Reading::Refused(_)));

    // The same event, as if another member had written it.
    let mut other_author = consultation.clone();
    other_author.recorded.author = account("lab_tech_bob");
    assert!(refused(doctor(&other_author, Section::Notes)));

    // The notes in a consultation of another patient.
    let mut other_patient = consult.clone();
    other_patient.patient_id = PatientId::from_random_bytes([0x99; 16]);
    let moved = RecordedEvent {
        recorded: consultation.recorded,
        event: Event::DoctorConsultation(other_patient),
    };
    assert!(refused(doctor(&moved, Section::Notes)));

    // The notes as the results of a lab result (another kind of event).
    let moved = RecordedEvent {
        recorded: consultation.recorded,
        event: Event::LabTestResult(LabTestResult {
            patient_id: patient,
            order_id: test.order_id,
            results: consult.notes,
        }),
    };
    assert!(refused(doctor(&moved, Section::Results)));

    // The registration's name, put where the notes were: another kind again.
    let Event::PatientRegistration(registered) = &registration.event else {
        panic!("the first event is the registration");
    };
    let mut swapped = consult.clone();
    swapped.notes = registered.demographics;
    let moved = RecordedEvent {
        recorded: consultation.recorded,
        event: Event::DoctorConsultation(swapped),
    };
    assert!(refused(doctor(&moved, Section::Notes)));

    // The test order and the notes of one event swapped: it opens (same event) but is
    // not a body of the section it sits in.
    let mut swapped = consult.clone();
    swapped.notes = test.test;
    swapped
        .test_orders
        .first_mut()
        .expect("a blood test was ordered")
        .test = consult.notes;
    let moved = RecordedEvent {
        recorded: consultation.recorded,
        event: Event::DoctorConsultation(swapped),
    };
    assert!(matches!(
        doctor(&moved, Section::Notes),
        Some(Reading::Refused(ReadError::Body(_)))
    ));

    // The same event on another network.
    let key = demo_encryption_key("dr_alice");
    let elsewhere = BodyReader::new(
        BlockHash::from_byte_array([0x77; 32]),
        account("dr_alice"),
        &key,
    );
    let reading = elsewhere.read(
        &consultation.recorded.author,
        &consultation.event,
        Section::Notes,
        |hash| net.vault.get(hash).cloned(),
    );
    assert!(refused(reading));
}

#[test]
fn a_changed_body_in_the_vault_is_refused() {
    let (net, patient) = walkthrough();
    let history = history(&net, &patient);
    let result = &history[2];
    let reference = result
        .event
        .sealed_section(Section::Results)
        .expect("a lab result has results");
    let original = net.vault[&reference.ciphertext_hash].clone();
    let key = demo_encryption_key("dr_alice");
    let doctor = BodyReader::new(net.ledger.genesis_hash(), account("dr_alice"), &key);
    let read = |body: &ledger_core::sealed::SealedBody| {
        doctor.read(
            &result.recorded.author,
            &result.event,
            Section::Results,
            |_| Some(body.clone()),
        )
    };
    assert_eq!(
        read(&original),
        Some(Reading::Clear(written_body(Section::Results)))
    );

    // A changed ciphertext (salt or body): a vault's check catches it, and a reader
    // that got it anyway refuses it.
    for at in [0, SALT_BYTES + 1, original.ciphertext.len() - 1] {
        let mut changed = original.clone();
        changed.ciphertext[at] ^= 1;
        assert_eq!(changed.check(&reference), Err(BodyMismatch::CiphertextHash));
        assert_eq!(
            read(&changed),
            Some(Reading::Refused(ReadError::Seal(SealError::Mismatch(
                BodyMismatch::CiphertextHash
            ))))
        );
    }
    let mut shorter = original.clone();
    shorter.ciphertext.pop();
    assert_eq!(shorter.check(&reference), Err(BodyMismatch::Length));

    // What the reference does not hash (the nonce, the wraps) passes the vault's check
    // but does not open.
    let mut changed = original.clone();
    changed.nonce[0] ^= 1;
    assert_eq!(changed.check(&reference), Ok(()));
    assert_eq!(
        read(&changed),
        Some(Reading::Refused(ReadError::Seal(SealError::Binding)))
    );
    let mut changed = original.clone();
    let wrap = changed
        .wraps
        .iter_mut()
        .find(|w| w.reader == account("dr_alice"))
        .expect("the results are sealed to the doctor");
    wrap.wrapped_key[0] ^= 1;
    assert_eq!(
        read(&changed),
        Some(Reading::Refused(ReadError::Seal(SealError::WrongKey)))
    );
    // A vault that drops a reader's wrap withholds the body; it cannot forge one.
    let mut withheld = original.clone();
    withheld.wraps.retain(|w| w.reader != account("dr_alice"));
    assert_eq!(read(&withheld), Some(Reading::Sealed));
}

#[test]
fn after_a_key_rotation_new_bodies_are_sealed_to_the_new_key() {
    let mut net = Net::new(0);
    let bob = account("lab_tech_bob");
    let patient = net.patient_id();
    let (before, after) = (net.order_id(), net.order_id());
    let now = net.now();
    let written = net
        .alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    let order = Some(TestRequest::blood_test(before));
    let written = net
        .alice
        .consult(&net.ledger, patient, NOTES, order, now, &mut net.rng)
        .expect("a doctor consults");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    net.mine();

    let old_key = demo_encryption_key("lab_tech_bob");
    let new_key = EncryptionKey::from_seed(&[0x42; 32]);
    let now = net.now();
    let tx = net
        .bob
        .rotate_encryption_key(&net.ledger, new_key.public(), now)
        .expect("a lab technician rotates its own key");
    net.submit(tx).expect("the rotation is accepted");
    // Until the rotation is mined, bodies are still sealed to the old key.
    let state = net.ledger.state().app();
    assert_eq!(state.encryption_key(&bob), Some(old_key.public()));
    let other = net.patient_id();
    let pending = net
        .alice
        .register(&net.ledger, other, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let (pending, pending_vault) = unmined(&pending);
    let name = Some(Reading::Clear(written_body(Section::Demographics)));
    let read = |key, event, section, vault| read_with(&net, bob, key, event, section, vault);
    assert_eq!(
        read(&old_key, &pending, Section::Demographics, &pending_vault),
        name
    );
    net.mine();
    assert_eq!(
        net.ledger.state().app().encryption_key(&bob),
        Some(new_key.public())
    );

    // Now the lab's results (sealed by the lab itself) and a new test order (sealed by
    // the doctor) are sealed to the new key.
    let now = net.now();
    let written = net
        .bob
        .perform_test(
            &net.ledger,
            patient,
            Some(before),
            RESULTS,
            now,
            &mut net.rng,
        )
        .expect("a lab technician records a result");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    let order = Some(TestRequest::blood_test(after));
    let written = net
        .alice
        .consult(&net.ledger, patient, NOTES, order, now, &mut net.rng)
        .expect("a doctor consults");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    net.mine();

    let history = history(&net, &patient);
    let kinds: Vec<EventKind> = history.iter().map(|e| e.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::PatientRegistration,
            EventKind::DoctorConsultation,
            EventKind::LabTestResult,
            EventKind::DoctorConsultation,
        ]
    );
    let read = |key, event, section| read_with(&net, bob, key, event, section, &net.vault);
    let wrong_key = Some(Reading::Refused(ReadError::Seal(SealError::WrongKey)));
    let test_order = Some(Reading::Clear(written_body(Section::TestOrder)));
    // Sealed before the rotation: the old key reads it, the new one does not.
    assert_eq!(read(&old_key, &history[1], Section::TestOrder), test_order);
    assert_eq!(read(&new_key, &history[1], Section::TestOrder), wrong_key);
    // Sealed after it: the new key reads it, the old one does not.
    let results = Some(Reading::Clear(written_body(Section::Results)));
    assert_eq!(read(&new_key, &history[2], Section::Results), results);
    assert_eq!(read(&old_key, &history[2], Section::Results), wrong_key);
    assert_eq!(read(&new_key, &history[3], Section::TestOrder), test_order);
    assert_eq!(read(&old_key, &history[3], Section::TestOrder), wrong_key);
    // The lab's consent is unchanged: the notes stay sealed to it, whatever its key.
    for key in [&old_key, &new_key] {
        assert_eq!(
            read(key, &history[3], Section::Notes),
            Some(Reading::Sealed)
        );
    }
    // The doctor's key did not change, and it reads everything as before.
    assert_eq!(net.read("dr_alice", &history[2], Section::Results), results);
}

#[test]
fn a_rotation_undone_by_a_reorg_restores_the_old_key() {
    let mut net = Net::new(0);
    let bob = account("lab_tech_bob");
    let old_key = demo_encryption_key("lab_tech_bob");
    let new_key = EncryptionKey::from_seed(&[0x42; 32]);
    let now = net.now();
    let tx = net
        .bob
        .rotate_encryption_key(&net.ledger, new_key.public(), now)
        .expect("a lab technician rotates its own key");
    net.submit(tx).expect("accepted");
    net.mine();
    assert_eq!(
        net.ledger.state().app().encryption_key(&bob),
        Some(new_key.public())
    );

    // A longer rival chain without the rotation, by another producer.
    let mut rival =
        HealthLedger::new(net.ledger.genesis().clone(), HealthPolicy).expect("valid genesis");
    let mut blocks = Vec::new();
    for _ in 0..2 {
        let now = net.now();
        let block = rival.mine_block(&demo_keypair("lab_tech_bob"), now);
        let _ = rival
            .submit(block.clone(), now)
            .into_result()
            .expect("valid");
        blocks.push(block);
    }
    for block in blocks {
        let now = net.now();
        let _ = net
            .ledger
            .submit(block, now)
            .into_result()
            .expect("a valid rival block");
    }
    assert_eq!(net.ledger.tip().hash, rival.tip().hash);
    assert_eq!(
        net.ledger.state().app().encryption_key(&bob),
        Some(old_key.public())
    );
    // Bodies written now are sealed to the old key again.
    let now = net.now();
    let patient = net.patient_id();
    let written = net
        .alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let (event, vault) = unmined(&written);
    let name = Some(Reading::Clear(written_body(Section::Demographics)));
    assert_eq!(
        read_with(&net, bob, &old_key, &event, Section::Demographics, &vault),
        name
    );
    assert_eq!(
        read_with(&net, bob, &new_key, &event, Section::Demographics, &vault),
        Some(Reading::Refused(ReadError::Seal(SealError::WrongKey)))
    );
}

#[test]
fn a_pharmacist_rotates_its_own_key_and_an_outsider_may_not() {
    let mut net = Net::new(0);
    let charlie = account("pharm_charlie");
    let key = EncryptionKey::from_seed(&[0x43; 32]);
    let now = net.now();
    let tx = net
        .charlie
        .rotate_encryption_key(&net.ledger, key.public(), now)
        .expect("a pharmacist rotates its own key");
    net.submit(tx).expect("accepted");
    net.mine();
    assert_eq!(
        net.ledger.state().app().encryption_key(&charlie),
        Some(key.public())
    );
    // A name registered now is sealed to the pharmacy's new key.
    let now = net.now();
    let patient = net.patient_id();
    let written = net
        .alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let (event, vault) = unmined(&written);
    assert_eq!(
        read_with(&net, charlie, &key, &event, Section::Demographics, &vault),
        Some(Reading::Clear(written_body(Section::Demographics)))
    );

    // An outsider's rotation is refused, in the mempool and in a block, and gives it
    // no key to which anything would be sealed.
    let outsider = Keypair::from_seed([0x55; 32]);
    let rotation = Event::EncryptionKeyRotation(EncryptionKeyRotation {
        key: EncryptionKey::from_seed(&[0x44; 32]).public(),
    });
    let tx = net.raw(&outsider, rotation);
    let expected = EventError::NotAMember {
        account: outsider.account(),
    };
    let error = net
        .submit(tx.clone())
        .expect_err("an outsider may not rotate");
    assert_eq!(policy_error(&error), Some(&expected));
    let state = net.ledger.state().clone();
    let block = net.craft(|t| t.transactions.push(tx));
    let error = net.reject(block);
    assert_eq!(block_policy_error(&error), Some(&expected));
    assert_eq!(net.ledger.state(), &state);
    assert_eq!(
        net.ledger.state().app().encryption_key(&outsider.account()),
        None
    );
}

/// A member may not stop the others from writing by rotating to a key no one can seal
/// to (the all-zero X25519 point, of low order): the rotation is refused, by the actor
/// and by the policy (a hand-signed one in the mempool), and sealing goes on.
#[test]
fn a_rotation_to_an_unusable_key_is_refused() {
    let mut net = Net::new(0);
    let now = net.now();
    let unusable = health_workflow::seal::EncryptionPublicKey::from_byte_array([0; 32]);
    let refused = net.bob.rotate_encryption_key(&net.ledger, unusable, now);
    assert!(
        matches!(
            refused,
            Err(WorkflowError::Event(
                EventError::UnusableEncryptionKey { .. }
            ))
        ),
        "{refused:?}"
    );
    let signed = Transaction::new_signed(
        &net.ledger.genesis_hash(),
        &demo_keypair("lab_tech_bob"),
        net.ledger.next_nonce(&account("lab_tech_bob")),
        now,
        TxBody::App(Event::EncryptionKeyRotation(EncryptionKeyRotation {
            key: unusable,
        })),
    );
    let error = net
        .ledger
        .submit_transaction(signed, now)
        .expect_err("the policy refuses it");
    assert!(matches!(
        policy_error(&error),
        Some(EventError::UnusableEncryptionKey { .. })
    ));
    let (patient, now) = (net.patient_id(), net.now());
    net.alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor still registers patients");
}

#[test]
fn without_consent_only_the_author_and_the_patient_read() {
    let mut net = Net::new(0);
    let alice = net.alice.clone().with_consent(ConsentTable::empty());
    let (patient, now) = (net.patient_id(), net.now());
    let written = alice
        .register(&net.ledger, patient, NAME, now, &mut net.rng)
        .expect("a doctor registers");
    let (event, vault) = unmined(&written);
    let readers: Vec<AccountId> = written.bodies[0].readers().copied().collect();
    let patient_account = written.patient.as_ref().expect("keys").0.account();
    assert_eq!(readers, [account("dr_alice"), patient_account]);
    for (member, expected) in [
        (
            "dr_alice",
            Reading::Clear(written_body(Section::Demographics)),
        ),
        ("lab_tech_bob", Reading::Sealed),
        ("pharm_charlie", Reading::Sealed),
    ] {
        let key = demo_encryption_key(member);
        let reading = read_with(
            &net,
            account(member),
            &key,
            &event,
            Section::Demographics,
            &vault,
        );
        assert_eq!(reading, Some(expected), "{member}");
        // Nor does the body open with the member's key directly.
        if member != "dr_alice" {
            let reference = event
                .event
                .sealed_section(Section::Demographics)
                .expect("a registration has demographics");
            let binding = health_workflow::seal::Binding::new(
                net.ledger.genesis_hash(),
                event.recorded.author,
                event.event.patient_id().expect("a patient"),
                EventKind::PatientRegistration,
            );
            assert_eq!(
                written.bodies[0].open(&reference, &binding, &account(member), &key),
                Err(SealError::NotAReader {
                    account: account(member)
                })
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the text, what the doctor's and the lab's front ends seal reads back
    /// exactly for the doctor, and the lab never reads the notes.
    #[test]
    fn sealed_text_reads_back_exactly_for_its_readers_only(
        name in "\\PC{1,50}",
        notes in "\\PC{0,120}",
        results in "\\PC{1,120}",
        seed in any::<u8>(),
    ) {
        let mut net = Net::new(0);
        net.rng = common::rng(seed);
        let patient = net.patient_id();
        let now = net.now();
        let written = net
            .alice
            .register(&net.ledger, patient, &name, now, &mut net.rng)
            .expect("a name within the limit");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
        let order = Some(TestRequest::blood_test(net.order_id()));
        let written = net
            .alice
            .consult(&net.ledger, patient, &notes, order, now, &mut net.rng)
            .expect("notes within the limit");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
        net.mine();
        let now = net.now();
        let written = net
            .bob
            .perform_test(&net.ledger, patient, None, &results, now, &mut net.rng)
            .expect("results within the limit");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
        net.mine();

        let history = history(&net, &patient);
        prop_assert_eq!(history.len(), 3);
        let doctor = |event, section| net.read("dr_alice", event, section);
        prop_assert_eq!(
            doctor(&history[0], Section::Demographics),
            Some(Reading::Clear(Body::demographics(&name)))
        );
        prop_assert_eq!(
            doctor(&history[1], Section::Notes),
            Some(Reading::Clear(Body::notes(&notes)))
        );
        prop_assert_eq!(
            doctor(&history[2], Section::Results),
            Some(Reading::Clear(Body::results(&results)))
        );
        prop_assert_eq!(
            net.read("lab_tech_bob", &history[1], Section::Notes),
            Some(Reading::Sealed)
        );
        prop_assert_eq!(
            net.read("pharm_charlie", &history[2], Section::Results),
            Some(Reading::Sealed)
        );
    }
}
