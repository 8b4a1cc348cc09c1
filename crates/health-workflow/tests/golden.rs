//! Byte-exact encoding of every event kind, so a dependency bump (uuid, serde, the
//! codec) cannot silently change what is signed and hashed.
//!
//! Sealed sections are fixed references built by hand (sealing draws random salts,
//! keys and nonces), so the vectors are deterministic.

use health_workflow::seal::{BodyId, EncryptionPublicKey, SealedRef};
use health_workflow::{
    DoctorConsultation, EncryptionKeyRotation, Event, LabTestResult, OrderId, PatientId,
    PatientRegistration, Prescription, PrescriptionFilled, PrescriptionId, TestOrder,
};
use ledger_core::{Hash, TxId, codec};

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
            }),
            // variant 0, uuid as 16 length-prefixed bytes; the sealed reference: body id
            // as 16 raw bytes, commitment and ciphertext hash as 32 raw bytes each,
            // ciphertext length as a u32
            "00000000\
             1000000000000000 11111111111141119111111111111111\
             a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0\
             a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\
             a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2\
             50000000",
        ),
        (
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(0xb0, 0x0130),
                test_order: Some(TestOrder {
                    order_id: order,
                    test: sealed(0xc0, 0x42),
                }),
            }),
            // variant 1, patient, the notes' reference (length 0x130), Some, the order's
            // uuid, the test's reference (length 0x42)
            "01000000\
             1000000000000000 11111111111141119111111111111111\
             b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0\
             b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1\
             b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2\
             30010000\
             01 1000000000000000 2222222222224222a222222222222222\
             c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\
             c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1\
             c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2\
             42000000",
        ),
        (
            Event::DoctorConsultation(DoctorConsultation {
                patient_id: patient,
                notes: sealed(0xb0, 0x0130),
                test_order: None,
            }),
            // the same consultation without a test order: None is one zero byte
            "01000000\
             1000000000000000 11111111111141119111111111111111\
             b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0\
             b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1\
             b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2\
             30010000\
             00",
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
    ];
    for (event, expected) in cases {
        let bytes = codec::encode(&event);
        assert_eq!(hex(&bytes), expected.replace(' ', ""), "{event:?}");
        let back: Event = codec::decode(&bytes, bytes.len()).expect("decodes");
        assert_eq!(back, event);
    }
}
