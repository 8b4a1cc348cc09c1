//! Roles and who may record which event.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// A member's role, read from the roster label of the genesis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Registers patients, consults, orders tests, prescribes (`"doctor"`).
    Doctor,
    /// Records the results of test orders (`"lab_technician"`).
    LabTechnician,
    /// Fills prescriptions (`"pharmacist"`).
    Pharmacist,
    /// The reserve that pays rewards; it signs nothing (`"system"`).
    System,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [
        Role::Doctor,
        Role::LabTechnician,
        Role::Pharmacist,
        Role::System,
    ];

    /// The label used in the genesis roster.
    pub fn label(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::LabTechnician => "lab_technician",
            Role::Pharmacist => "pharmacist",
            Role::System => "system",
        }
    }

    /// The role with roster label `label`, if it is one of ours.
    pub fn from_label(label: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.label() == label)
    }

    /// Whether this role belongs to the care team (doctor, lab technician, pharmacist):
    /// by default the authorised block producers of a network.
    pub fn is_clinical(self) -> bool {
        matches!(self, Role::Doctor | Role::LabTechnician | Role::Pharmacist)
    }

    /// Whether this role may record events of `kind`: doctors register, consult and
    /// prescribe, lab technicians record results, pharmacists fill; every member of the
    /// care team may rotate its own encryption key, record reads and confirm erasures.
    /// The patient's own events (consent, erasure) are the patient's alone.
    pub fn may_record(self, kind: EventKind) -> bool {
        matches!(
            (self, kind),
            (
                Role::Doctor,
                EventKind::PatientRegistration
                    | EventKind::DoctorConsultation
                    | EventKind::Prescription
            ) | (Role::LabTechnician, EventKind::LabTestResult)
                | (Role::Pharmacist, EventKind::PrescriptionFilled)
                | (
                    Role::Doctor | Role::LabTechnician | Role::Pharmacist,
                    EventKind::EncryptionKeyRotation
                        | EventKind::AccessRecord
                        | EventKind::ErasureReceipt
                )
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_unknown_labels_are_not_roles() {
        for role in Role::ALL {
            assert_eq!(Role::from_label(role.label()), Some(role));
        }
        assert_eq!(Role::from_label("Doctor"), None);
    }

    #[test]
    fn the_care_team_is_clinical_and_the_reserve_is_not() {
        let clinical: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_clinical()).collect();
        assert_eq!(
            clinical,
            [Role::Doctor, Role::LabTechnician, Role::Pharmacist]
        );
    }

    #[test]
    fn the_system_records_nothing() {
        assert!(EventKind::ALL.iter().all(|k| !Role::System.may_record(*k)));
    }
}
