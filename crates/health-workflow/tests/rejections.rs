//! Each way an event or a block can break the healthcare rules is refused with its own
//! error, the same in the mempool and inside a block.

mod common;

use common::{Net, block_policy_error, policy_error};
use health_workflow::{
    DoctorConsultation, Event, EventError, LabTestResult, OrderId, PatientId, PatientRegistration,
    Prescription, PrescriptionDraft, PrescriptionFilled, PrescriptionId, TestOrder, TestRequest,
    WorkflowError, demo::demo_keypair, limits, seal::MAX_CIPHERTEXT_LEN,
};
use ledger_core::{Amount, BlockError, Keypair, Reward, TxId};

/// A patient with one answered order (its result recorded and mined), one open order,
/// and one filled and one unfilled prescription.
struct Scene {
    net: Net,
    patient: PatientId,
    answered: OrderId,
    open_order: OrderId,
    result: TxId,
    filled: PrescriptionId,
    unfilled: PrescriptionId,
}

fn scene() -> Scene {
    let mut net = Net::new(2);
    let alice = net.alice.clone();
    let patient = net.patient_id();
    let (answered, open_order) = (net.order_id(), net.order_id());
    let now = net.now();
    let written = alice
        .register(&net.ledger, patient, "Jane", now, &mut net.rng)
        .expect("valid");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    for order in [answered, open_order] {
        let order = Some(TestRequest::blood_test(order));
        let written = alice
            .consult(&net.ledger, patient, "", order, now, &mut net.rng)
            .expect("valid");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
    }
    net.mine();
    let written = net
        .bob
        .perform_test(
            &net.ledger,
            patient,
            Some(answered),
            "ok",
            now,
            &mut net.rng,
        )
        .expect("valid");
    let tx = net.keep(written);
    let result = net.submit(tx).expect("accepted");
    net.mine();
    let (filled, unfilled) = (net.prescription_id(), net.prescription_id());
    for id in [filled, unfilled] {
        let prescribed = alice
            .prescribe(
                &net.ledger,
                draft(patient, id, vec![result]),
                now,
                &mut net.rng,
            )
            .expect("valid");
        for tx in prescribed.transactions().cloned().collect::<Vec<_>>() {
            net.submit(tx).expect("accepted");
        }
    }
    net.mine();
    let tx = net.charlie.fill(&net.ledger, filled, now).expect("valid");
    net.submit(tx).expect("accepted");
    net.mine();
    Scene {
        net,
        patient,
        answered,
        open_order,
        result,
        filled,
        unfilled,
    }
}

/// What a doctor's front end asks to prescribe.
fn draft(patient: PatientId, id: PrescriptionId, based_on: Vec<TxId>) -> PrescriptionDraft {
    PrescriptionDraft {
        prescription_id: id,
        patient_id: patient,
        medication: "Iron".into(),
        dosage: "1 tablet".into(),
        instructions: String::new(),
        based_on,
    }
}

/// A raw prescription event, its details a reference to a body no one reads.
fn prescription(
    net: &mut Net,
    patient: PatientId,
    id: PrescriptionId,
    based_on: Vec<TxId>,
) -> Event {
    Event::Prescription(Prescription {
        prescription_id: id,
        patient_id: patient,
        details: net.sealed_ref(),
        based_on,
    })
}

/// A raw registration of `patient`, its name a reference to a body no one reads.
fn registration(net: &mut Net, patient: PatientId) -> Event {
    Event::PatientRegistration(PatientRegistration {
        patient_id: patient,
        demographics: net.sealed_ref(),
        patient_keys: patient_keys(net, patient),
    })
}

/// The demo keys of `patient`, signed by the patient for `net`.
fn patient_keys(net: &Net, patient: PatientId) -> health_workflow::PatientKeys {
    health_workflow::PatientKeys::sign(
        &net.ledger.genesis_hash(),
        &patient,
        &health_workflow::demo::demo_patient_keypair(&patient),
    )
}

