//! Each way an event or a block can break the healthcare rules is refused with its own
//! error, the same in the mempool and inside a block.

mod common;

use common::{Net, block_policy_error, policy_error};
use health_workflow::{
    DoctorConsultation, Event, EventError, LabTestResult, OrderId, PatientId, PatientRegistration,
    Prescription, PrescriptionFilled, PrescriptionId, TestOrder, demo::demo_keypair,
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
    let tx = alice
        .register(&net.ledger, patient, "Jane", now)
        .expect("valid");
    net.submit(tx).expect("accepted");
    for order in [answered, open_order] {
        let order = Some(TestOrder::blood_test(order));
        let tx = alice
            .consult(&net.ledger, patient, "", order, now)
            .expect("valid");
        net.submit(tx).expect("accepted");
    }
    net.mine();
    let tx = net
        .bob
        .perform_test(&net.ledger, patient, Some(answered), "ok", now)
        .expect("valid");
    let result = net.submit(tx).expect("accepted");
    net.mine();
    let (filled, unfilled) = (net.prescription_id(), net.prescription_id());
    for id in [filled, unfilled] {
        let p = prescription(patient, id, vec![result]);
        let prescribed = alice.prescribe(&net.ledger, p, now).expect("valid");
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

fn prescription(patient: PatientId, id: PrescriptionId, based_on: Vec<TxId>) -> Prescription {
    Prescription {
        prescription_id: id,
        patient_id: patient,
        medication: "Iron".into(),
        dosage: "1 tablet".into(),
        instructions: String::new(),
        based_on,
    }
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

fn result_for(patient: PatientId, order: OrderId) -> Event {
    Event::LabTestResult(LabTestResult {
        patient_id: patient,
        order_id: order,
        results: "again".into(),
    })
}

#[test]
fn result_without_an_order() {
    let mut s = scene();
    let order = s.net.order_id();
    let event = result_for(s.patient, order);
    let error = refuse(&mut s, &lab(), event);
    assert_eq!(error, EventError::UnknownOrder { order });
}

#[test]
fn second_result_for_the_same_order() {
    let mut s = scene();
    let event = result_for(s.patient, s.answered);
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
    let tx = s.net.raw(&lab(), result_for(s.patient, s.open_order));
    let first = s.net.submit(tx).expect("the first result is accepted");
    let tx = s.net.raw(&lab(), result_for(s.patient, s.open_order));
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
    let tx = s.net.raw(
        &doctor(),
        Event::PatientRegistration(PatientRegistration {
            patient_id: other,
            name: "John".into(),
        }),
    );
    s.net.submit(tx).expect("accepted");
    s.net.mine();
    let event = result_for(other, s.open_order);
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
        notes: String::new(),
        test_order: None,
    });
    assert_eq!(refuse(&mut s, &doctor(), consult), expected);
    let order = s.open_order;
    assert_eq!(refuse(&mut s, &lab(), result_for(patient, order)), expected);
    let id = s.net.prescription_id();
    let p = Event::Prescription(prescription(patient, id, vec![]));
    assert_eq!(refuse(&mut s, &doctor(), p), expected);
}

#[test]
fn reused_ids() {
    let mut s = scene();
    let patient = s.patient;
    let again = Event::PatientRegistration(PatientRegistration {
        patient_id: patient,
        name: "Jane again".into(),
    });
    assert_eq!(
        refuse(&mut s, &doctor(), again),
        EventError::DuplicatePatient { patient }
    );
    let order = s.answered;
    let consult = Event::DoctorConsultation(DoctorConsultation {
        patient_id: patient,
        notes: String::new(),
        test_order: Some(TestOrder::blood_test(order)),
    });
    assert_eq!(
        refuse(&mut s, &doctor(), consult),
        EventError::DuplicateOrder { order }
    );
    let prescription_id = s.filled;
    let p = Event::Prescription(prescription(patient, prescription_id, vec![]));
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
    let p = Event::Prescription(prescription(patient, id, vec![unknown]));
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::UnknownResult { result: unknown }
    );
    let p = Event::Prescription(prescription(patient, id, vec![result, result]));
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::RepeatedResult { result }
    );
    let other = s.net.patient_id();
    let tx = s.net.raw(
        &doctor(),
        Event::PatientRegistration(PatientRegistration {
            patient_id: other,
            name: "John".into(),
        }),
    );
    s.net.submit(tx).expect("accepted");
    s.net.mine();
    let p = Event::Prescription(prescription(other, id, vec![result]));
    assert_eq!(
        refuse(&mut s, &doctor(), p),
        EventError::ResultOfAnotherPatient {
            result,
            tested: patient,
            patient: other
        }
    );
}

#[test]
fn over_long_text_is_refused() {
    let mut s = scene();
    let name = "x".repeat(health_workflow::limits::MAX_PATIENT_NAME + 1);
    let patient_id = s.net.patient_id();
    let event = Event::PatientRegistration(PatientRegistration { patient_id, name });
    assert!(matches!(
        refuse(&mut s, &doctor(), event),
        EventError::TextTooLong {
            field: "patient name",
            ..
        }
    ));
}

/// A scene with a lab result pending, so the next block earns one reward.
fn rewarding_scene() -> Scene {
    let mut s = scene();
    let tx = s.net.raw(&lab(), result_for(s.patient, s.open_order));
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
    let tx = alice
        .register(&net.ledger, patient, "Jane", now)
        .expect("valid");
    net.submit(tx).expect("accepted");
    for order in orders {
        let order = Some(TestOrder::blood_test(order));
        let tx = alice
            .consult(&net.ledger, patient, "", order, now)
            .expect("valid");
        net.submit(tx).expect("accepted");
    }
    net.mine();
    for order in orders {
        let tx = net
            .bob
            .perform_test(&net.ledger, patient, Some(order), "ok", now)
            .expect("valid");
        net.submit(tx).expect("accepted");
    }
    // Two results earn 500 each; the reserve of 600 pays only the first.
    let block = net.mine();
    assert_eq!(block.rewards.len(), 1);
    assert_eq!(net.balance("dr_alice"), Amount(500));
    assert_eq!(net.balance("SYSTEM_BANK_001"), Amount(100));
    assert_eq!(net.ledger.state().total_supply(), Some(Amount(600)));
}
