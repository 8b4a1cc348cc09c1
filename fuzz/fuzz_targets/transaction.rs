//! A transaction from a peer: decoded with the real limit (canonically), then submitted
//! to a ledger as it is and re-signed, so the health rules behind the signature check
//! see it too.
#![no_main]

use health_workflow::HealthTx;
use ledger_core::{codec, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = codec::decode::<HealthTx>(data, limits::MAX_TX_BYTES) else {
        return;
    };
    assert_eq!(tx.encode(), data);
    let (mut ledger, now) = healthchain_fuzz::ledger();
    let resigned = healthchain_fuzz::resign(&ledger, &tx);
    let _ = ledger.submit_transaction(tx, now);
    let _ = ledger.submit_transaction(resigned, now);
});