/// Submits `event` signed by `keys` to the mempool and, separately, in a crafted block;
/// both must refuse it with the same error, which is returned.
fn refuse(scene: &mut Scene, keys: &Keypair, event: Event) -> EventError {
    let tx = scene.net.raw(keys, event);
    let in_mempool = scene
        .net
        .submit(tx.clone())
        .expect_err("the mempool refuses it");
    let in_mempool = policy_error(&in_mempool)
        .expect("a rule refused it")
        .clone();
    let state = scene.net.ledger.state().clone();
    let block = scene.net.craft(|t| t.transactions.push(tx));
    let in_block = scene.net.reject(block);
    assert_eq!(block_policy_error(&in_block), Some(&in_mempool));
    assert_eq!(scene.net.ledger.state(), &state);
    in_mempool
}

fn lab() -> Keypair {
    demo_keypair("lab_tech_bob")
}
fn doctor() -> Keypair {
    demo_keypair("dr_alice")
}
fn pharmacy() -> Keypair {
    demo_keypair("pharm_charlie")
}

fn result_for(net: &mut Net, patient: PatientId, order: OrderId) -> Event {
    Event::LabTestResult(LabTestResult {
        patient_id: patient,
        order_id: order,
        results: net.sealed_ref(),
    })
}

#[test]
fn result_without_an_order() {
    let mut s = scene();
    let order = s.net.order_id();
    let event = result_for(&mut s.net, s.patient, order);
    let error = refuse(&mut s, &lab(), event);
    assert_eq!(error, EventError::UnknownOrder { order });
}

#[test]
fn second_result_for_the_same_order() {
    let mut s = scene();
    let event = result_for(&mut s.net, s.patient, s.answered);
    let error = refuse(&mut s, &lab(), event);
    assert_eq!(
        error,
        EventError::OrderAlreadyAnswered {
            order: s.answered,
            result: s.result
        }
    );
}

#[test]
fn second_result_for_the_same_order_while_the_first_is_pending() {
    let mut s = scene();
    let event = result_for(&mut s.net, s.patient, s.open_order);
    let tx = s.net.raw(&lab(), event);
    let first = s.net.submit(tx).expect("the first result is accepted");
    let event = result_for(&mut s.net, s.patient, s.open_order);
    let tx = s.net.raw(&lab(), event);
    let error = s.net.submit(tx).expect_err("the second is refused");
    assert_eq!(
        policy_error(&error),
        Some(&EventError::OrderAlreadyAnswered {
            order: s.open_order,
            result: first
        })
    );
}

#[test]
fn result_for_another_patients_order() {
    let mut s = scene();
    let other = s.net.patient_id();
    let event = registration(&mut s.net, other);
    let tx = s.net.raw(&doctor(), event);
    s.net.submit(tx).expect("accepted");
    s.net.mine();
    let event = result_for(&mut s.net, other, s.open_order);
    let error = refuse(&mut s, &lab(), event);
    assert_eq!(
        error,
        EventError::OrderOfAnotherPatient {
            order: s.open_order,
            ordered_for: s.patient,
            patient: other
        }
    );
}

#[test]
fn fill_of_an_unknown_prescription() {
    let mut s = scene();
    let prescription = s.net.prescription_id();
    let error = refuse(
        &mut s,
        &pharmacy(),
        Event::PrescriptionFilled(PrescriptionFilled {
            prescription_id: prescription,
        }),
    );
    assert_eq!(error, EventError::UnknownPrescription { prescription });
}

#[test]
fn fill_of_an_already_filled_prescription() {
    let mut s = scene();
    let filled = s.filled;
    let error = refuse(
        &mut s,
        &pharmacy(),
        Event::PrescriptionFilled(PrescriptionFilled {
            prescription_id: filled,
        }),
    );
    assert!(
        matches!(error, EventError::AlreadyFilled { prescription, .. } if prescription == filled)
    );
    // The unfilled one can still be filled.
    let tx = s.net.raw(
        &pharmacy(),
        Event::PrescriptionFilled(PrescriptionFilled {
            prescription_id: s.unfilled,
        }),
    );
    s.net
        .submit(tx)
        .expect("the unfilled prescription is filled");
}

