//! Property: any sequence of workflow actions by any users (members in any role, and
//! outsiders) keeps the e-cash supply constant, never lets an account pay more than it
//! has, and yields the same state as a replay from genesis; switching to a longer
//! rival chain undoes every event exactly, key rotations, consent, reads and erasures
//! included. A patient's own event signed by anyone but the patient is never accepted.

mod common;

use common::Net;
use health_workflow::seal::BodyId;
use health_workflow::{
    AccessPurpose, AccessRecord, Category, ConsentGrant, ConsentRevocation, DoctorConsultation,
    EncryptionKeyRotation, ErasureReceipt, ErasureRequest, Event, EventError, GrantId, GrantRef,
    Grantee, HealthPolicy, LabTestResult, OrderId, PatientId, PatientRegistration, Prescription,
    PrescriptionDraft, PrescriptionFilled, PrescriptionId, Role, TestOrder, WorkflowError,
    demo::{DemoGenesisBuilder, demo_keypair},
    pending_balance,
    seal::EncryptionKey,
};
use ledger_core::{Amount, Keypair, Policy, Timestamp, Transaction, TxBody, TxError, TxId};
use proptest::prelude::*;

/// `None` picks what a well-behaved front end would (the user of the right role, the
/// patient the order or result belongs to); `Some` picks anything, valid or not.
type Choice = Option<usize>;

#[derive(Clone, Debug)]
enum Action {
    Register {
        user: Choice,
        name: String,
    },
    Consult {
        user: Choice,
        patient: Choice,
        order: bool,
    },
    Test {
        user: Choice,
        patient: Choice,
        order: usize,
    },
    Prescribe {
        user: Choice,
        patient: Choice,
        results: Vec<usize>,
    },
    Fill {
        user: Choice,
        prescription: usize,
    },
    Transfer {
        user: usize,
        to: usize,
        amount: u64,
    },
    /// `user` replaces its encryption key with the one derived from `seed`.
    Rotate {
        user: usize,
        seed: u8,
    },
    /// The `patient`-th newest patient (or, `forged`, a member in its place) grants,
    /// revokes or asks for erasure; or a member records a read, breaks the glass or
    /// confirms an erasure (`op`, with `arg` choosing role, category, window, member).
    Patient {
        patient: usize,
        op: u8,
        arg: u8,
        forged: bool,
    },
    Mine,
}

fn choice(range: std::ops::Range<usize>) -> impl Strategy<Value = Choice> + Clone {
    prop_oneof![4 => Just(None), 1 => range.prop_map(Some)]
}

fn action() -> impl Strategy<Value = Action> {
    let user = choice(0..4);
    // Indices count back from the newest id seen; past the oldest they name a fresh,
    // unknown id.
    let pick = 0..4usize;
    prop_oneof![
        2 => (user.clone(), "[a-zA-Z =+,\"-]{0,12}")
            .prop_map(|(user, name)| Action::Register { user, name }),
        3 => (user.clone(), choice(0..4), any::<bool>())
            .prop_map(|(user, patient, order)| Action::Consult { user, patient, order }),
        3 => (user.clone(), choice(0..4), pick.clone())
            .prop_map(|(user, patient, order)| Action::Test { user, patient, order }),
        3 => (user.clone(), choice(0..4), prop::collection::vec(pick.clone(), 0..3))
            .prop_map(|(user, patient, results)| Action::Prescribe { user, patient, results }),
        2 => (user.clone(), pick.clone())
            .prop_map(|(user, prescription)| Action::Fill { user, prescription }),
        2 => (0..4usize, 0..5usize, 0..700u64)
            .prop_map(|(user, to, amount)| Action::Transfer { user, to, amount }),
        1 => (0..4usize, 0..3u8).prop_map(|(user, seed)| Action::Rotate { user, seed }),
        4 => (0..3usize, 0..6u8, any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(patient, op, arg, forged)| Action::Patient { patient, op, arg, forged }),
        3 => Just(Action::Mine),
    ]
}

/// Ids seen so far (accepted or not), with the patient each order or result is for.
#[derive(Default)]
struct Seen {
    patients: Vec<PatientId>,
    orders: Vec<(OrderId, PatientId)>,
    results: Vec<(TxId, PatientId)>,
    prescriptions: Vec<PrescriptionId>,
    /// Patients whose keys the front end handed over, with the keys.
    keyed: Vec<(PatientId, Keypair)>,
    grants: Vec<GrantId>,
    /// Accepted erasure requests: the patient and the request.
    erasures: Vec<(PatientId, TxId)>,
}

