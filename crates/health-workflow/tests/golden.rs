//! Byte-exact encoding of every event kind, so a dependency bump (uuid, serde, the
//! codec) cannot silently change what is signed and hashed.
//!
//! Sealed sections are fixed references built by hand (sealing draws random salts,
//! keys and nonces), so the vectors are deterministic.

use health_workflow::clinical::{
    ClinicalDate, Coding, Decimal, Gender, LabReport, MedicationCode, Observation,
    ObservationValue, PatientDetails, Quantity, ReferenceRange, SourceId, Visit,
};
use health_workflow::seal::{BodyId, EncryptionPublicKey, SealedRef};
use health_workflow::{
    AccessPurpose, AccessRecord, Body, Category, ConsentGrant, ConsentRevocation,
    DoctorConsultation, EncryptionKeyRotation, ErasureReceipt, ErasureRequest, Event, GrantId,
    GrantRef, Grantee, LabTestResult, OrderId, PatientId, PatientKeys, PatientRegistration,
    Prescription, PrescriptionFilled, PrescriptionId, Role, TestOrder,
};
use ledger_core::{AccountId, Hash, Signature, Timestamp, TxId, codec};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed reference: body id `n` repeated, commitment `n + 1` repeated, ciphertext
/// hash `n + 2` repeated, ciphertext length `len`.
fn sealed(n: u8, len: u32) -> SealedRef {
    SealedRef {
        body_id: BodyId::from_byte_array([n; 16]),
        commitment: Hash::from_byte_array([n + 1; 32]),
        ciphertext_hash: Hash::from_byte_array([n + 2; 32]),
        ciphertext_len: len,
    }
}

