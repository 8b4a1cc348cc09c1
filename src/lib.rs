//! healthchain: one shared, tamper-evident ledger of patient events for a Doctor, a
//! Diagnostic Lab and a Pharmacy, with an e-cash incentive system.
//!
//! This package re-exports the workspace's library crates so that examples, benchmarks
//! and embedders can depend on one name:
//!
//! - [`ledger_core`]: the pure ledger — signed transactions and blocks, proof of work,
//!   fork choice, incremental state, mempool — generic over an application
//!   [`Policy`](ledger_core::Policy).
//! - [`health_workflow`]: the healthcare rules as a `Policy`: roles, clinical events,
//!   payments and rewards, patient history, the registry CSV, the demo network.
//! - [`p2p`]: the node runtime — framed protocol, handshake, gossip, sync, the on-disk
//!   block store, graceful shutdown.
//!
//! The `healthchain` command (crate `healthchain-cli`) is the front end people use; run
//! `cargo run --example three_nodes` for the whole walkthrough in one process.

pub use health_workflow;
pub use ledger_core;
pub use p2p;
