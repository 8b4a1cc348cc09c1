//! A genesis file: decoded and checked (canonically), then a ledger started on it.
#![no_main]

use health_workflow::HealthPolicy;
use ledger_core::{Genesis, Ledger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(genesis) = Genesis::decode(data) {
        assert_eq!(genesis.encode(), data);
        Ledger::new(genesis, HealthPolicy).expect("a checked genesis starts a ledger");
    }
});