#[test]
fn events_for_an_unknown_patient() {
    let mut s = scene();
    let patient = s.net.patient_id();
    let expected = EventError::UnknownPatient { patient };
    let consult = Event::DoctorConsultation(DoctorConsultation {
        patient_id: patient,
        notes: s.net.sealed_ref(),
        test_orders: Vec::new(),
    });
    assert_eq!(refuse(&mut s, &doctor(), consult), expected);
    let order = s.open_order;
    let result = result_for(&mut s.net, patient, order);
    assert_eq!(refuse(&mut s, &lab(), result), expected);
    let id = s.net.prescription_id();
    let p = prescription(&mut s.net, patient, id, vec![]);
    assert_eq!(refuse(&mut s, &doctor(), p), expected);
}

#[test]
fn reused_ids() {
    let mut s = scene();
    let patient = s.patient;
    let again = registration(&mut s.net, patient);
    assert_eq!(
        refuse(&mut s, &doctor(), again),
        EventError::DuplicatePatient { patient }
    );
    let order = s.answered;
    let consult = Event::DoctorConsultation(DoctorConsultation {
        patient_id: patient,
        notes: s.net.sealed_ref(),
        test_orders: vec![TestOrder {
            order_id: order,
            test: s.net.sealed_ref(),
        }],
    });
    assert_eq!(
        refuse(&mut s, &doctor(), consult),
        EventError::DuplicateOrder { order }
    );
    let prescription_id = s.filled;
    let p = prescription(&mut s.net, patient, prescription_id, vec![]);
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::DuplicatePrescription {
            prescription: prescription_id
        }
    );
}

#[test]
fn prescriptions_must_name_existing_distinct_results_of_their_patient() {
    let mut s = scene();
    let (patient, result) = (s.patient, s.result);
    let unknown = TxId::from_hash(ledger_core::Hash::of(b"no such result"));
    let id = s.net.prescription_id();
    let p = prescription(&mut s.net, patient, id, vec![unknown]);
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::UnknownResult { result: unknown }
    );
    let p = prescription(&mut s.net, patient, id, vec![result, result]);
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::RepeatedResult { result }
    );
    let other = s.net.patient_id();
    let event = registration(&mut s.net, other);
    let tx = s.net.raw(&doctor(), event);
    s.net.submit(tx).expect("accepted");
    s.net.mine();
    let p = prescription(&mut s.net, other, id, vec![result]);
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::ResultOfAnotherPatient {
            result,
            tested: patient,
            patient: other
        }
    );
}

/// An edit of a prescription draft.
type DraftEdit = fn(&mut PrescriptionDraft);

/// The text error `written` was refused with, if it was refused for its text.
fn text_error<T: std::fmt::Debug>(written: Result<T, WorkflowError>) -> EventError {
    match written.expect_err("the text breaks a limit") {
        WorkflowError::Event(error) => error,
        other => panic!("refused for another reason: {other}"),
    }
}

