//! A block from a peer: decoded with the real limit (canonically), then submitted to a
//! ledger holding a short valid chain as it is and resealed onto the tip, so the state
//! and reward rules behind the signature checks see it too.
#![no_main]

use health_workflow::Event;
use ledger_core::{Block, codec, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = codec::decode::<Block<Event>>(data, limits::MAX_BLOCK_BYTES) else {
        return;
    };
    assert_eq!(block.encode(), data);
    let (mut ledger, now) = healthchain_fuzz::ledger();
    let resealed = healthchain_fuzz::reseal(&ledger, block.clone());
    let _ = ledger.submit_block(block, now);
    let _ = ledger.submit_block(resealed, now);
});
