//! What people wrote: the clinical bodies that are sealed, never put on the chain.
//!
//! An [`Event`](crate::Event) holds public facts and, for each thing a person wrote, a
//! [`SealedRef`](crate::seal::SealedRef) in one of the event's [`Section`]s. The
//! [`Body`] is what such a section says in the clear: a patient's name, consultation
//! notes, the test ordered, the results, the medication. Who may read a section is
//! decided by its [`Category`] ([`ConsentTable`](crate::ConsentTable)).
//!
//! A body's text is zeroed when the body is dropped, and its `Debug` form shows its
//! section and size only, so a body never reaches a log by accident.

use std::fmt;

use ledger_core::codec;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::clinical::{self, Coding, LabReport, MedicationCode, PatientDetails, Visit, text};
use crate::event::EventError;
use crate::limits;
use crate::seal::MAX_BODY_BYTES;

/// A consent category: the unit in which readers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Category {
    /// Who the patient is (the name given at registration).
    Demographics,
    /// What the doctor noted in a consultation.
    ConsultationNotes,
    /// Which test was ordered, and its results.
    TestsAndResults,
    /// What was prescribed (and so what a fill hands out).
    Prescriptions,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 4] = [
        Category::Demographics,
        Category::ConsultationNotes,
        Category::TestsAndResults,
        Category::Prescriptions,
    ];

    /// Its code in a body label ([`ledger_core::sealed::BodyLabel`]).
    pub fn code(self) -> u8 {
        match self {
            Category::Demographics => 0,
            Category::ConsultationNotes => 1,
            Category::TestsAndResults => 2,
            Category::Prescriptions => 3,
        }
    }

    /// The category with code `code`.
    pub fn from_code(code: u8) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The category a person names: `demographics`, `notes`, `tests` or
    /// `prescriptions` (or the full label).
    pub fn parse(text: &str) -> Option<Category> {
        match text.trim().to_ascii_lowercase().as_str() {
            "demographics" => Some(Category::Demographics),
            "notes" | "consultation notes" => Some(Category::ConsultationNotes),
            "tests" | "results" | "test orders and results" => Some(Category::TestsAndResults),
            "prescriptions" => Some(Category::Prescriptions),
            _ => None,
        }
    }

    /// How people call it.
    pub fn label(self) -> &'static str {
        match self {
            Category::Demographics => "demographics",
            Category::ConsultationNotes => "consultation notes",
            Category::TestsAndResults => "test orders and results",
            Category::Prescriptions => "prescriptions",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where in an event a sealed body sits, which says what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Section {
    /// A registration's patient name.
    Demographics,
    /// A consultation's notes.
    Notes,
    /// A consultation's test order: what to test.
    TestOrder,
    /// A lab result's results.
    Results,
    /// A prescription's medication, dosage and instructions.
    Prescription,
}

impl Section {
    /// Its consent category.
    pub fn category(self) -> Category {
        match self {
            Section::Demographics => Category::Demographics,
            Section::Notes => Category::ConsultationNotes,
            Section::TestOrder | Section::Results => Category::TestsAndResults,
            Section::Prescription => Category::Prescriptions,
        }
    }

    /// How people call it, as in `(sealed: consultation notes)`.
    pub fn label(self) -> &'static str {
        match self {
            Section::Demographics => "demographics",
            Section::Notes => "consultation notes",
            Section::TestOrder => "test order",
            Section::Results => "lab results",
            Section::Prescription => "prescription",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The clear text of one section: what people wrote and, where an import or an
/// integration supplies it, coded data ([`clinical`](crate::clinical)). The REPL writes
/// free text only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Body {
    /// [`Section::Demographics`].
    Demographics {
        /// The patient's name as displayed (1 to
        /// [`MAX_PATIENT_NAME`](limits::MAX_PATIENT_NAME) bytes).
        name: String,
        /// Structured name, birth date and gender, where known.
        details: PatientDetails,
    },
    /// [`Section::Notes`].
    Notes {
        /// Free-text notes (at most [`MAX_NOTES`](limits::MAX_NOTES) bytes; may be empty).
        notes: String,
        /// The visit and its coded conditions, where known.
        visit: Visit,
    },
    /// [`Section::TestOrder`].
    TestOrder {
        /// What to test (1 to [`MAX_TEST_NAME`](limits::MAX_TEST_NAME) bytes).
        test_name: String,
        /// The tests ordered, coded (LOINC), if known.
        tests: Vec<Coding>,
    },
    /// [`Section::Results`].
    Results {
        /// The results (1 to [`MAX_RESULTS`](limits::MAX_RESULTS) bytes).
        results: String,
        /// Typed observations grouped in reports, if any.
        reports: Vec<LabReport>,
    },
    /// [`Section::Prescription`].
    Prescription {
        /// Medication (1 to [`MAX_MEDICATION`](limits::MAX_MEDICATION) bytes).
        medication: String,
        /// Dosage (1 to [`MAX_DOSAGE`](limits::MAX_DOSAGE) bytes).
        dosage: String,
        /// Instructions (at most [`MAX_INSTRUCTIONS`](limits::MAX_INSTRUCTIONS) bytes).
        instructions: String,
        /// The coded medication and when it was written, if known.
        coded: MedicationCode,
    },
}

/// A decrypted body is not a body of the section it sits in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The bytes are not a body.
    #[error("the body cannot be decoded: {0}")]
    Decode(#[from] codec::DecodeError),
    /// The body is of another section.
    #[error("a {found} body sits where a {expected} body belongs")]
    WrongSection {
        /// The section it sits in.
        expected: Section,
        /// The section it is a body of.
        found: Section,
    },
}

impl Body {
    /// A registration's body: the name only.
    pub fn demographics(name: &str) -> Body {
        Body::Demographics {
            name: name.to_string(),
            details: PatientDetails::default(),
        }
    }

    /// A consultation's notes: free text only.
    pub fn notes(notes: &str) -> Body {
        Body::Notes {
            notes: notes.to_string(),
            visit: Visit::default(),
        }
    }

    /// A test order: the name only.
    pub fn test_order(test_name: &str) -> Body {
        Body::TestOrder {
            test_name: test_name.to_string(),
            tests: Vec::new(),
        }
    }

    /// Lab results: free text only.
    pub fn results(results: &str) -> Body {
        Body::Results {
            results: results.to_string(),
            reports: Vec::new(),
        }
    }

    /// A prescription: its text only.
    pub fn prescription(medication: &str, dosage: &str, instructions: &str) -> Body {
        Body::Prescription {
            medication: medication.to_string(),
            dosage: dosage.to_string(),
            instructions: instructions.to_string(),
            coded: MedicationCode::default(),
        }
    }

    /// The section it belongs in.
    pub fn section(&self) -> Section {
        match self {
            Body::Demographics { .. } => Section::Demographics,
            Body::Notes { .. } => Section::Notes,
            Body::TestOrder { .. } => Section::TestOrder,
            Body::Results { .. } => Section::Results,
            Body::Prescription { .. } => Section::Prescription,
        }
    }

    /// Checks the text and list limits and the encoded size before the body is sealed
    /// (no validator can check them after).
    pub fn check_form(&self) -> Result<(), EventError> {
        match self {
            Body::Demographics { name, details } => {
                text("patient name", name, true, limits::MAX_PATIENT_NAME)?;
                clinical::check_details(details)?;
            }
            Body::Notes { notes, visit } => {
                text("notes", notes, false, limits::MAX_NOTES)?;
                clinical::check_visit(visit)?;
            }
            Body::TestOrder { test_name, tests } => {
                text("test name", test_name, true, limits::MAX_TEST_NAME)?;
                clinical::check_tests(tests)?;
            }
            Body::Results { results, reports } => {
                text("results", results, true, limits::MAX_RESULTS)?;
                clinical::check_reports(reports)?;
            }
            Body::Prescription {
                medication,
                dosage,
                instructions,
                coded,
            } => {
                text("medication", medication, true, limits::MAX_MEDICATION)?;
                text("dosage", dosage, true, limits::MAX_DOSAGE)?;
                text(
                    "instructions",
                    instructions,
                    false,
                    limits::MAX_INSTRUCTIONS,
                )?;
                clinical::check_medication(coded)?;
            }
        }
        let len = codec::encoded_len(self);
        if len > MAX_BODY_BYTES {
            return Err(EventError::TextTooLong {
                field: "sealed body",
                len,
                max: MAX_BODY_BYTES,
            });
        }
        Ok(())
    }

    /// The canonical encoding, in a buffer zeroed when dropped.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(codec::encode(self))
    }

    /// Reads a body of `section` back from its encoding.
    pub fn decode(bytes: &[u8], section: Section) -> Result<Body, BodyError> {
        let body: Body = codec::decode(bytes, crate::seal::MAX_BODY_BYTES)?;
        if body.section() != section {
            return Err(BodyError::WrongSection {
                expected: section,
                found: body.section(),
            });
        }
        Ok(body)
    }

    /// The text as one line for people: the name, the notes, the test, the results,
    /// or `medication, dosage (instructions)`.
    pub fn summary(&self) -> String {
        match self {
            Body::Demographics { name, .. } => name.clone(),
            Body::Notes { notes, .. } => notes.clone(),
            Body::TestOrder { test_name, .. } => test_name.clone(),
            Body::Results { results, .. } => results.clone(),
            Body::Prescription {
                medication,
                dosage,
                instructions,
                ..
            } if instructions.is_empty() => format!("{medication}, {dosage}"),
            Body::Prescription {
                medication,
                dosage,
                instructions,
                ..
            } => format!("{medication}, {dosage} ({instructions})"),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Body({}, {} bytes)",
            self.section(),
            codec::encoded_len(self)
        )
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        match self {
            // The coded data is as private as the text, and zeroed with it.
            Body::Demographics { name, details } => {
                name.zeroize();
                details.zeroize();
            }
            Body::Notes { notes, visit } => {
                notes.zeroize();
                visit.zeroize();
            }
            Body::TestOrder { test_name, tests } => {
                test_name.zeroize();
                tests.iter_mut().for_each(Zeroize::zeroize);
            }
            Body::Results { results, reports } => {
                results.zeroize();
                reports.iter_mut().for_each(Zeroize::zeroize);
            }
            Body::Prescription {
                medication,
                dosage,
                instructions,
                coded,
            } => {
                coded.zeroize();
                medication.zeroize();
                dosage.zeroize();
                instructions.zeroize();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_decodes_only_into_its_own_section() {
        let body = Body::results("Hb 13.5");
        let bytes = body.encode();
        assert_eq!(Body::decode(&bytes, Section::Results), Ok(body.clone()));
        assert_eq!(
            Body::decode(&bytes, Section::Notes),
            Err(BodyError::WrongSection {
                expected: Section::Notes,
                found: Section::Results
            })
        );
        assert!(matches!(
            Body::decode(&bytes[..3], Section::Results),
            Err(BodyError::Decode(_))
        ));
        // Debug shows no clinical text.
        assert!(!format!("{body:?}").contains("Hb"));
    }

    #[test]
    fn text_limits_are_checked_before_sealing() {
        let name = Body::demographics;
        assert_eq!(name("Jane Doe").check_form(), Ok(()));
        assert_eq!(
            name("").check_form(),
            Err(EventError::EmptyText {
                field: "patient name"
            })
        );
        assert!(matches!(
            name(&"x".repeat(limits::MAX_PATIENT_NAME + 1)).check_form(),
            Err(EventError::TextTooLong { .. })
        ));
        assert_eq!(Body::notes("").check_form(), Ok(()), "notes may be empty");
        let prescription = Body::prescription("Iron", "", "");
        assert_eq!(
            prescription.check_form(),
            Err(EventError::EmptyText { field: "dosage" })
        );
    }

    #[test]
    fn every_section_has_its_category() {
        assert_eq!(Section::TestOrder.category(), Category::TestsAndResults);
        assert_eq!(Section::Results.category(), Category::TestsAndResults);
        assert_eq!(Section::Notes.category(), Category::ConsultationNotes);
        assert_eq!(Section::Prescription.category(), Category::Prescriptions);
        assert_eq!(Section::Demographics.category(), Category::Demographics);
    }
}
