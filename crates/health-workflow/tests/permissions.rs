//! Every role against every event: only the allowed pairs pass, in the mempool and
//! inside a block.

mod common;

use common::{Net, block_policy_error, policy_error};
use health_workflow::seal::BodyId;
use health_workflow::{
    AccessPurpose, AccessRecord, Category, ConsentGrant, ConsentRevocation, DoctorConsultation,
    EncryptionKeyRotation, ErasureReceipt, ErasureRequest, Event, EventError, EventKind, GrantId,
    GrantRef, Grantee, LabTestResult, OrderId, PatientActor, PatientId, PatientKeys,
    PatientRegistration, Prescription, PrescriptionDraft, PrescriptionFilled, PrescriptionId, Role,
    TestOrder, TestRequest, demo::demo_keypair, seal::EncryptionKey,
};
use ledger_core::{Keypair, Timestamp, TxId};

/// A network where every kind of event has something valid to act on: a registered
/// patient with an open order, a recorded result and an unfilled prescription.
struct Scene {
    net: Net,
    patient: PatientId,
    /// The patient's own key, handed over at registration.
    patient_keys: Keypair,
    open_order: OrderId,
    result: TxId,
    prescription: PrescriptionId,
    /// Another patient, who asked for erasure in this transaction.
    erased: (PatientId, TxId),
}

fn scene() -> Scene {
    let mut net = Net::new(0);
    let patient = net.patient_id();
    let (answered, open_order) = (net.order_id(), net.order_id());
    let now = net.now();
    let alice = net.alice.clone();
    let written = alice
        .register(&net.ledger, patient, "Jane", now, &mut net.rng)
        .expect("valid");
    let patient_keys = written
        .patient
        .clone()
        .expect("a registration hands keys over")
        .0;
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    let leaving = net.patient_id();
    let written = alice
        .register(&net.ledger, leaving, "Joe", now, &mut net.rng)
        .expect("valid");
    let leaving_keys = written.patient.clone().expect("keys").0;
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    let order = Some(TestRequest::blood_test(answered));
    let written = alice
        .consult(&net.ledger, patient, "a", order, now, &mut net.rng)
        .expect("valid");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
    net.mine();
    let written = alice
        .consult(
            &net.ledger,
            patient,
            "b",
            Some(TestRequest::blood_test(open_order)),
            now,
            &mut net.rng,
        )
        .expect("valid");
    let tx = net.keep(written);
    net.submit(tx).expect("accepted");
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
    let prescription = net.prescription_id();
    let prescribed = alice
        .prescribe(
            &net.ledger,
            PrescriptionDraft {
                prescription_id: prescription,
                patient_id: patient,
                medication: "Iron".into(),
                dosage: "1 tablet".into(),
                instructions: "daily".into(),
                based_on: vec![result],
            },
            now,
            &mut net.rng,
        )
        .expect("valid");
    for tx in prescribed.transactions().cloned().collect::<Vec<_>>() {
        net.submit(tx).expect("accepted");
    }
    net.mine();
    let erase = PatientActor::new(&net.ledger, leaving_keys)
        .expect("registered")
        .erase(&net.ledger, now)
        .expect("valid");
    let request = net.submit(erase).expect("accepted");
    net.mine();
    Scene {
        net,
        patient,
        patient_keys,
        open_order,
        result,
        prescription,
        erased: (leaving, request),
    }
}

/// A valid event of `kind` for the scene, whoever signs it; sealed sections are
/// references to bodies no one reads (the rules never look inside).
fn event(scene: &mut Scene, kind: EventKind) -> Event {
    let net = &mut scene.net;
    match kind {
        EventKind::PatientRegistration => {
            let patient_id = net.patient_id();
            Event::PatientRegistration(PatientRegistration {
                patient_id,
                demographics: net.sealed_ref(),
                patient_keys: PatientKeys::sign(
                    &net.ledger.genesis_hash(),
                    &patient_id,
                    &Keypair::from_seed([0x77; 32]),
                ),
            })
        }
        EventKind::DoctorConsultation => Event::DoctorConsultation(DoctorConsultation {
            patient_id: scene.patient,
            notes: net.sealed_ref(),
            test_orders: vec![TestOrder {
                order_id: net.order_id(),
                test: net.sealed_ref(),
            }],
        }),
        EventKind::LabTestResult => Event::LabTestResult(LabTestResult {
            patient_id: scene.patient,
            order_id: scene.open_order,
            results: net.sealed_ref(),
        }),
        EventKind::Prescription => Event::Prescription(Prescription {
            prescription_id: net.prescription_id(),
            patient_id: scene.patient,
            details: net.sealed_ref(),
            based_on: vec![scene.result],
        }),
        EventKind::PrescriptionFilled => Event::PrescriptionFilled(PrescriptionFilled {
            prescription_id: scene.prescription,
        }),
        // A key no member holds yet, so recording it changes the state.
        EventKind::EncryptionKeyRotation => Event::EncryptionKeyRotation(EncryptionKeyRotation {
            key: EncryptionKey::from_seed(&[0x66; 32]).public(),
        }),
        EventKind::ConsentGrant => Event::ConsentGrant(ConsentGrant {
            grant_id: GrantId::from_random_bytes([0x21; 16]),
            patient_id: scene.patient,
            grantee: Grantee::Role(Role::Pharmacist),
            categories: vec![Category::ConsultationNotes],
            not_before: Timestamp(0),
            not_after: Timestamp(u64::MAX),
            purpose: "second opinion".into(),
        }),
        EventKind::ConsentRevocation => Event::ConsentRevocation(ConsentRevocation {
            patient_id: scene.patient,
            grant: GrantRef::Treatment(Role::Pharmacist),
        }),
        EventKind::AccessRecord => Event::AccessRecord(AccessRecord {
            patient_id: scene.patient,
            reader: demo_keypair("lab_tech_bob").account(),
            bodies: vec![BodyId::from_byte_array([1; 16])],
            purpose: AccessPurpose::Treatment,
        }),
        EventKind::ErasureRequest => Event::ErasureRequest(ErasureRequest {
            patient_id: scene.patient,
        }),
        EventKind::ErasureReceipt => Event::ErasureReceipt(ErasureReceipt {
            patient_id: scene.erased.0,
            request: scene.erased.1,
        }),
        _ => unreachable!("every kind is listed"),
    }
}

