//! The original project's walkthrough on one ledger, block by block, with the exact
//! balances the original users saw.

mod common;

use common::Net;
use health_workflow::{
    Body, Event, EventKind, NotPaid, PrescriptionDraft, Reading, RecordedEvent, Section,
    TestRequest, balances, demo::RESERVE_USERNAME, records,
};
use ledger_core::{Amount, Height};

fn assert_balances(net: &Net, expected: [(&str, u64); 4]) {
    let lines: Vec<(String, u64)> = balances(&net.ledger)
        .into_iter()
        .map(|b| (b.name, b.amount.units()))
        .collect();
    let expected: Vec<(String, u64)> = expected
        .iter()
        .map(|(name, amount)| (name.to_string(), *amount))
        .collect();
    assert_eq!(lines, expected);
    assert_eq!(net.ledger.state().total_supply(), Some(Amount(1_000_000)));
}

#[test]
fn walkthrough_with_exact_balances_block_by_block() {
    let mut net = Net::new(4);
    assert_balances(
        &net,
        [
            (RESERVE_USERNAME, 1_000_000),
            ("dr_alice", 0),
            ("lab_tech_bob", 0),
            ("pharm_charlie", 0),
        ],
    );

    // Doctor: register, consult with a blood test order; then mine block 1.
    let patient = net.patient_id();
    let now = net.now();
    let written = net
        .alice
        .register(&net.ledger, patient, "Jane Doe", now, &mut net.rng)
        .expect("a doctor registers");
    let tx = net.keep(written);
    net.submit(tx).expect("registration accepted");
    let order = TestRequest::blood_test(net.order_id());
    let now = net.now();
    let written = net
        .alice
        .consult(
            &net.ledger,
            patient,
            "fatigue, pale",
            Some(order.clone()),
            now,
            &mut net.rng,
        )
        .expect("a doctor consults");
    let tx = net.keep(written);
    net.submit(tx)
        .expect("consultation accepted before the registration is mined");
    let block = net.mine();
    assert_eq!(block.header.height, Height(1));
    assert_eq!(block.transactions.len(), 2);
    assert!(block.rewards.is_empty());
    let state = net.ledger.state().app();
    assert_eq!(state.open_orders(&patient).len(), 1);
    assert_eq!(state.open_orders(&patient)[0].id, order.order_id);

    // Lab: perform the test on the open order; block 2 pays the ordering doctor 500.
    let now = net.now();
    let written = net
        .bob
        .perform_test(
            &net.ledger,
            patient,
            None,
            "Hemoglobin 9.1 g/dL",
            now,
            &mut net.rng,
        )
        .expect("a lab technician records a result");
    let result_tx = net.keep(written);
    let result_id = net.submit(result_tx).expect("result accepted");
    let block = net.mine();
    assert_eq!(block.rewards.len(), 1);
    assert_eq!(block.rewards[0].amount, Amount(500));
    assert_eq!(block.rewards[0].cause, result_id);
    assert_balances(
        &net,
        [
            (RESERVE_USERNAME, 999_500),
            ("dr_alice", 500),
            ("lab_tech_bob", 0),
            ("pharm_charlie", 0),
        ],
    );
    assert!(net.ledger.state().app().open_orders(&patient).is_empty());

    // Doctor: prescribe based on the result; the lab is paid 100 in block 3.
    let prescription_id = net.prescription_id();
    let now = net.now();
    let prescribed = net
        .alice
        .prescribe(
            &net.ledger,
            PrescriptionDraft {
                prescription_id,
                patient_id: patient,
                medication: "Ferrous sulfate".into(),
                dosage: "325 mg".into(),
                instructions: "once a day with food".into(),
                based_on: vec![result_id],
            },
            now,
            &mut net.rng,
        )
        .expect("a doctor prescribes");
    common::keep_in(&mut net.vault, prescribed.bodies.clone());
    assert_eq!(prescribed.payments.len(), 1);
    assert_eq!(prescribed.payments[0].username, "lab_tech_bob");
    assert!(prescribed.payments[0].transfer.is_ok());
    for tx in prescribed.transactions().cloned().collect::<Vec<_>>() {
        net.submit(tx).expect("prescription and payment accepted");
    }
    let block = net.mine();
    assert_eq!(block.transactions.len(), 2);
    assert_balances(
        &net,
        [
            (RESERVE_USERNAME, 999_500),
            ("dr_alice", 400),
            ("lab_tech_bob", 100),
            ("pharm_charlie", 0),
        ],
    );
    let unfilled = net.ledger.state().app().unfilled_prescriptions(&patient);
    assert_eq!(unfilled.len(), 1);
    assert_eq!(unfilled[0].id, prescription_id);

    // Pharmacy: fill; block 4 pays the prescribing doctor 700.
    let now = net.now();
    let tx = net
        .charlie
        .fill(&net.ledger, prescription_id, now)
        .expect("a pharmacist fills");
    net.submit(tx).expect("fill accepted");
    let block = net.mine();
    assert_eq!(block.rewards.len(), 1);
    assert_eq!(block.rewards[0].amount, Amount(700));
    assert_balances(
        &net,
        [
            (RESERVE_USERNAME, 998_800),
            ("dr_alice", 1_100),
            ("lab_tech_bob", 100),
            ("pharm_charlie", 0),
        ],
    );

    // History: every event in chain order, with its block height and time.
    let state = net.ledger.state().app();
    let history = state.history(&patient).expect("a registered patient");
    let kinds: Vec<EventKind> = history.iter().map(|h| h.kind).collect();
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
    let heights: Vec<u64> = history.iter().map(|h| h.height.0).collect();
    assert_eq!(heights, [1, 1, 2, 3, 4]);
    // The events themselves are read back from the blocks by that index.
    let events = records::patient_history(&net.ledger, &patient)
        .expect("every indexed event is in its block")
        .expect("a registered patient");
    assert_eq!(events.len(), history.len());
    for (entry, read) in history.iter().zip(&events) {
        assert_eq!(read.event.kind(), entry.kind);
        assert_eq!(read.recorded.tx_id, entry.tx_id);
        assert_eq!(read.recorded.height, entry.height);
        let hash = net.ledger.main_chain()[entry.height.0 as usize];
        let header = net.ledger.header(&hash).expect("a main-chain block");
        assert_eq!(read.recorded.time, header.timestamp);
    }
    // The name is sealed: the event holds none of it, the care team reads it.
    assert!(matches!(&events[0].event, Event::PatientRegistration(_)));
    assert!(!format!("{:?}", events[0].event).contains("Jane"));
    assert_eq!(
        net.read("lab_tech_bob", &events[0], Section::Demographics)
            .as_ref()
            .and_then(Reading::clear),
        Some(&Body::demographics("Jane Doe"))
    );
    assert_eq!(events[2].recorded.author, net.bob.account());
    let filled = state
        .prescription(&prescription_id)
        .expect("the prescription is recorded");
    assert!(filled.filled.is_some());
    let text = records::prescription(&net.ledger, &prescription_id)
        .expect("its block is stored")
        .expect("a recorded prescription");
    assert_eq!(text.based_on, [result_id]);
    // What was prescribed is sealed too; the pharmacy that filled it reads it.
    let prescription = RecordedEvent {
        recorded: filled.prescribed,
        event: Event::Prescription(text),
    };
    assert_eq!(
        net.read("pharm_charlie", &prescription, Section::Prescription)
            .as_ref()
            .and_then(Reading::clear),
        Some(&Body::prescription(
            "Ferrous sulfate",
            "325 mg",
            "once a day with food"
        ))
    );
    assert!(state.unfilled_prescriptions(&patient).is_empty());

    // recalc_balances: a replay from genesis gives the same state.
    assert_eq!(
        net.ledger.replay_from_genesis().as_ref(),
        Ok(net.ledger.state())
    );
}