/// The `back`-th newest item, if there is one.
fn newest<T: Copy>(items: &[T], back: usize) -> Option<T> {
    items.len().checked_sub(back + 1).map(|i| items[i])
}

fn run(actions: Vec<Action>, reserve: u64) -> Result<(), TestCaseError> {
    let mut net = Net::with_genesis(DemoGenesisBuilder::new().pow_bits(0).reserve_funds(reserve));
    let keys: Vec<Keypair> = ["dr_alice", "lab_tech_bob", "pharm_charlie"]
        .into_iter()
        .map(demo_keypair)
        .chain([Keypair::from_seed([0x77; 32])])
        .collect();
    let reserve_account = net.ledger.genesis().reserve;
    let mut seen = Seen::default();
    let supply = Some(Amount(reserve));

    for action in actions {
        let event = match action {
            Action::Mine => {
                net.mine();
                prop_assert_eq!(net.ledger.state().total_supply(), supply);
                continue;
            }
            Action::Transfer { user, to, amount } => {
                let to = keys.get(to).map_or(reserve_account, Keypair::account);
                let from = keys[user].account();
                let available = pending_balance(&net.ledger, &from);
                let now = net.now();
                let tx = Transaction::new_signed(
                    &net.ledger.genesis_hash(),
                    &keys[user],
                    net.ledger.next_nonce(&from),
                    now,
                    TxBody::Transfer {
                        to,
                        amount: Amount(amount),
                    },
                );
                match net.submit(tx) {
                    Ok(_) => prop_assert!(available >= Amount(amount)),
                    Err(TxError::Overdraft { balance, .. }) => {
                        prop_assert_eq!(balance, available);
                        prop_assert!(available < Amount(amount));
                    }
                    Err(TxError::ZeroAmount { .. }) => prop_assert_eq!(amount, 0),
                    Err(other) => prop_assert!(false, "unexpected {other}"),
                }
                continue;
            }
            Action::Register { user, name } => {
                let patient_id = net.patient_id();
                seen.patients.push(patient_id);
                let user = user.unwrap_or(0);
                if user == 0 {
                    // The doctor's front end seals the name, refusing an empty one.
                    let now = net.now();
                    let alice = net.alice.clone();
                    match alice.register(&net.ledger, patient_id, &name, now, &mut net.rng) {
                        Ok(written) => {
                            let keys = written.patient.clone().expect("keys handed over").0;
                            seen.keyed.push((patient_id, keys));
                            let tx = net.keep(written);
                            prop_assert!(!name.is_empty());
                            prop_assert!(net.submit(tx).is_ok(), "a fresh patient");
                        }
                        Err(error) => prop_assert_eq!(
                            error,
                            WorkflowError::Event(EventError::EmptyText {
                                field: "patient name"
                            })
                        ),
                    }
                    continue;
                }
                let demographics = net.sealed_ref();
                let event = Event::PatientRegistration(PatientRegistration {
                    patient_id,
                    demographics,
                    patient_keys: health_workflow::PatientKeys::sign(
                        &net.ledger.genesis_hash(),
                        &patient_id,
                        &health_workflow::demo::demo_patient_keypair(&patient_id),
                    ),
                });
                (user, event)
            }
            Action::Consult {
                user,
                patient,
                order,
            } => {
                let patient_id = newest(&seen.patients, patient.unwrap_or(0))
                    .unwrap_or_else(|| net.patient_id());
                let test_orders = order.then(|| {
                    let order_id = net.order_id();
                    seen.orders.push((order_id, patient_id));
                    TestOrder {
                        order_id,
                        test: net.sealed_ref(),
                    }
                });
                let notes = net.sealed_ref();
                let event = Event::DoctorConsultation(DoctorConsultation {
                    patient_id,
                    notes,
                    test_orders: test_orders.into_iter().collect(),
                });
                (user.unwrap_or(0), event)
            }
            Action::Test {
                user,
                patient,
                order,
            } => {
                let (order_id, ordered_for) = newest(&seen.orders, order)
                    .unwrap_or_else(|| (net.order_id(), net.patient_id()));
                let patient_id = match patient {
                    None => ordered_for,
                    Some(i) => newest(&seen.patients, i).unwrap_or_else(|| net.patient_id()),
                };
                let results = net.sealed_ref();
                let event = Event::LabTestResult(LabTestResult {
                    patient_id,
                    order_id,
                    results,
                });
                (user.unwrap_or(1), event)
            }
            Action::Prescribe {
                user,
                patient,
                results,
            } => {
                let based: Vec<(TxId, PatientId)> = results
                    .iter()
                    .map(|i| {
                        newest(&seen.results, *i).unwrap_or_else(|| {
                            (
                                TxId::from_hash(ledger_core::Hash::of(&[*i as u8])),
                                net.patient_id(),
                            )
                        })
                    })
                    .collect();
                let patient_id = match (patient, based.first()) {
                    (None, Some((_, tested))) => *tested,
                    (None, None) => newest(&seen.patients, 0).unwrap_or_else(|| net.patient_id()),
                    (Some(i), _) => newest(&seen.patients, i).unwrap_or_else(|| net.patient_id()),
                };
                let prescription_id = net.prescription_id();
                seen.prescriptions.push(prescription_id);
                let based_on: Vec<TxId> = based.iter().map(|(id, _)| *id).collect();
                let user = user.unwrap_or(0);
                if user == 0 {
                    // The doctor's front end: the prescription and the payments it can afford.
                    let draft = PrescriptionDraft {
                        prescription_id,
                        patient_id,
                        medication: "m".into(),
                        dosage: "d".into(),
                        instructions: String::new(),
                        based_on,
                    };
                    let now = net.now();
                    let alice = net.alice.clone();
                    if let Ok(prescribed) = alice.prescribe(&net.ledger, draft, now, &mut net.rng) {
                        common::keep_in(&mut net.vault, prescribed.bodies.clone());
                        let txs: Vec<_> = prescribed.transactions().cloned().collect();
                        if net.submit(txs[0].clone()).is_ok() {
                            for tx in &txs[1..] {
                                prop_assert!(
                                    net.submit(tx.clone()).is_ok(),
                                    "an affordable payment"
                                );
                            }
                        }
                    }
                    continue;
                }
                let p = Prescription {
                    prescription_id,
                    patient_id,
                    details: net.sealed_ref(),
                    based_on,
                };
                (user, Event::Prescription(p))
            }
            Action::Fill { user, prescription } => {
                let prescription_id = newest(&seen.prescriptions, prescription)
                    .unwrap_or_else(|| net.prescription_id());
                let event = Event::PrescriptionFilled(PrescriptionFilled { prescription_id });
                (user.unwrap_or(2), event)
            }
            Action::Patient {
                patient,
                op,
                arg,
                forged,
            } => {
                let Some((patient_id, patient_keys)) =
                    seen.keyed.iter().rev().nth(patient).cloned()
                else {
                    continue;
                };
                let member = &keys[usize::from(arg) % 3];
                let role =
                    [Role::Doctor, Role::LabTechnician, Role::Pharmacist][usize::from(arg) % 3];
                let body = BodyId::from_byte_array([arg; 16]);
                let (signer, event) = match op {
                    0 => {
                        let grant_id = GrantId::from_random_bytes(
                            [arg, op, patient as u8, 7]
                                .repeat(4)
                                .try_into()
                                .expect("16 bytes"),
                        );
                        seen.grants.push(grant_id);
                        let now = net.now().millis();
                        let event = Event::ConsentGrant(ConsentGrant {
                            grant_id,
                            patient_id,
                            grantee: Grantee::Role(role),
                            categories: vec![Category::ALL[usize::from(arg) % 4]],
                            not_before: Timestamp(now - 5_000),
                            not_after: Timestamp(now + u64::from(arg) * 1_000),
                            purpose: "care".into(),
                        });
                        (&patient_keys, event)
                    }
                    1 => {
                        let grant = match newest(&seen.grants, 0) {
                            Some(id) if arg % 2 == 0 => GrantRef::Grant(id),
                            _ => GrantRef::Treatment(role),
                        };
                        let event =
                            Event::ConsentRevocation(ConsentRevocation { patient_id, grant });
                        (&patient_keys, event)
                    }
                    2 => (
                        &patient_keys,
                        Event::ErasureRequest(ErasureRequest { patient_id }),
                    ),
                    3 => {
                        let event = Event::AccessRecord(AccessRecord {
                            patient_id,
                            reader: keys[(usize::from(arg) + 1) % 3].account(),
                            bodies: vec![body],
                            purpose: AccessPurpose::Treatment,
                        });
                        (member, event)
                    }
                    4 => {
                        let event = Event::AccessRecord(AccessRecord {
                            patient_id,
                            reader: member.account(),
                            bodies: vec![body],
                            purpose: AccessPurpose::BreakGlass {
                                reason: "er".into(),
                            },
                        });
                        (member, event)
                    }
                    _ => {
                        let Some((erased, request)) = newest(&seen.erasures, usize::from(arg) % 2)
                        else {
                            continue;
                        };
                        let event = Event::ErasureReceipt(ErasureReceipt {
                            patient_id: erased,
                            request,
                        });
                        (member, event)
                    }
                };
                let patients_own = op <= 2;
                let signer = if forged { member } else { signer };
                let tx = net.raw(signer, event);
                let accepted = net.submit(tx);
                if forged && patients_own {
                    prop_assert!(
                        matches!(
                            accepted.as_ref().map_err(common::policy_error),
                            Err(Some(EventError::NotSignedByPatient { .. }))
                        ),
                        "a patient's event signed by a member: {accepted:?}"
                    );
                }
                if let (Ok(id), 2) = (accepted, op) {
                    prop_assert!(!forged);
                    seen.erasures.push((patient_id, id));
                }
                continue;
            }
            Action::Rotate { user, seed } => {
                let key = EncryptionKey::from_seed(&[seed; 32]).public();
                let event = Event::EncryptionKeyRotation(EncryptionKeyRotation { key });
                let account = keys[user].account();
                let tx = net.raw(&keys[user], event);
                if net.submit(tx).is_ok() {
                    // Only a member may rotate, and a mined rotation is in force.
                    prop_assert!(net.ledger.genesis().member(&account).is_some());
                    net.mine();
                    prop_assert_eq!(net.ledger.state().app().encryption_key(&account), Some(key));
                } else {
                    prop_assert_eq!(user, 3, "a member's rotation is accepted");
                }
                continue;
            }
        };
        let (user, event) = event;
        let result_for = match &event {
            Event::LabTestResult(r) => Some(r.patient_id),
            _ => None,
        };
        let tx = net.raw(&keys[user], event);
        if let Ok(id) = net.submit(tx)
            && let Some(patient) = result_for
        {
            seen.results.push((id, patient));
        }
    }
    net.mine();
    prop_assert_eq!(net.ledger.state().total_supply(), supply);
    let replayed = net.ledger.replay_from_genesis();
    prop_assert_eq!(replayed.as_ref(), Ok(net.ledger.state()));

    // A longer rival chain of empty blocks from genesis, by another producer (nothing
    // is final while one producer mines alone): switching to it must undo
    // every event and payment exactly.
    let height = net.ledger.tip().height.0;
    let genesis = net.ledger.genesis().clone();
    let mut rival = health_workflow::HealthLedger::new(genesis, health_workflow::HealthPolicy)
        .expect("valid genesis");
    let mut blocks = Vec::new();
    for _ in 0..=height {
        let now = net.now();
        let block = rival.mine_block(&health_workflow::demo_keypair("lab_tech_bob"), now);
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
            .expect("valid rival block");
    }
    prop_assert_eq!(net.ledger.tip().hash, rival.tip().hash);
    // Back to the genesis state: no patient, and each member's genesis key.
    let genesis_state = HealthPolicy.genesis_state(net.ledger.genesis());
    prop_assert_eq!(genesis_state.patient_count(), 0);
    for member in &net.ledger.genesis().roster {
        prop_assert_eq!(
            genesis_state.encryption_key(&member.account),
            member.encryption.map(|e| e.key)
        );
    }
    prop_assert_eq!(net.ledger.state().app(), &genesis_state);
    prop_assert_eq!(net.ledger.state(), rival.state());
    prop_assert_eq!(net.ledger.balance(&reserve_account), Amount(reserve));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_workflows_keep_supply_and_match_a_replay(
        actions in prop::collection::vec(action(), 1..60),
        reserve in prop_oneof![Just(1_000_000u64), Just(1_200u64)],
    ) {
        run(actions, reserve)?;
    }
}
