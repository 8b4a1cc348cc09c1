//! The entry points of the fuzz targets (`fuzz/`), run on stable with a fixed number
//! of cases: untrusted bytes decoded as a transaction, a block or a genesis, and what
//! decodes submitted to a ledger. Inputs are arbitrary bytes and mutations of valid
//! encodings, which get past the decoder far more often. Whatever the input, nothing
//! panics, a decoded value re-encodes to exactly the bytes it came from, and a value
//! that differs from the valid one it was mutated from never changes the ledger.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::sync::LazyLock;

use common::*;
use ledger_core::{BlockStatus, Genesis, Ledger, Timestamp, TxBody, codec, limits};
use proptest::collection::vec;
use proptest::prelude::*;

/// Cases per property: enough to hit every field of the fixtures several times, few
/// enough to keep the file well under a few seconds.
const CASES: u32 = 256;

/// A short valid chain, the next valid transaction and block on top of it, and the
/// time to submit at.
struct Fixture {
    genesis: Genesis,
    chain: Vec<TestBlock>,
    next_tx: TestTx,
    next_block: TestBlock,
    now: Timestamp,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let k = keys();
    let mut clock = Clock::new();
    let mut ledger = ledger(0);
    let genesis = ledger.genesis().clone();
    let now = clock.tick();
    send(&mut ledger, &k[0], pay(k[1].account(), 300), now);
    send(&mut ledger, &k[1], TxBody::App(Op::Claim(3)), now);
    let first = mine_and_submit(&mut ledger, &k[2], now);
    let now = clock.tick();
    send(&mut ledger, &k[2], TxBody::App(Op::Add(7)), now);
    send(
        &mut ledger,
        &k[3],
        TxBody::App(Op::Note("fuzz".into())),
        now,
    );
    let second = mine_and_submit(&mut ledger, &k[4], now);
    let now = clock.tick();
    send(&mut ledger, &k[0], TxBody::App(Op::Claim(4)), now);
    let next_tx = tx(&ledger, &k[1], pay(k[3].account(), 50), now);
    let next_block = ledger.mine_block(&k[0], now);
    assert_eq!(next_block.rewards.len(), 1, "the claim earns a reward");
    Fixture {
        genesis,
        chain: vec![first, second],
        next_tx,
        next_block,
        now,
    }
});

/// A fresh ledger holding the fixture's chain.
fn chain_ledger() -> TestLedger {
    let fixture = &*FIXTURE;
    ledger_with(&fixture.genesis, &fixture.chain, fixture.now)
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)
}

/// The `transaction` fuzz target: decode, then submit to the mempool of a ledger with
/// a chain. Only the unchanged valid transaction may be accepted.
fn transaction_entry(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(tx) = codec::decode::<TestTx>(bytes, limits::MAX_TX_BYTES) else {
        return Ok(());
    };
    prop_assert_eq!(codec::encode(&tx), bytes, "non-canonical transaction");
    let fixture = &*FIXTURE;
    let mut ledger = chain_ledger();
    let accepted = ledger.submit_transaction(tx.clone(), fixture.now).is_ok();
    prop_assert_eq!(accepted, tx == fixture.next_tx, "{:?}", tx);
    Ok(())
}

/// The `block` fuzz target: decode, then submit to a ledger with a chain. Only the
/// unchanged valid block may be accepted; anything else leaves tip and state alone.
fn block_entry(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(block) = codec::decode::<TestBlock>(bytes, limits::MAX_BLOCK_BYTES) else {
        return Ok(());
    };
    prop_assert_eq!(codec::encode(&block), bytes, "non-canonical block");
    let fixture = &*FIXTURE;
    let mut ledger = chain_ledger();
    let tip = ledger.tip();
    let state = ledger.state().clone();
    let genuine = block == fixture.next_block;
    let outcome = ledger.submit(block, fixture.now);
    if genuine {
        prop_assert_eq!(outcome.status, BlockStatus::Accepted);
    } else {
        prop_assert_ne!(outcome.status, BlockStatus::Accepted);
        prop_assert_eq!(ledger.tip(), tip);
        prop_assert_eq!(ledger.state(), &state);
    }
    Ok(())
}

/// The `genesis` fuzz target: decode and check, then start a ledger on it.
fn genesis_entry(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(genesis) = Genesis::decode(bytes) else {
        return Ok(());
    };
    prop_assert_eq!(genesis.encode(), bytes, "non-canonical genesis");
    prop_assert!(Ledger::new(genesis, Counter).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_at_every_entry_point(bytes in vec(any::<u8>(), 0..512)) {
        transaction_entry(&bytes)?;
        block_entry(&bytes)?;
        genesis_entry(&bytes)?;
    }

    #[test]
    fn mutated_transactions(edits in edits()) {
        transaction_entry(&mutate(5, FIXTURE.next_tx.encode(), &edits))?;
    }

    #[test]
    fn mutated_blocks(edits in edits()) {
        block_entry(&mutate(5, FIXTURE.next_block.encode(), &edits))?;
    }

    #[test]
    fn mutated_genesis(edits in edits()) {
        genesis_entry(&mutate(5, FIXTURE.genesis.encode(), &edits))?;
    }
}

#[test]
fn the_unmutated_inputs_are_accepted() {
    let fixture = &*FIXTURE;
    transaction_entry(&fixture.next_tx.encode()).unwrap();
    block_entry(&fixture.next_block.encode()).unwrap();
    genesis_entry(&fixture.genesis.encode()).unwrap();
}