/// The policy cannot read a sealed body, so text limits are checked by the `Actor`
/// before sealing: an empty or over-long field is refused there, with its own error,
/// before anything is sealed or signed.
#[test]
fn empty_or_over_long_text_is_refused_before_sealing() {
    let mut s = scene();
    let net = &mut s.net;
    let (alice, bob) = (net.alice.clone(), net.bob.clone());
    let now = net.now();
    let too_long = |max: usize| "x".repeat(max + 1);

    let patient_id = net.patient_id();
    let name = too_long(limits::MAX_PATIENT_NAME);
    let error = text_error(alice.register(&net.ledger, patient_id, &name, now, &mut net.rng));
    assert!(
        matches!(error, EventError::TextTooLong { field: "patient name", len, max }
            if len == name.len() && max == limits::MAX_PATIENT_NAME),
        "{error}"
    );
    assert_eq!(
        text_error(alice.register(&net.ledger, patient_id, "", now, &mut net.rng)),
        EventError::EmptyText {
            field: "patient name"
        }
    );

    let notes = too_long(limits::MAX_NOTES);
    let error = text_error(alice.consult(&net.ledger, s.patient, &notes, None, now, &mut net.rng));
    assert!(
        matches!(error, EventError::TextTooLong { field: "notes", .. }),
        "{error}"
    );
    let order_id = net.order_id();
    let test = |test_name: String| Some(TestRequest::new(order_id, &test_name));
    let empty = test(String::new());
    assert_eq!(
        text_error(alice.consult(&net.ledger, s.patient, "", empty, now, &mut net.rng)),
        EventError::EmptyText { field: "test name" }
    );
    let long = test(too_long(limits::MAX_TEST_NAME));
    let error = text_error(alice.consult(&net.ledger, s.patient, "", long, now, &mut net.rng));
    assert!(
        matches!(
            error,
            EventError::TextTooLong {
                field: "test name",
                ..
            }
        ),
        "{error}"
    );

    let open = Some(s.open_order);
    assert_eq!(
        text_error(bob.perform_test(&net.ledger, s.patient, open, "", now, &mut net.rng)),
        EventError::EmptyText { field: "results" }
    );
    let results = too_long(limits::MAX_RESULTS);
    let error =
        text_error(bob.perform_test(&net.ledger, s.patient, open, &results, now, &mut net.rng));
    assert!(
        matches!(
            error,
            EventError::TextTooLong {
                field: "results",
                ..
            }
        ),
        "{error}"
    );

    // Each edit empties (`true`) or overfills (`false`) one field of a valid draft.
    let id = net.prescription_id();
    let cases: [(DraftEdit, &str, bool); 5] = [
        (|d| d.medication.clear(), "medication", true),
        (|d| d.dosage.clear(), "dosage", true),
        (
            |d| d.medication = "x".repeat(limits::MAX_MEDICATION + 1),
            "medication",
            false,
        ),
        (
            |d| d.dosage = "x".repeat(limits::MAX_DOSAGE + 1),
            "dosage",
            false,
        ),
        (
            |d| d.instructions = "x".repeat(limits::MAX_INSTRUCTIONS + 1),
            "instructions",
            false,
        ),
    ];
    for (edit, field, empty) in cases {
        let mut d = draft(s.patient, id, vec![]);
        edit(&mut d);
        let error = text_error(alice.prescribe(&net.ledger, d, now, &mut net.rng));
        match (&error, empty) {
            (EventError::EmptyText { field: f }, true) => assert_eq!(*f, field),
            (EventError::TextTooLong { field: f, .. }, false) => assert_eq!(*f, field),
            _ => panic!("{field}: refused for another reason: {error}"),
        }
    }
    // At the limit, a name passes.
    let at_limit = "x".repeat(limits::MAX_PATIENT_NAME);
    alice
        .register(&net.ledger, patient_id, &at_limit, now, &mut net.rng)
        .expect("a name at the limit");
}

/// What the policy still checks of a sealed section: its announced size and that no
/// body is named twice in one event.
#[test]
fn oversized_or_repeated_sealed_bodies_are_refused() {
    let mut s = scene();
    let patient = s.net.patient_id();
    let mut demographics = s.net.sealed_ref();
    demographics.ciphertext_len = u32::try_from(MAX_CIPHERTEXT_LEN + 1).expect("fits a u32");
    let event = Event::PatientRegistration(PatientRegistration {
        patient_id: patient,
        demographics,
        patient_keys: patient_keys(&s.net, patient),
    });
    assert!(matches!(
        refuse(&mut s, &doctor(), event),
        EventError::SealedTooLarge { len, max, .. }
            if len as usize == MAX_CIPHERTEXT_LEN + 1 && max == MAX_CIPHERTEXT_LEN
    ));
    let notes = s.net.sealed_ref();
    let consult = Event::DoctorConsultation(DoctorConsultation {
        patient_id: s.patient,
        notes,
        test_orders: vec![TestOrder {
            order_id: s.net.order_id(),
            test: notes,
        }],
    });
    assert_eq!(
        refuse(&mut s, &doctor(), consult),
        EventError::RepeatedBody {
            body: notes.body_id
        }
    );
}