#[test]
fn every_event_kind_encodes_byte_exactly() {
    let patient = PatientId::from_random_bytes([0x11; 16]);
    let order = OrderId::from_random_bytes([0x22; 16]);
    let prescription = PrescriptionId::from_random_bytes([0x33; 16]);
    let cases = [
        (
            Event::PatientRegistration(PatientRegistration {
                patient_id: patient,
                demographics: sealed(0xa0, 0x50),
                patient_keys: PatientKeys {
                    account: AccountId([0x66; 32]),
                    encryption: EncryptionPublicKey::from_byte_array([0x77; 32]),
                    proof: Signature([0x88; 64]),
                },
            }),
            // variant 0, uuid as 16 length-prefixed bytes; the sealed reference: body id
            // as 16 raw bytes, commitment and ciphertext hash as 32 raw bytes each,
            // ciphertext length as a u32; the patient's account, encryption key and
            // proof as raw bytes
            "00000000\
             1000000000000000 11111111111141119111111111111111\
             a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0\
             a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\
             a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2\
             50000000\
             6666666666666666666666666666666666666666666666666666666666666666\
             7777777777777777777777777777777777777777777777777777777777777777\
             8888888888888888888888888888888888888888888888888888888888888888\
             8888888888888888888888888888888888888888888888888888888888888888",
        ),
        (
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(0xb0, 0x0130),
                test_orders: vec![TestOrder {
                    order_id: order,
                    test: sealed(0xc0, 0x42),
                }],
            }),
            // variant 1, patient, the notes' reference (length 0x130), one test order (a
            // u64 count), the order's uuid, the test's reference (length 0x42)
            "01000000\
             1000000000000000 11111111111141119111111111111111\
             b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0\
             b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1\
             b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2\
             30010000\
             0100000000000000 1000000000000000 2222222222224222a222222222222222\
             c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\
             c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1\
             c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2\
             42000000",
        ),
        (
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(0xb0, 0x0130),
                test_orders: Vec::new(),
            }),
            // the same consultation without a test order: an empty list is a zero count
            "01000000\
             1000000000000000 11111111111141119111111111111111\
             b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0\
             b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1\
             b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2\
             30010000\
             0000000000000000",
        ),
        (
            Event::LabTestResult(LabTestResult {
                patient_id: patient,
                order_id: order,
                results: sealed(0xd0, 0x0102_0304),
            }),
            // variant 2, patient, order, the results' reference (length 0x01020304,
            // little-endian)
            "02000000\
             1000000000000000 11111111111141119111111111111111\
             1000000000000000 2222222222224222a222222222222222\
             d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0\
             d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1\
             d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2\
             04030201",
        ),
        (
            Event::Prescription(Prescription {
                prescription_id: prescription,
                patient_id: patient,
                details: sealed(0xe0, 0x61),
                based_on: vec![TxId::from_byte_array([0x44; 32])],
            }),
            // variant 3, prescription, patient, the details' reference (length 0x61),
            // based_on: one transaction id of 32 raw bytes
            "03000000\
             1000000000000000 3333333333334333b333333333333333\
             1000000000000000 11111111111141119111111111111111\
             e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0\
             e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1\
             e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2\
             61000000\
             0100000000000000 4444444444444444444444444444444444444444444444444444444444444444",
        ),
        (
            Event::PrescriptionFilled(PrescriptionFilled {
                prescription_id: prescription,
            }),
            // variant 4, prescription (unchanged: a fill carries nothing sealed)
            "04000000\
             1000000000000000 3333333333334333b333333333333333",
        ),
        (
            Event::EncryptionKeyRotation(EncryptionKeyRotation {
                key: EncryptionPublicKey::from_byte_array([0x55; 32]),
            }),
            // variant 5, the X25519 key as 32 raw bytes
            "05000000\
             5555555555555555555555555555555555555555555555555555555555555555",
        ),
        (
            Event::ConsentGrant(ConsentGrant {
                grant_id: GrantId::from_random_bytes([0x99; 16]),
                patient_id: patient,
                grantee: Grantee::Role(Role::Pharmacist),
                categories: vec![Category::Demographics, Category::Prescriptions],
                not_before: Timestamp(1),
                not_after: Timestamp(0x0200),
                purpose: "care".into(),
            }),
            // variant 6, grant uuid, patient, grantee variant 1 (a role) with role 2
            // (pharmacist), two categories (0 and 3), window as two u64, purpose as
            // a length-prefixed string
            "06000000\
             1000000000000000 99999999999949999999999999999999\
             1000000000000000 11111111111141119111111111111111\
             01000000 02000000\
             0200000000000000 00000000 03000000\
             0100000000000000 0002000000000000\
             0400000000000000 63617265",
        ),
        (
            Event::ConsentRevocation(ConsentRevocation {
                patient_id: patient,
                grant: GrantRef::Treatment(Role::Pharmacist),
            }),
            // variant 7, patient, grant variant 0 (treatment) of role 2
            "07000000\
             1000000000000000 11111111111141119111111111111111\
             00000000 02000000",
        ),
        (
            Event::AccessRecord(AccessRecord {
                patient_id: patient,
                reader: AccountId([0x66; 32]),
                bodies: vec![BodyId::from_byte_array([0xa0; 16])],
                purpose: AccessPurpose::BreakGlass {
                    reason: "ER".into(),
                },
            }),
            // variant 8, patient, reader, one body id, purpose variant 1 with reason
            "08000000\
             1000000000000000 11111111111141119111111111111111\
             6666666666666666666666666666666666666666666666666666666666666666\
             0100000000000000 a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0\
             01000000 0200000000000000 4552",
        ),
        (
            Event::ErasureRequest(ErasureRequest {
                patient_id: patient,
            }),
            // variant 9, patient
            "09000000\
             1000000000000000 11111111111141119111111111111111",
        ),
        (
            Event::ErasureReceipt(ErasureReceipt {
                patient_id: patient,
                request: TxId::from_byte_array([0x44; 32]),
            }),
            // variant 10, patient, the request's transaction id
            "0a000000\
             1000000000000000 11111111111141119111111111111111\
             4444444444444444444444444444444444444444444444444444444444444444",
        ),
    ];
    for (event, expected) in cases {
        let bytes = codec::encode(&event);
        assert_eq!(hex(&bytes), expected.replace(' ', ""), "{event:?}");
        let back: Event = codec::decode(&bytes, bytes.len()).expect("decodes");
        assert_eq!(back, event);
    }
}

/// A lab result's body with every coded field set: what an import seals.
fn structured_results() -> Body {
    let quantity = |value: &str| Quantity {
        value: Decimal::parse(value).expect("a decimal"),
        unit: "g/dL".into(),
        ucum: Some("g/dL".into()),
    };
    Body::Results {
        results: "Hb".into(),
        reports: vec![LabReport {
            code: Some(Coding::new("L", "58410-2", "CBC")),
            effective: Some(ClinicalDate::parse("2019-12-31").expect("a date")),
            observations: vec![Observation {
                code: Coding::new("L", "718-7", "Hb"),
                value: Some(ObservationValue::Quantity(quantity("13.5"))),
                range: Some(ReferenceRange {
                    low: Some(quantity("12")),
                    high: None,
                }),
                interpretation: Some(Coding::new("I", "N", "")),
                effective: None,
                source: Some(SourceId::new("Observation", "o1").expect("short")),
            }],
            source: None,
        }],
    }
}

