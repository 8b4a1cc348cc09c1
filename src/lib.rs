//! x
pub use ledger_core;
