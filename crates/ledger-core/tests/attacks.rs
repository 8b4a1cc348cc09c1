//! Attacks on the ledger, each tried both at the mempool and inside an otherwise valid
//! block: forged and altered signatures, replays (on this network and across networks),
//! spends that fit alone but not together, extreme amounts, self-transfers.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use common::*;
use ledger_core::{
    AccountId, Amount, BlockError, BlockHeader, BlockStatus, MemoryBodies, Screen, Signature,
    Timestamp, Transaction, TxError,
};

type Tx = TestTx;

/// Submits `block` on the tip and expects it refused for transaction `index` with
/// `expected`, leaving tip and state untouched.
fn refused_in_block(
    ledger: &mut TestLedger,
    txs: Vec<Tx>,
    index: usize,
    expected: TxError<OpError>,
) {
    let producer = &keys()[4];
    let tip = ledger.tip();
    let block = raw_block(
        tip.hash,
        tip.height.0 + 1,
        Timestamp(tip.timestamp.0 + 1),
        producer,
        txs,
        vec![],
        ledger.genesis().pow_bits,
    );
    let state = ledger.state().clone();
    let outcome = ledger.submit(block, late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert_eq!(ledger.tip(), tip);
    assert_eq!(ledger.state(), &state);
    match outcome.into_result() {
        Err(BlockError::Transaction {
            index: i, error, ..
        }) => {
            assert_eq!((i, error), (index, expected));
        }
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

#[test]
fn a_forged_signature_is_refused() {
    let k = keys();
    let mut ledger = ledger(0);
    let mut tx = signed(&ledger, &k[0], 1, pay(k[1].account(), 10));
    // Signed by someone else, claiming to be k[0].
    tx.signature = k[3].sign(&tx.signing_bytes(&ledger.genesis_hash()));
    let expected = TxError::BadSignature { tx: tx.id() };
    assert_eq!(
        ledger.submit_transaction(tx.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![tx], 0, expected);
    // And an all-zero signature.
    let mut zero = signed(&ledger, &k[0], 1, pay(k[1].account(), 10));
    zero.signature = Signature([0; 64]);
    let expected = TxError::BadSignature { tx: zero.id() };
    assert_eq!(ledger.submit_transaction(zero, late()), Err(expected));
}

#[test]
fn a_field_changed_after_signing_is_refused() {
    let k = keys();
    let mut ledger = ledger(0);
    let honest = signed(&ledger, &k[0], 1, pay(k[1].account(), 10));
    let mut changes: Vec<Tx> = Vec::new();
    let mut more = honest.clone();
    more.body = pay(k[1].account(), 900);
    changes.push(more);
    let mut elsewhere = honest.clone();
    elsewhere.body = pay(k[2].account(), 10);
    changes.push(elsewhere);
    let mut nonce = honest.clone();
    nonce.nonce = 7;
    changes.push(nonce);
    let mut time = honest.clone();
    time.timestamp = Timestamp(time.timestamp.0 + 1);
    changes.push(time);
    let mut author = honest.clone();
    author.author = k[2].account();
    changes.push(author);
    for tx in changes {
        let expected = TxError::BadSignature { tx: tx.id() };
        assert_eq!(
            ledger.submit_transaction(tx.clone(), late()),
            Err(expected.clone())
        );
        refused_in_block(&mut ledger, vec![tx], 0, expected);
    }
    // The untouched transaction is fine.
    assert!(ledger.submit_transaction(honest, late()).is_ok());
}

#[test]
fn a_mined_transaction_cannot_be_replayed() {
    let k = keys();
    let mut ledger = ledger(0);
    let tx = signed(&ledger, &k[0], 1, pay(k[1].account(), 10));
    submit_tx(&mut ledger, tx.clone(), late());
    mine_and_submit(&mut ledger, &k[4], late());
    let expected = TxError::StaleNonce {
        tx: tx.id(),
        author: k[0].account(),
        last: 1,
        nonce: 1,
    };
    assert_eq!(
        ledger.submit_transaction(tx.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![tx], 0, expected);
    assert_eq!(ledger.balance(&k[1].account()), Amount(FUNDS + 10));
}

#[test]
fn a_transaction_cannot_be_replayed_on_another_network() {
    let k = keys();
    let mut ledger = ledger(0);
    // Signed for a network whose genesis differs only in its name.
    let mut other = genesis(0);
    other.network = "another-network".into();
    let foreign = Transaction::new_signed(
        &other.hash(),
        &k[0],
        1,
        Clock::new().now(),
        pay(k[1].account(), 10),
    );
    let expected = TxError::BadSignature { tx: foreign.id() };
    assert_eq!(
        ledger.submit_transaction(foreign.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![foreign], 0, expected);
    assert_ne!(other.hash(), ledger.genesis_hash());
}

#[test]
fn two_spends_that_fit_alone_but_not_together_are_refused() {
    let k = keys();
    let mut ledger = ledger(0);
    let a = signed(&ledger, &k[0], 1, pay(k[1].account(), 600));
    let b = signed(&ledger, &k[0], 2, pay(k[2].account(), 600));
    let overdraft = TxError::Overdraft {
        tx: b.id(),
        account: k[0].account(),
        balance: Amount(FUNDS - 600),
        amount: Amount(600),
    };
    // In the mempool: the first is admitted, the second refused against it.
    submit_tx(&mut ledger, a.clone(), late());
    assert_eq!(
        ledger.submit_transaction(b.clone(), late()),
        Err(overdraft.clone())
    );
    // In a block: the second one makes it invalid.
    refused_in_block(&mut ledger, vec![a, b], 1, overdraft);
    // Each alone is mined fine; the supply never changes.
    let block = mine_and_submit(&mut ledger, &k[4], late());
    assert_eq!(block.transactions.len(), 1);
    assert_eq!(supply(ledger.state()), genesis_supply(ledger.genesis()));
}

#[test]
fn amounts_zero_and_u64_max_are_refused() {
    let k = keys();
    let mut ledger = ledger(0);
    let zero = signed(&ledger, &k[0], 1, pay(k[1].account(), 0));
    let expected = TxError::ZeroAmount { tx: zero.id() };
    assert_eq!(
        ledger.submit_transaction(zero.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![zero], 0, expected);
    let max = signed(&ledger, &k[0], 1, pay(k[1].account(), u64::MAX));
    let expected = TxError::Overdraft {
        tx: max.id(),
        account: k[0].account(),
        balance: Amount(FUNDS),
        amount: Amount(u64::MAX),
    };
    assert_eq!(
        ledger.submit_transaction(max.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![max], 0, expected);
}

#[test]
fn sums_near_u64_max_never_overflow_a_balance() {
    // Put almost the whole u64 range in one account: every credit still fits, because
    // the genesis caps the total supply at u64::MAX and transfers only move it.
    let k = keys();
    let mut genesis = genesis(0);
    let rich = Amount(u64::MAX - FUNDS * (genesis.balances.len() as u64 - 1) - RESERVE_FUNDS);
    genesis.balances[0].1 = rich;
    let mut ledger = ledger_with(&genesis, &[], late());
    let nonce = ledger.next_nonce(&k[1].account());
    let tx = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[1],
        nonce,
        late(),
        pay(k[0].account(), FUNDS),
    );
    submit_tx(&mut ledger, tx, late());
    mine_and_submit(&mut ledger, &k[4], late());
    assert_eq!(
        ledger.balance(&k[0].account()),
        rich.checked_add(Amount(FUNDS)).unwrap()
    );
    assert_eq!(supply(ledger.state()), genesis_supply(ledger.genesis()));
}

#[test]
fn a_self_transfer_moves_nothing_but_must_be_affordable() {
    let k = keys();
    let mut ledger = ledger(0);
    let me: AccountId = k[0].account();
    let ok = signed(&ledger, &k[0], 1, pay(me, FUNDS));
    submit_tx(&mut ledger, ok, late());
    mine_and_submit(&mut ledger, &k[4], late());
    assert_eq!(ledger.balance(&me), Amount(FUNDS));
    assert_eq!(ledger.state().nonce(&me), 1);
    let too_much = signed(&ledger, &k[0], 2, pay(me, FUNDS + 1));
    let expected = TxError::Overdraft {
        tx: too_much.id(),
        account: me,
        balance: Amount(FUNDS),
        amount: Amount(FUNDS + 1),
    };
    assert_eq!(
        ledger.submit_transaction(too_much.clone(), late()),
        Err(expected.clone())
    );
    refused_in_block(&mut ledger, vec![too_much], 0, expected);
}

#[test]
fn a_reorg_never_returns_a_transaction_whose_signature_fails_to_the_mempool() {
    let k = keys();
    let scratch = ledger(0);
    let genesis = scratch.genesis_hash();
    // A block in this node's own store (signatures not re-checked on reload) that
    // carries a forged transaction: the node never verified it.
    let mut forged = signed(&scratch, &k[0], 1, pay(k[1].account(), 10));
    forged.signature = k[3].sign(&forged.signing_bytes(&genesis));
    let honest = signed(&scratch, &k[2], 1, pay(k[1].account(), 5));
    let stored = raw_block(
        genesis,
        1,
        Timestamp(GENESIS_TIME + 1),
        &k[4],
        vec![forged.clone(), honest.clone()],
        vec![],
        0,
    );
    let stored = std::sync::Arc::new(stored);
    let mut bodies = MemoryBodies::default();
    bodies.insert(std::sync::Arc::clone(&stored));
    let mut ledger = ledger_core::Ledger::with_store(common::genesis(0), Counter, bodies).unwrap();
    let outcome = ledger.submit(
        ledger_core::BlockInput::Stored(stored),
        ledger_core::Timestamp(0),
    );
    assert_eq!(outcome.status, BlockStatus::Accepted);
    // A heavier branch abandons it: the honest transaction comes back, the forged one
    // is dropped with its reason, so it is never relayed.
    let one = raw_block(
        genesis,
        1,
        Timestamp(GENESIS_TIME + 2),
        &k[3],
        vec![],
        vec![],
        0,
    );
    let two = raw_block(
        one.hash(),
        2,
        Timestamp(GENESIS_TIME + 3),
        &k[3],
        vec![],
        vec![],
        0,
    );
    let mut changes = ledger.submit(one, late()).tip_changes;
    changes.extend(ledger.submit(two.clone(), late()).tip_changes);
    assert_eq!(ledger.tip().hash, two.hash());
    let change = changes.iter().find(|c| c.is_reorg()).expect("a reorg");
    assert_eq!(change.returned, vec![honest.id()]);
    assert!(
        change
            .dropped
            .contains(&TxError::BadSignature { tx: forged.id() })
    );
    assert!(!ledger.is_pending(&forged.id()));
    assert!(ledger.is_pending(&honest.id()));
}

#[test]
fn blocks_that_fail_cheap_checks_get_no_signature_verified_ahead_of_the_ledger() {
    let k = keys();
    let mut genesis = common::genesis(4);
    genesis.producers = Some(vec![k[0].account(), k[1].account()]);
    let ledger = ledger_core::Ledger::new(genesis.clone(), Counter).unwrap();
    let net = ledger.genesis_hash();
    let screen = Screen::new(&genesis);
    let tx = signed(&ledger, &k[2], 1, pay(k[1].account(), 10));
    let block = |producer: &ledger_core::Keypair, bits: u8| {
        std::sync::Arc::new(raw_block(
            net,
            1,
            Timestamp(GENESIS_TIME + 1),
            producer,
            vec![tx.clone()],
            vec![],
            bits,
        ))
    };
    let honest = block(&k[0], 4);
    let outsider = block(&k[3], 4);
    // Mined to no target: its hash almost surely misses the 4-bit one.
    let mut lazy = block(&k[1], 0);
    while BlockHeader::meets_target(&lazy.hash(), 4) {
        let mut b = (*lazy).clone();
        b.header.timestamp = Timestamp(b.header.timestamp.0 + 1);
        lazy = std::sync::Arc::new(reseal(b, &k[1], 0));
    }
    // Every signature here is valid: absent from the result means never verified.
    let verified = screen.preverify(&[honest.clone(), outsider.clone(), lazy.clone()]);
    assert!(verified.has_producer(&honest) && verified.has_tx(&tx.id()));
    assert!(!verified.has_producer(&outsider) && !verified.has_producer(&lazy));
    assert_eq!(verified.len(), 2, "only the honest block's two signatures");
    let alone = screen.preverify(&[outsider.clone(), lazy.clone()]);
    assert!(alone.is_empty());
    // Unscreened, the same signatures do verify.
    assert_eq!(
        ledger_core::preverify(&net, std::slice::from_ref(&outsider)).len(),
        2
    );

    // Through the bulk import, each is refused for its cheap fault.
    let mut importer = ledger_core::Ledger::new(genesis, Counter).unwrap();
    let outcomes = importer.import_blocks(&[outsider, lazy], late());
    assert!(matches!(
        outcomes[0].invalid[0].1,
        BlockError::UnauthorisedProducer { .. }
    ));
    assert!(matches!(
        outcomes[1].invalid[0].1,
        BlockError::InsufficientWork { .. }
    ));
}

#[test]
fn screened_blocks_are_prepared_and_then_judged_by_the_ledger() {
    let k = keys();
    let mut genesis = common::genesis(0);
    genesis.producers = Some(vec![k[0].account()]);
    let mut ledger = ledger_core::Ledger::new(genesis.clone(), Counter).unwrap();
    let net = ledger.genesis_hash();
    let tx = signed(&ledger, &k[2], 1, pay(k[1].account(), 10));
    let at = Timestamp(GENESIS_TIME + 1);
    let honest = std::sync::Arc::new(raw_block(net, 1, at, &k[0], vec![tx.clone()], vec![], 0));
    let outsider = std::sync::Arc::new(raw_block(net, 1, at, &k[3], vec![tx], vec![], 0));
    let prepared = Screen::new(&genesis).prepare_and_verify(&[outsider, honest.clone()]);
    assert_eq!(
        prepared.len(),
        2,
        "every block is prepared, screened or not"
    );
    let mut prepared = prepared.into_iter();
    let refused = ledger.submit(prepared.next().unwrap(), late());
    assert!(matches!(
        refused.invalid[0].1,
        BlockError::UnauthorisedProducer { .. }
    ));
    let accepted = ledger.submit(prepared.next().unwrap(), late());
    assert_eq!(accepted.status, BlockStatus::Accepted);
    assert_eq!(ledger.tip().hash, honest.hash());
}