#[test]
fn coded_bodies_encode_byte_exactly() {
    let cases = [
        (
            Body::Demographics {
                name: "Jo Li".into(),
                details: PatientDetails {
                    family: Some("Li".into()),
                    given: vec!["Jo".into()],
                    birth_date: Some(ClinicalDate::parse("2019-11").expect("a date")),
                    gender: Some(Gender::Female),
                },
            },
            // variant 0; name "Jo Li" (u64 length, then bytes); details: family Some "Li",
            // given ["Jo"], birth date Some "2019-11", gender Some(Female = variant 1)
            "00000000 0500000000000000 4a6f204c69\
             01 0200000000000000 4c69\
             0100000000000000 0200000000000000 4a6f\
             01 0700000000000000 323031392d3131\
             01 01000000",
        ),
        (
            Body::Notes {
                notes: "".into(),
                visit: Visit {
                    class: Some("AMB".into()),
                    kind: None,
                    start: Some(ClinicalDate::parse("2019").expect("a date")),
                    end: None,
                    conditions: vec![Coding::new("S", "1", "x")],
                    source: Some(SourceId::new("Encounter", "e").expect("short")),
                },
            },
            // variant 1; notes ""; visit: class Some "AMB", kind None, start Some "2019",
            // end None, conditions [S|1 "x"], source Some "Encounter/e"
            "01000000 0000000000000000\
             01 0300000000000000 414d42\
             00\
             01 0400000000000000 32303139\
             00\
             0100000000000000 0100000000000000 53 0100000000000000 31 0100000000000000 78\
             01 0b00000000000000 456e636f756e7465722f65",
        ),
        (
            Body::TestOrder {
                test_name: "CBC".into(),
                tests: vec![Coding::new("L", "58410-2", "")],
            },
            // variant 2; test name "CBC"; tests [L|58410-2 ""]
            "02000000 0300000000000000 434243\
             0100000000000000 0100000000000000 4c 0700000000000000 35383431302d32\
             0000000000000000",
        ),
        (
            structured_results(),
            // variant 3; results "Hb"; one report: code Some L|58410-2 "CBC", effective
            // Some "2019-12-31", one observation: code L|718-7 "Hb", value Some
            // Quantity(variant 0: "13.5", unit "g/dL", UCUM Some "g/dL"), range Some (low
            // Some "12" g/dL, high None), interpretation Some I|N "", effective None,
            // source Some "Observation/o1"; the report's source None
            "03000000 0200000000000000 4862\
             0100000000000000\
             01 0100000000000000 4c 0700000000000000 35383431302d32 0300000000000000 434243\
             01 0a00000000000000 323031392d31322d3331\
             0100000000000000\
             0100000000000000 4c 0500000000000000 3731382d37 0200000000000000 4862\
             01 00000000 0400000000000000 31332e35 0400000000000000 672f644c\
             01 0400000000000000 672f644c\
             01 01 0200000000000000 3132 0400000000000000 672f644c 01 0400000000000000 672f644c\
             00\
             01 0100000000000000 49 0100000000000000 4e 0000000000000000\
             00\
             01 0e00000000000000 4f62736572766174696f6e2f6f31\
             00",
        ),
        (
            Body::Prescription {
                medication: "A".into(),
                dosage: "1".into(),
                instructions: "".into(),
                coded: MedicationCode {
                    code: Some(Coding::new("R", "308192", "A")),
                    authored: None,
                    source: None,
                },
            },
            // variant 4; "A", "1", ""; coded: code Some R|308192 "A", authored None,
            // source None
            "04000000 0100000000000000 41 0100000000000000 31 0000000000000000\
             01 0100000000000000 52 0600000000000000 333038313932 0100000000000000 41\
             00 00",
        ),
    ];
    for (body, expected) in cases {
        let bytes = body.encode();
        assert_eq!(
            hex(&bytes),
            expected.replace(' ', ""),
            "{:?}",
            body.section()
        );
        assert_eq!(Body::decode(&bytes, body.section()), Ok(body));
    }
}