/// What every member of the care team may record besides its role's events.
const CARE_TEAM: [EventKind; 3] = [
    EventKind::EncryptionKeyRotation,
    EventKind::AccessRecord,
    EventKind::ErasureReceipt,
];

/// (signing key, role label or `None` for an outsider, allowed kinds): the care team,
/// the scene's patient (every scene draws the same one) and an outsider.
fn actors() -> Vec<(Keypair, Option<&'static str>, Vec<EventKind>)> {
    let with_care = |kinds: &[EventKind]| [kinds, &CARE_TEAM[..]].concat();
    vec![
        (
            demo_keypair("dr_alice"),
            Some("doctor"),
            with_care(&[
                EventKind::PatientRegistration,
                EventKind::DoctorConsultation,
                EventKind::Prescription,
            ]),
        ),
        (
            demo_keypair("lab_tech_bob"),
            Some("lab_technician"),
            with_care(&[EventKind::LabTestResult]),
        ),
        (
            demo_keypair("pharm_charlie"),
            Some("pharmacist"),
            with_care(&[EventKind::PrescriptionFilled]),
        ),
        (
            scene().patient_keys,
            Some("patient"),
            vec![
                EventKind::ConsentGrant,
                EventKind::ConsentRevocation,
                EventKind::ErasureRequest,
                EventKind::EncryptionKeyRotation,
            ],
        ),
        (Keypair::from_seed([0x55; 32]), None, Vec::new()),
    ]
}

fn expected_refusal(
    scene: &Scene,
    keys: &Keypair,
    role: Option<&str>,
    kind: EventKind,
) -> EventError {
    match role {
        _ if kind.is_patients() => EventError::NotSignedByPatient {
            patient: scene.patient,
            author: keys.account(),
            event: kind,
        },
        Some("patient") => EventError::NotPatientsEvent { event: kind },
        Some(role) => EventError::NotPermitted {
            role: role.to_string(),
            event: kind,
        },
        None => EventError::NotAMember {
            account: keys.account(),
        },
    }
}

#[test]
fn only_allowed_role_event_pairs_enter_the_mempool() {
    for (keys, role, allowed) in actors() {
        for kind in EventKind::ALL {
            let mut scene = scene();
            let event = event(&mut scene, kind);
            let tx = scene.net.raw(&keys, event);
            let result = scene.net.submit(tx);
            if allowed.contains(&kind) {
                assert!(result.is_ok(), "{role:?} {kind}: {result:?}");
            } else {
                let error = result.expect_err("forbidden pair");
                assert_eq!(
                    policy_error(&error),
                    Some(&expected_refusal(&scene, &keys, role, kind)),
                    "{role:?} {kind}"
                );
            }
        }
    }
}

#[test]
fn a_block_with_one_forbidden_event_is_invalid() {
    for (keys, role, allowed) in actors() {
        for kind in EventKind::ALL {
            let mut scene = scene();
            let event = event(&mut scene, kind);
            let tx = scene.net.raw(&keys, event);
            let before = scene.net.ledger.state().clone();
            let tip = scene.net.ledger.tip();
            if allowed.contains(&kind) {
                scene.net.submit(tx).expect("allowed pair");
                let block = scene.net.mine();
                assert_eq!(block.transactions.len(), 1, "{role:?} {kind}");
                assert_ne!(scene.net.ledger.state(), &before);
            } else {
                let block = scene.net.craft(|t| t.transactions.push(tx));
                let error = scene.net.reject(block);
                assert_eq!(
                    block_policy_error(&error),
                    Some(&expected_refusal(&scene, &keys, role, kind)),
                    "{role:?} {kind}: {error}"
                );
                assert_eq!(scene.net.ledger.tip(), tip);
                assert_eq!(scene.net.ledger.state(), &before);
            }
        }
    }
}