#[test]
fn a_doctor_without_funds_still_prescribes_and_is_told_why_the_lab_is_unpaid() {
    let mut net = Net::new(0);
    let patient = net.patient_id();
    let order = TestRequest::blood_test(net.order_id());
    let now = net.now();
    let written = net
        .alice
        .register(&net.ledger, patient, "Jane", now, &mut net.rng)
        .expect("register");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    let written = net
        .alice
        .consult(&net.ledger, patient, "", Some(order), now, &mut net.rng)
        .expect("consult");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    net.mine();
    let written = net
        .bob
        .perform_test(&net.ledger, patient, None, "normal", now, &mut net.rng)
        .expect("result");
    let tx = net.keep(written);
    let result = net.submit(tx).expect("accepted");
    // Not mined yet: the doctor has no reward, and the result is only pending.
    let prescription_id = net.prescription_id();
    let now = net.now();
    let prescribed = net
        .alice
        .prescribe(
            &net.ledger,
            PrescriptionDraft {
                prescription_id,
                patient_id: patient,
                medication: "Rest".into(),
                dosage: "8 hours".into(),
                instructions: String::new(),
                based_on: vec![result],
            },
            now,
            &mut net.rng,
        )
        .expect("prescribing does not need funds");
    assert_eq!(
        prescribed.payments[0].transfer,
        Err(NotPaid::InsufficientFunds {
            balance: Amount(0),
            amount: Amount(100)
        })
    );
    assert_eq!(prescribed.transactions().count(), 1);
    net.submit(prescribed.prescription)
        .expect("the prescription stands");
    net.mine();
    assert!(
        net.ledger
            .state()
            .app()
            .prescription(&prescription_id)
            .is_some()
    );
    assert_eq!(net.balance("dr_alice"), Amount(500));
    assert_eq!(net.balance("lab_tech_bob"), Amount(0));
}
