//! Every size limit on the free text and lists of an event, in one place.
//!
//! Limits are consensus rules: every node of a network must enforce the same values,
//! or a block valid on one node would be invalid on another. Lengths are counted in
//! bytes of UTF-8, which is what the ledger stores and sends.

/// Longest patient name: generous for any real name, short enough for a registry cell.
pub const MAX_PATIENT_NAME: usize = 200;

/// Longest consultation notes: a page of clinical text, far below the ledger's
/// 64 KiB transaction limit.
pub const MAX_NOTES: usize = 8 * 1024;

/// Longest test name in a test order ("Blood Test", "Lipid panel").
pub const MAX_TEST_NAME: usize = 100;

/// Longest lab result text: a full report, far below the transaction limit.
pub const MAX_RESULTS: usize = 8 * 1024;

/// Longest medication name.
pub const MAX_MEDICATION: usize = 200;

/// Longest dosage ("500 mg twice a day").
pub const MAX_DOSAGE: usize = 200;

/// Longest prescription instructions.
pub const MAX_INSTRUCTIONS: usize = 2 * 1024;

/// Most lab results one prescription may be based on: bounds the payments one
/// prescription can cause and the work of checking it.
pub const MAX_BASED_ON: usize = 32;

/// Longest code (`718-7`, `314529007`) and unit code.
pub const MAX_CODE: usize = 64;

/// Longest code system URI.
pub const MAX_CODE_SYSTEM: usize = 200;

/// Longest display text of a code, or a text value of an observation.
pub const MAX_DISPLAY: usize = 500;

/// Longest source id (`Encounter/` and a resource id of at most 64 characters).
pub const MAX_SOURCE_ID: usize = 100;

/// Most given names in a patient's structured name.
pub const MAX_GIVEN_NAMES: usize = 8;

/// Most coded conditions one consultation may carry.
pub const MAX_CONDITIONS: usize = 64;

/// Most reports (panels) in one lab result, and most tests in one test order.
pub const MAX_REPORTS: usize = 32;

/// Most observations in one lab result, over all its reports.
pub const MAX_OBSERVATIONS: usize = 128;

/// Most tests one consultation may order: each is answered by its own lab result.
pub const MAX_TEST_ORDERS: usize = 16;