/// A scene with a lab result pending, so the next block earns one reward.
fn rewarding_scene() -> Scene {
    let mut s = scene();
    let event = result_for(&mut s.net, s.patient, s.open_order);
    let tx = s.net.raw(&lab(), event);
    s.net.submit(tx).expect("accepted");
    s
}

#[test]
fn tampered_reward_amount() {
    let mut s = rewarding_scene();
    let block = s.net.craft(|t| {
        assert_eq!(t.rewards.len(), 1);
        t.rewards[0].amount = Amount(5_000);
    });
    let error = s.net.reject(block);
    assert!(
        matches!(&error, BlockError::RewardMismatch { index: 0, expected, found, .. }
            if expected.amount == Amount(500) && found.amount == Amount(5_000)),
        "{error}"
    );
}

#[test]
fn reward_to_the_wrong_account() {
    let mut s = rewarding_scene();
    let block = s
        .net
        .craft(|t| t.rewards[0].to = demo_keypair("lab_tech_bob").account());
    let error = s.net.reject(block);
    assert!(
        matches!(&error, BlockError::RewardMismatch { .. }),
        "{error}"
    );
}

#[test]
fn missing_reward_entry() {
    let mut s = rewarding_scene();
    let block = s.net.craft(|t| t.rewards.clear());
    let error = s.net.reject(block);
    assert!(
        matches!(&error, BlockError::RewardMissing { expected, .. }
            if expected.amount == Amount(500) && expected.to == doctor().account()),
        "{error}"
    );
}

#[test]
fn extra_reward_entry() {
    let mut s = rewarding_scene();
    let block = s.net.craft(|t| {
        let extra = Reward {
            to: demo_keypair("pharm_charlie").account(),
            amount: Amount(700),
            cause: t.rewards[0].cause,
        };
        t.rewards.push(extra);
    });
    let error = s.net.reject(block);
    assert!(
        matches!(&error, BlockError::RewardUnexpected { found, .. }
            if found.amount == Amount(700)),
        "{error}"
    );
    // An unearned reward in a block without earning transactions is refused too.
    let mut s = scene();
    let block = s.net.craft(|t| {
        t.rewards.push(Reward {
            to: doctor().account(),
            amount: Amount(500),
            cause: unearned_cause(),
        })
    });
    assert!(matches!(
        s.net.reject(block),
        BlockError::RewardUnexpected { .. }
    ));
}

fn unearned_cause() -> TxId {
    TxId::from_hash(ledger_core::Hash::of(b"nothing earned this"))
}

#[test]
fn no_reward_once_the_reserve_cannot_pay() {
    let builder = health_workflow::demo::DemoGenesisBuilder::new()
        .pow_bits(0)
        .reserve_funds(600);
    let mut net = Net::with_genesis(builder);
    let alice = net.alice.clone();
    let patient = net.patient_id();
    let orders = [net.order_id(), net.order_id()];
    let now = net.now();
    let written = alice
        .register(&net.ledger, patient, "Jane", now, &mut net.rng)
        .expect("valid");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    for order in orders {
        let order = Some(TestRequest::blood_test(order));
        let written = alice
            .consult(&net.ledger, patient, "", order, now, &mut net.rng)
            .expect("valid");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
    }
    net.mine();
    for order in orders {
        let written = net
            .bob
            .perform_test(&net.ledger, patient, Some(order), "ok", now, &mut net.rng)
            .expect("valid");
        let tx = net.keep(written);
        net.submit(tx).expect("accepted");
    }
    // Two results earn 500 each; the reserve of 600 pays only the first.
    let block = net.mine();
    assert_eq!(block.rewards.len(), 1);
    assert_eq!(net.balance("dr_alice"), Amount(500));
    assert_eq!(net.balance("SYSTEM_BANK_001"), Amount(100));
    assert_eq!(net.ledger.state().total_supply(), Some(Amount(600)));
}
