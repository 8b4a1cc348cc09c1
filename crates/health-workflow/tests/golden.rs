//! Byte-exact encoding of every event kind, so a dependency bump (uuid, serde, the
//! codec) cannot silently change what is signed and hashed.

use health_workflow::{
    DoctorConsultation, Event, LabTestResult, OrderId, PatientId, PatientRegistration,
    Prescription, PrescriptionFilled, PrescriptionId, TestOrder,
};
use ledger_core::{TxId, codec};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
                name: "Jane".into(),
            }),
            // variant 0, uuid as 16 length-prefixed bytes, name
            "00000000\
             1000000000000000 11111111111141119111111111111111\
             0400000000000000 4a616e65",
        ),
        (
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: "n".into(),
                test_order: Some(TestOrder::blood_test(order)),
            }),
            "01000000\
             1000000000000000 11111111111141119111111111111111\
             0100000000000000 6e\
             01 1000000000000000 2222222222224222a222222222222222\
             0a00000000000000 426c6f6f642054657374",
        ),
        (
            Event::LabTestResult(LabTestResult {
                patient_id: patient,
                order_id: order,
                results: "r".into(),
            }),
            "02000000\
             1000000000000000 11111111111141119111111111111111\
             1000000000000000 2222222222224222a222222222222222\
             0100000000000000 72",
        ),
        (
            Event::Prescription(Prescription {
                prescription_id: prescription,
                patient_id: patient,
                medication: "m".into(),
                dosage: "d".into(),
                instructions: "i".into(),
                based_on: vec![TxId::from_byte_array([0x44; 32])],
            }),
            "03000000\
             1000000000000000 3333333333334333b333333333333333\
             1000000000000000 11111111111141119111111111111111\
             0100000000000000 6d 0100000000000000 64 0100000000000000 69\
             0100000000000000 4444444444444444444444444444444444444444444444444444444444444444",
        ),
        (
            Event::PrescriptionFilled(PrescriptionFilled {
                prescription_id: prescription,
            }),
            "04000000\
             1000000000000000 3333333333334333b333333333333333",
        ),
    ];
    for (event, expected) in cases {
        let bytes = codec::encode(&event);
        assert_eq!(hex(&bytes), expected.replace(' ', ""), "{event:?}");
        let back: Event = codec::decode(&bytes, bytes.len()).expect("decodes");
        assert_eq!(back, event);
    }
}
