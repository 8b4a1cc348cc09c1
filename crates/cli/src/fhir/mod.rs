//! FHIR R4 (4.0.1) in and out: `healthchain export` writes a patient's record as a
//! Bundle, and `healthchain import` turns Synthea-style bundles into signed events.
//!
//! The resources are hand-written serde structs ([`model`]) holding only the elements
//! the mapping uses. The Rust FHIR crates generate every element of every resource
//! (large builds) or are experimental, and an importer that ignores what it does not
//! map needs none of that.
//!
//! Ledger facts travel in each exported event's Provenance: the block height and hash,
//! the transaction id, the author's signing key (the account) and the signature. A
//! record an import wrote keeps its source (`Encounter/…`) sealed in its body, exported
//! as an identifier of the [`SYSTEM_SOURCE`] system, which is how a second import of
//! the same bundle finds it and adds nothing.

pub(crate) mod export;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod write;

mod command;
mod remote;

pub(crate) use command::{chain_records, export_command, import_command, write_bundle};

/// Identifier system of the record an imported resource came from (`Encounter/<id>`).
pub(crate) const SYSTEM_SOURCE: &str = "urn:healthchain:source";
/// Identifier system of a member's account (its ed25519 signing key, hex).
pub(crate) const SYSTEM_ACCOUNT: &str = "urn:healthchain:account";
/// Identifier system of a test order's id (a ServiceRequest's requisition).
pub(crate) const SYSTEM_ORDER: &str = "urn:healthchain:order";
/// Identifier system of a prescription's id.
pub(crate) const SYSTEM_PRESCRIPTION: &str = "urn:healthchain:prescription";
/// Provenance extension: height of the block that holds the event.
pub(crate) const EXT_BLOCK_HEIGHT: &str = "urn:healthchain:fhir:block-height";
/// Provenance extension: hash of the block that holds the event.
pub(crate) const EXT_BLOCK_HASH: &str = "urn:healthchain:fhir:block-hash";
/// Provenance extension: id of the transaction that carries the event.
pub(crate) const EXT_TRANSACTION: &str = "urn:healthchain:fhir:transaction";
/// Provenance extension: the author's signing key (its account id).
pub(crate) const EXT_SIGNING_KEY: &str = "urn:healthchain:fhir:signing-key";
