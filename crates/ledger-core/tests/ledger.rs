//! Example-based integration tests of the ledger: every validation failure the core can
//! report, the mempool, orphans, Merkle inclusion proofs, cross-network replay, invalid
//! branches, store failures and a branch switch deeper than the undo window.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use ledger_core::sealed::{EncryptionPublicKey, MemberEncryption};
use ledger_core::{
    Amount, Block, BlockError, BlockHash, BlockStatus, BodySource, Genesis, Keypair, Ledger,
    MemoryBodies, Reward, Timestamp, Transaction, TxBody, TxError, codec, limits, verify_inclusion,
};

type Error = BlockError<OpError>;

fn reject(ledger: &mut TestLedger, block: TestBlock, now: Timestamp) -> Error {
    let before = ledger.state().clone();
    let tip = ledger.tip();
    let outcome = ledger.submit(block, now);
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert_eq!(ledger.tip(), tip, "an invalid block must not move the tip");
    assert_eq!(
        ledger.state(),
        &before,
        "an invalid block must not change the state"
    );
    outcome.into_result().expect_err("the block is invalid")
}

fn tx_error(error: Error) -> (usize, TxError<OpError>) {
    match error {
        BlockError::Transaction { index, error, .. } => (index, error),
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

/// A block on genesis by `producer` with `txs` (rewards as given), sealed.
fn on_genesis(
    ledger: &TestLedger,
    producer: &Keypair,
    txs: Vec<TestTx>,
    rewards: Vec<Reward>,
) -> TestBlock {
    raw_block(
        ledger.genesis_hash(),
        1,
        Clock::new().now(),
        producer,
        txs,
        rewards,
        ledger.genesis().pow_bits,
    )
}

// ----- header-level failures -------------------------------------------------------------

#[test]
fn wrong_height_is_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let block = raw_block(
        ledger.genesis_hash(),
        2,
        Clock::new().now(),
        &k[0],
        vec![],
        vec![],
        2,
    );
    let hash = block.hash();
    let error = reject(&mut ledger, block, late());
    assert!(
        matches!(error, BlockError::WrongHeight { block, expected, found }
            if block == hash && expected.0 == 1 && found.0 == 2),
        "{error:?}"
    );
}

#[test]
fn block_before_its_parent_is_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let early = Timestamp(GENESIS_TIME - 1);
    let block = raw_block(ledger.genesis_hash(), 1, early, &k[0], vec![], vec![], 2);
    let error = reject(&mut ledger, block, late());
    assert!(matches!(error, BlockError::BeforeParent { timestamp, .. } if timestamp == early));
    // Equal to the parent's time is fine.
    let same = raw_block(
        ledger.genesis_hash(),
        1,
        Timestamp(GENESIS_TIME),
        &k[0],
        vec![],
        vec![],
        2,
    );
    assert!(accepted(&ledger.submit(same, late())));
}

#[test]
fn block_from_the_future_is_rejected_then_accepted_when_its_time_comes() {
    let k = keys();
    let mut ledger = ledger(2);
    let now = Clock::new().now();
    let when = now.plus_millis(limits::MAX_FUTURE_DRIFT_MS + 1);
    let block = raw_block(ledger.genesis_hash(), 1, when, &k[0], vec![], vec![], 2);
    let error = reject(&mut ledger, block.clone(), now);
    assert!(matches!(error, BlockError::FromTheFuture { timestamp, .. } if timestamp == when));
    // Exactly two hours ahead is allowed; and the early refusal must not be remembered
    // as a verdict on the block.
    let later = now.plus_millis(1);
    submit_as_tip(&mut ledger, &block, later);
}

#[test]
fn insufficient_work_is_rejected() {
    let k = keys();
    let mut ledger = ledger(8);
    let mut block = on_genesis(&ledger, &k[0], vec![], vec![]);
    // Find a nonce whose hash has fewer than 8 leading zero bits, and sign that.
    while block.hash().hash().leading_zero_bits() >= 8 {
        block.header.nonce += 1;
    }
    block.signature = k[0].sign(&block_signing_message(&block.hash()));
    let error = reject(&mut ledger, block, late());
    assert!(matches!(error, BlockError::InsufficientWork { bits, required: 8, .. } if bits < 8));
}

#[test]
fn unauthorised_producer_is_rejected() {
    let k = keys();
    let mut genesis = genesis(2);
    genesis.producers = Some(vec![k[0].account()]);
    let mut ledger = Ledger::new(genesis, Counter).unwrap();
    let block = on_genesis(&ledger, &k[1], vec![], vec![]);
    let error = reject(&mut ledger, block, late());
    assert!(
        matches!(error, BlockError::UnauthorisedProducer { producer, .. } if producer == k[1].account())
    );
    let block = on_genesis(&ledger, &k[0], vec![], vec![]);
    assert!(accepted(&ledger.submit(block, late())));
}

#[test]
fn bad_producer_signature_is_rejected_and_does_not_poison_the_real_block() {
    let k = keys();
    let mut ledger = ledger(2);
    let good = on_genesis(&ledger, &k[0], vec![], vec![]);
    // Signed by someone else.
    let mut forged = good.clone();
    forged.signature = k[1].sign(&block_signing_message(&good.hash()));
    let error = reject(&mut ledger, forged, late());
    assert!(matches!(error, BlockError::BadProducerSignature { block } if block == good.hash()));
    // The producer's signature over another message.
    let mut wrong = good.clone();
    wrong.signature = k[0].sign(b"something else");
    assert!(matches!(
        reject(&mut ledger, wrong, late()),
        BlockError::BadProducerSignature { .. }
    ));
    // The genuine block has the same hash: it must still be accepted.
    submit_as_tip(&mut ledger, &good, late());
}

#[test]
fn merkle_mismatch_is_rejected_and_does_not_poison_the_real_block() {
    let k = keys();
    let mut ledger = ledger(2);
    let t1 = signed(&ledger, &k[0], 1, pay(k[1].account(), 10));
    let t2 = signed(&ledger, &k[1], 1, pay(k[2].account(), 10));
    let good = on_genesis(&ledger, &k[0], vec![t1.clone(), t2.clone()], vec![]);
    // Same header, body changed: reordered, truncated, extended, duplicated.
    let mutations = [
        vec![t2.clone(), t1.clone()],
        vec![t1.clone()],
        vec![
            t1.clone(),
            t2.clone(),
            signed(&ledger, &k[2], 1, pay(k[0].account(), 1)),
        ],
        vec![t1.clone(), t2.clone(), t2.clone()],
    ];
    for txs in mutations {
        let mut bad = good.clone();
        bad.transactions = txs;
        let error = reject(&mut ledger, bad, late());
        assert!(
            matches!(
                error,
                BlockError::MerkleMismatch { .. }
                    | BlockError::Transaction {
                        error: TxError::Duplicate { .. },
                        ..
                    }
            ),
            "{error:?}"
        );
    }
    // A header whose root was not recomputed after the body changed.
    let mut stale = good.clone();
    stale.transactions.pop();
    let stale = remine(stale, &k[0], 2);
    let error = reject(&mut ledger, stale, late());
    assert!(
        matches!(error, BlockError::MerkleMismatch { found, .. } if found == good.header.merkle_root)
    );
    submit_accepted(&mut ledger, &good, late());
    assert_eq!(ledger.balance(&k[2].account()), Amount(FUNDS + 10));
}

#[test]
fn too_many_entries_is_rejected() {
    let k = keys();
    let mut ledger = ledger(0);
    let reward = Reward {
        to: k[0].account(),
        amount: Amount(1),
        cause: Default::default(),
    };
    let block = on_genesis(
        &ledger,
        &k[0],
        vec![],
        vec![reward; limits::MAX_REWARDS_PER_BLOCK + 1],
    );
    let error = reject(&mut ledger, block, late());
    assert!(
        matches!(error, BlockError::TooManyEntries { count, .. } if count == limits::MAX_REWARDS_PER_BLOCK + 1)
    );
}

#[test]
fn entry_limits_count_transactions_and_rewards_apart_and_allow_the_limit_itself() {
    let k = keys();
    let mut ledger = ledger(0);
    let tx = tx(&ledger, &k[1], pay(k[2].account(), 1), late());
    let reward = Reward {
        to: k[0].account(),
        amount: Amount(1),
        cause: Default::default(),
    };
    let over = on_genesis(
        &ledger,
        &k[0],
        vec![tx.clone(); limits::MAX_TXS_PER_BLOCK + 1],
        vec![],
    );
    let error = reject(&mut ledger, over, late());
    assert!(
        matches!(error, BlockError::TooManyEntries { count, .. } if count == limits::MAX_TXS_PER_BLOCK + 1),
        "{error}"
    );
    // Exactly the limit is not too many: these blocks fail on something else (the
    // repeated transaction, the unearned rewards).
    for (txs, rewards) in [
        (vec![tx.clone(); limits::MAX_TXS_PER_BLOCK], vec![]),
        (vec![], vec![reward; limits::MAX_REWARDS_PER_BLOCK]),
    ] {
        let at_limit = on_genesis(&ledger, &k[0], txs, rewards);
        let error = reject(&mut ledger, at_limit, late());
        assert!(
            !matches!(error, BlockError::TooManyEntries { .. }),
            "{error}"
        );
    }
}

#[test]
fn too_large_block_and_transaction_are_rejected() {
    let k = keys();
    let mut ledger = ledger(0);
    // Each note is just under the transaction limit; enough of them exceed the block's.
    let note = "n".repeat(limits::MAX_TX_BYTES - 200);
    let count = limits::MAX_BLOCK_BYTES / note.len() + 1;
    let txs: Vec<TestTx> = (0..count)
        .map(|i| {
            signed(
                &ledger,
                &k[i % KEYS],
                1 + (i / KEYS) as u64,
                TxBody::App(Op::Note(note.clone())),
            )
        })
        .collect();
    let block = on_genesis(&ledger, &k[0], txs, vec![]);
    let error = reject(&mut ledger, block, late());
    assert!(matches!(error, BlockError::TooLarge { size, .. } if size > limits::MAX_BLOCK_BYTES));

    let huge = signed(
        &ledger,
        &k[0],
        1,
        TxBody::App(Op::Note("n".repeat(limits::MAX_TX_BYTES))),
    );
    let id = huge.id();
    let block = on_genesis(&ledger, &k[0], vec![huge.clone()], vec![]);
    let (index, error) = tx_error(reject(&mut ledger, block, late()));
    assert_eq!(index, 0);
    assert!(matches!(error, TxError::TooLarge { tx, .. } if tx == id));
    assert!(matches!(
        ledger.submit_transaction(huge, late()),
        Err(TxError::TooLarge { .. })
    ));
}

#[test]
fn a_block_of_exactly_the_size_limit_is_not_too_large() {
    let k = keys();
    let mut ledger = ledger(0);
    // One note grown until the block's encoding is exactly the limit (the note itself
    // is far above the transaction limit, which is checked later).
    let block_of = |len: usize, ledger: &TestLedger| {
        let tx = signed(ledger, &k[0], 1, TxBody::App(Op::Note("n".repeat(len))));
        on_genesis(ledger, &k[0], vec![tx], vec![])
    };
    let mut len = limits::MAX_BLOCK_BYTES - 1_000;
    let mut block = block_of(len, &ledger);
    for _ in 0..4 {
        let size = codec::encoded_len(&block);
        if size == limits::MAX_BLOCK_BYTES {
            break;
        }
        len = (len + limits::MAX_BLOCK_BYTES).saturating_sub(size);
        block = block_of(len, &ledger);
    }
    assert_eq!(codec::encoded_len(&block), limits::MAX_BLOCK_BYTES);
    let error = reject(&mut ledger, block, late());
    assert!(!matches!(error, BlockError::TooLarge { .. }), "{error}");
    let one_more = block_of(len + 1, &ledger);
    assert_eq!(codec::encoded_len(&one_more), limits::MAX_BLOCK_BYTES + 1);
    let error = reject(&mut ledger, one_more, late());
    assert!(matches!(error, BlockError::TooLarge { .. }), "{error}");
}

// ----- transaction failures inside blocks ------------------------------------------------

#[test]
fn bad_transaction_signature_is_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let good = signed(&ledger, &k[0], 1, pay(k[1].account(), 5));
    let mut tampered = signed(&ledger, &k[1], 1, pay(k[2].account(), 5));
    tampered.body = pay(k[3].account(), 5);
    let block = on_genesis(&ledger, &k[0], vec![good, tampered.clone()], vec![]);
    let (index, error) = tx_error(reject(&mut ledger, block, late()));
    assert_eq!(index, 1);
    assert_eq!(error, TxError::BadSignature { tx: tampered.id() });
    assert_eq!(
        ledger.submit_transaction(tampered.clone(), late()),
        Err(TxError::BadSignature { tx: tampered.id() })
    );
    // An author that is not a valid public key cannot sign at all.
    let mut keyless = signed(&ledger, &k[0], 1, pay(k[1].account(), 5));
    keyless.author = reserve();
    let block = on_genesis(&ledger, &k[0], vec![keyless.clone()], vec![]);
    assert_eq!(
        tx_error(reject(&mut ledger, block, late())).1,
        TxError::BadSignature { tx: keyless.id() }
    );
}

#[test]
fn transaction_replayed_on_another_network_is_rejected() {
    let k = keys();
    let mut home = ledger(2);
    let mut other_genesis = genesis(2);
    other_genesis.network = "another-network".into();
    let mut other = Ledger::new(other_genesis, Counter).unwrap();
    assert_ne!(home.genesis_hash(), other.genesis_hash());
    let now = Clock::new().now();
    let tx = tx(&home, &k[0], pay(k[1].account(), 7), now);
    let id = home.submit_transaction(tx.clone(), now).unwrap();
    assert_eq!(
        other.submit_transaction(tx.clone(), now),
        Err(TxError::BadSignature { tx: id })
    );
    let block = mine_and_submit(&mut home, &k[0], now);
    // The same transaction in a block of the other network.
    let foreign = on_genesis(&other, &k[0], vec![tx], vec![]);
    assert_eq!(
        tx_error(reject(&mut other, foreign, late())).1,
        TxError::BadSignature { tx: id }
    );
    // And the home network's block is meaningless there: its parent is unknown.
    assert!(matches!(
        other.submit(block, late()).status,
        BlockStatus::Orphan { .. }
    ));
}

#[test]
fn replayed_and_stale_nonces_are_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let mut clock = Clock::new();
    let now = clock.tick();
    let first = tx(&ledger, &k[0], pay(k[1].account(), 3), now);
    submit_tx(&mut ledger, first.clone(), now);
    mine_and_submit(&mut ledger, &k[0], now);
    // The mined transaction again: in the mempool and in a block.
    let err = ledger
        .submit_transaction(first.clone(), clock.tick())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TxError::StaleNonce {
                last: 1,
                nonce: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let tip = ledger.tip();
    let replay = raw_block(
        tip.hash,
        2,
        clock.tick(),
        &k[0],
        vec![first.clone()],
        vec![],
        2,
    );
    let (_, error) = tx_error(reject(&mut ledger, replay, clock.tick()));
    assert!(matches!(error, TxError::StaleNonce { tx, last: 1, nonce: 1, .. } if tx == first.id()));
    // A lower nonce with a different body is stale too; nonces may skip ahead.
    let zero = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[0],
        0,
        clock.now(),
        pay(k[2].account(), 1),
    );
    assert!(matches!(
        ledger.submit_transaction(zero, clock.now()),
        Err(TxError::StaleNonce { .. })
    ));
    let skip = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[0],
        10,
        clock.now(),
        pay(k[2].account(), 1),
    );
    submit_tx(&mut ledger, skip, clock.now());
    assert_eq!(ledger.next_nonce(&k[0].account()), 11);
    // Two transactions with the same nonce in one block.
    let a = signed(&ledger, &k[3], 1, pay(k[1].account(), 1));
    let b = signed(&ledger, &k[3], 1, pay(k[2].account(), 1));
    let block = raw_block(
        tip.hash,
        2,
        clock.tick(),
        &k[0],
        vec![a, b.clone()],
        vec![],
        2,
    );
    assert_eq!(tx_error(reject(&mut ledger, block, clock.tick())).0, 1);
}

#[test]
fn zero_amount_overdraft_and_reserve_author_are_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let zero = signed(&ledger, &k[0], 1, pay(k[1].account(), 0));
    assert_eq!(
        ledger.submit_transaction(zero.clone(), late()),
        Err(TxError::ZeroAmount { tx: zero.id() })
    );
    let block = on_genesis(&ledger, &k[0], vec![zero.clone()], vec![]);
    assert_eq!(
        tx_error(reject(&mut ledger, block, late())).1,
        TxError::ZeroAmount { tx: zero.id() }
    );

    let too_much = signed(&ledger, &k[0], 1, pay(k[1].account(), FUNDS + 1));
    let expected = TxError::Overdraft {
        tx: too_much.id(),
        account: k[0].account(),
        balance: Amount(FUNDS),
        amount: Amount(FUNDS + 1),
    };
    assert_eq!(
        ledger.submit_transaction(too_much.clone(), late()),
        Err(expected.clone())
    );
    let block = on_genesis(&ledger, &k[0], vec![too_much], vec![]);
    assert_eq!(tx_error(reject(&mut ledger, block, late())).1, expected);
    // Overdraft by accumulation: two transfers that are fine alone.
    let a = signed(&ledger, &k[0], 1, pay(k[1].account(), 600));
    let b = signed(&ledger, &k[0], 2, pay(k[2].account(), 600));
    let block = on_genesis(&ledger, &k[0], vec![a.clone(), b.clone()], vec![]);
    let (index, error) = tx_error(reject(&mut ledger, block, late()));
    assert_eq!(index, 1);
    assert!(matches!(
        error,
        TxError::Overdraft {
            balance: Amount(400),
            ..
        }
    ));
    submit_tx(&mut ledger, a, late());
    assert!(matches!(
        ledger.submit_transaction(b, late()),
        Err(TxError::Overdraft { .. })
    ));
    // Spending everything, and a self-transfer of everything, are fine.
    let all = signed(&ledger, &k[1], 1, pay(k[1].account(), FUNDS));
    submit_tx(&mut ledger, all, late());

    // A genesis whose reserve is a real key: the key still may not author anything.
    let mut genesis = genesis(2);
    genesis.reserve = k[4].account();
    let mut ledger = Ledger::new(genesis, Counter).unwrap();
    let from_reserve = signed(&ledger, &k[4], 1, pay(k[0].account(), 1));
    assert_eq!(
        ledger.submit_transaction(from_reserve.clone(), late()),
        Err(TxError::FromReserve {
            tx: from_reserve.id()
        })
    );
    let block = on_genesis(&ledger, &k[0], vec![from_reserve.clone()], vec![]);
    assert_eq!(
        tx_error(reject(&mut ledger, block, late())).1,
        TxError::FromReserve {
            tx: from_reserve.id()
        }
    );
}

#[test]
fn transaction_from_the_future_is_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let now = Clock::new().now();
    let when = now.plus_millis(limits::MAX_FUTURE_DRIFT_MS + 1);
    let tx = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[0],
        1,
        when,
        pay(k[1].account(), 1),
    );
    assert!(matches!(
        ledger.submit_transaction(tx.clone(), now),
        Err(TxError::FromTheFuture { .. })
    ));
    let block = raw_block(
        ledger.genesis_hash(),
        1,
        now,
        &k[0],
        vec![tx.clone()],
        vec![],
        2,
    );
    let error = tx_error(reject(&mut ledger, block, now)).1;
    assert!(matches!(error, TxError::FromTheFuture { timestamp, .. } if timestamp == when));
    // Two hours after the block is the limit.
    let ok = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[0],
        1,
        now.plus_millis(limits::MAX_FUTURE_DRIFT_MS),
        pay(k[1].account(), 1),
    );
    submit_tx(&mut ledger, ok, now);
}

#[test]
fn duplicate_transactions_are_rejected() {
    let k = keys();
    let mut ledger = ledger(2);
    let t = signed(&ledger, &k[0], 1, pay(k[1].account(), 1));
    let id = submit_and_id(&mut ledger, &t);
    assert_eq!(
        ledger.submit_transaction(t.clone(), late()),
        Err(TxError::Duplicate { tx: id })
    );
    assert_eq!(ledger.mempool().len(), 1);
    let block = on_genesis(&ledger, &k[0], vec![t.clone(), t.clone()], vec![]);
    assert_eq!(
        tx_error(reject(&mut ledger, block, late())),
        (1, TxError::Duplicate { tx: id })
    );
}

fn submit_and_id(ledger: &mut TestLedger, tx: &TestTx) -> ledger_core::TxId {
    ledger
        .submit_transaction(tx.clone(), late())
        .expect("valid")
}

#[test]
fn policy_errors_are_reported() {
    let k = keys();
    let mut ledger = ledger(2);
    let claim = signed(&ledger, &k[0], 1, TxBody::App(Op::Claim(9)));
    let again = signed(&ledger, &k[1], 1, TxBody::App(Op::Claim(9)));
    let reward = |tx: &TestTx, to: &Keypair| Reward {
        to: to.account(),
        amount: Amount(CLAIM_REWARD),
        cause: tx.id(),
    };
    let block = on_genesis(
        &ledger,
        &k[0],
        vec![claim.clone(), again.clone()],
        vec![reward(&claim, &k[0]), reward(&again, &k[1])],
    );
    assert_eq!(
        tx_error(reject(&mut ledger, block, late())),
        (
            1,
            TxError::Policy {
                tx: again.id(),
                error: OpError::Claimed(9)
            }
        )
    );
    submit_tx(&mut ledger, claim, late());
    assert_eq!(
        ledger.submit_transaction(again.clone(), late()),
        Err(TxError::Policy {
            tx: again.id(),
            error: OpError::Claimed(9)
        })
    );
    let long = signed(
        &ledger,
        &k[2],
        1,
        TxBody::App(Op::Note("x".repeat(MAX_NOTE + 1))),
    );
    assert!(matches!(
        ledger.submit_transaction(long, late()),
        Err(TxError::Policy {
            error: OpError::NoteTooLong,
            ..
        })
    ));
}

#[test]
fn a_policy_may_refuse_a_transfer_in_the_mempool_and_in_a_block() {
    let k = keys();
    let mut ledger = ledger(2);
    let before = ledger.state().clone();
    let transfer = signed(&ledger, &k[0], 1, pay(sanctioned(), 5));
    let refusal = TxError::Policy {
        tx: transfer.id(),
        error: OpError::Sanctioned,
    };
    assert_eq!(
        ledger.submit_transaction(transfer.clone(), late()),
        Err(refusal.clone())
    );
    let block = on_genesis(&ledger, &k[0], vec![transfer], Vec::new());
    assert_eq!(tx_error(reject(&mut ledger, block, late())), (0, refusal));
    assert_eq!(ledger.state(), &before);
    // Any other transfer passes.
    let fine = signed(&ledger, &k[0], 1, pay(stranger(), 5));
    assert!(ledger.submit_transaction(fine, late()).is_ok());
}

// ----- rewards ---------------------------------------------------------------------------

#[test]
fn reward_entries_must_be_exactly_those_earned() {
    let k = keys();
    let mut ledger = ledger(2);
    let claim = signed(&ledger, &k[1], 1, TxBody::App(Op::Claim(1)));
    let add = signed(&ledger, &k[2], 1, TxBody::App(Op::Add(3)));
    let earned = vec![
        Reward {
            to: k[1].account(),
            amount: Amount(CLAIM_REWARD),
            cause: claim.id(),
        },
        Reward {
            to: k[2].account(),
            amount: Amount(3),
            cause: add.id(),
        },
    ];
    let txs = vec![claim.clone(), add.clone()];
    let gh = ledger.genesis_hash();
    let block =
        |rewards: Vec<Reward>| raw_block(gh, 1, Clock::new().now(), &k[0], txs.clone(), rewards, 2);

    let missing = block(earned[..1].to_vec());
    assert!(
        matches!(reject(&mut ledger, missing, late()), BlockError::RewardMissing { expected, .. } if *expected == earned[1])
    );

    let mut extra = earned.clone();
    extra.push(Reward {
        to: k[0].account(),
        amount: Amount(1),
        cause: add.id(),
    });
    assert!(
        matches!(reject(&mut ledger, block(extra), late()), BlockError::RewardUnexpected { found, .. } if found.to == k[0].account())
    );

    let mut wrong = earned.clone();
    wrong[0].amount = Amount(CLAIM_REWARD + 1);
    assert!(matches!(
        reject(&mut ledger, block(wrong), late()),
        BlockError::RewardMismatch { index: 0, .. }
    ));

    let mut swapped = earned.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        reject(&mut ledger, block(swapped), late()),
        BlockError::RewardMismatch { index: 0, .. }
    ));

    assert!(accepted(&ledger.submit(block(earned), late())));
    assert_eq!(
        ledger.balance(&k[1].account()),
        Amount(FUNDS + CLAIM_REWARD)
    );
    assert_eq!(ledger.balance(&k[2].account()), Amount(FUNDS + 3));
    assert_eq!(
        ledger.balance(&reserve()),
        Amount(RESERVE_FUNDS - CLAIM_REWARD - 3)
    );
    assert_consistent(&ledger);
}

#[test]
fn zero_rewards_are_not_listed_and_an_empty_reserve_pays_nothing() {
    let k = keys();
    let mut genesis = genesis(2);
    // The reserve can afford one claim reward and not a second.
    genesis.balances.retain(|(a, _)| *a != reserve());
    genesis.balances.push((reserve(), Amount(CLAIM_REWARD + 2)));
    let mut ledger = Ledger::new(genesis, Counter).unwrap();
    let now = Clock::new().now();
    for (i, op) in [Op::Add(4), Op::Claim(1), Op::Claim(2), Op::Add(2)]
        .into_iter()
        .enumerate()
    {
        send(&mut ledger, &k[i], TxBody::App(op), now);
    }
    let block = mine_and_submit(&mut ledger, &k[0], now);
    // Add(4) earns 0 (not listed), the first claim is paid, the second is not
    // affordable, Add(2) earns 2 and is.
    let paid: Vec<_> = block.rewards.iter().map(|r| (r.to, r.amount)).collect();
    assert_eq!(
        paid,
        vec![
            (k[1].account(), Amount(CLAIM_REWARD)),
            (k[3].account(), Amount(2))
        ]
    );
    assert_eq!(ledger.balance(&reserve()), Amount(0));
    assert_consistent(&ledger);
}

// ----- known invalid ---------------------------------------------------------------------

#[test]
fn known_invalid_blocks_and_their_descendants_are_refused() {
    let k = keys();
    let mut ledger = ledger(2);
    let bad_tx = signed(&ledger, &k[0], 1, pay(k[1].account(), FUNDS + 1));
    let bad = on_genesis(&ledger, &k[0], vec![bad_tx], vec![]);
    let child = raw_block(bad.hash(), 2, Clock::new().now(), &k[0], vec![], vec![], 2);
    let grandchild = raw_block(
        child.hash(),
        3,
        Clock::new().now(),
        &k[0],
        vec![],
        vec![],
        2,
    );
    // The grandchild waits as an orphan; the child too.
    assert!(
        matches!(ledger.submit(grandchild.clone(), late()).status, BlockStatus::Orphan { missing } if missing == child.hash())
    );
    assert!(matches!(
        ledger.submit(child.clone(), late()).status,
        BlockStatus::Orphan { .. }
    ));
    let outcome = ledger.submit(bad.clone(), late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    let invalid: Vec<BlockHash> = outcome.invalid.iter().map(|(h, _)| *h).collect();
    assert!(
        invalid.contains(&bad.hash())
            && invalid.contains(&child.hash())
            && invalid.contains(&grandchild.hash())
    );
    assert_eq!(ledger.orphan_count(), 0);
    for block in [bad, child, grandchild] {
        let hash = block.hash();
        assert_eq!(
            reject(&mut ledger, block, late()),
            BlockError::KnownInvalid { block: hash }
        );
    }
    // A new block on the invalid one is refused at once.
    let fresh_child = raw_block(outcome.hash, 2, late(), &k[1], vec![], vec![], 2);
    assert!(matches!(
        reject(&mut ledger, fresh_child, late()),
        BlockError::KnownInvalid { .. }
    ));
}

// ----- mempool and producing ---------------------------------------------------------------

#[test]
fn mempool_orders_by_arrival_and_blocks_take_them() {
    let k = keys();
    let mut ledger = ledger(2);
    let mut clock = Clock::new();
    let now = clock.tick();
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = tx(&ledger, &k[0], pay(k[1].account(), 10 + i), now);
        ids.push(ledger.submit_transaction(t, now).unwrap());
    }
    assert_eq!(ledger.next_nonce(&k[0].account()), 5);
    let pending: Vec<_> = ledger.mempool().map(|p| p.id).collect();
    assert_eq!(pending, ids);
    let block = mine_and_submit(&mut ledger, &k[2], clock.tick());
    let mined: Vec<_> = block.transactions.iter().map(Transaction::id).collect();
    assert_eq!(mined, ids);
    assert_eq!(ledger.mempool().len(), 0);
    assert!(ids.iter().all(|id| !ledger.is_pending(id)));
    assert_eq!(
        ledger.balance(&k[1].account()),
        Amount(FUNDS + 10 + 11 + 12 + 13)
    );
    assert_consistent(&ledger);
}

#[test]
fn a_block_from_elsewhere_clears_the_mempool_of_its_transactions_and_conflicts() {
    let k = keys();
    let mut here = ledger(2);
    let mut there = ledger(2);
    let now = Clock::new().now();
    let shared = tx(&here, &k[0], pay(k[1].account(), 5), now);
    submit_tx(&mut here, shared.clone(), now);
    submit_tx(&mut there, shared.clone(), now);
    // Same nonce, different transaction: conflicts with what `there` will mine.
    let conflicting =
        Transaction::new_signed(&here.genesis_hash(), &k[2], 1, now, pay(k[3].account(), 1));
    let theirs =
        Transaction::new_signed(&here.genesis_hash(), &k[2], 1, now, pay(k[4].account(), 2));
    submit_tx(&mut here, conflicting.clone(), now);
    submit_tx(&mut there, theirs, now);
    let block = mine_and_submit(&mut there, &k[0], now);
    let outcome = here.submit(block, now);
    assert!(accepted(&outcome));
    let change = &outcome.tip_changes[0];
    assert!(!change.is_reorg());
    assert_eq!(
        change.dropped.iter().map(TxError::tx).collect::<Vec<_>>(),
        vec![conflicting.id()]
    );
    assert_eq!(here.mempool().len(), 0);
    assert_eq!(here.state(), there.state());
}

// ----- orphans -----------------------------------------------------------------------------

#[test]
fn children_before_parents_are_connected_when_the_parent_arrives() {
    let k = keys();
    let mut source = ledger(2);
    let mut clock = Clock::new();
    let mut blocks = Vec::new();
    for (token, producer) in (0..).zip(&k[..4]) {
        let now = clock.tick();
        send(&mut source, producer, TxBody::App(Op::Claim(token)), now);
        blocks.push(mine_and_submit(&mut source, producer, now));
    }
    let mut ledger = ledger(2);
    for block in blocks[1..].iter().rev() {
        let outcome = ledger.submit(block.clone(), clock.now());
        assert_eq!(
            outcome.status,
            BlockStatus::Orphan {
                missing: block.header.prev
            }
        );
    }
    assert_eq!(ledger.orphan_count(), 3);
    assert!(ledger.knows_block(&blocks[3].hash()));
    // Resubmitting an orphan is a duplicate.
    assert_eq!(
        ledger.submit(blocks[2].clone(), clock.now()).status,
        BlockStatus::Duplicate
    );
    let outcome = ledger.submit(blocks[0].clone(), clock.now());
    assert!(accepted(&outcome));
    assert_eq!(
        outcome.accepted,
        blocks.iter().map(TestBlock::hash).collect::<Vec<_>>()
    );
    assert_eq!(ledger.orphan_count(), 0);
    assert_eq!(ledger.tip(), source.tip());
    assert_eq!(ledger.state(), source.state());
    assert_eq!(
        ledger.submit(blocks[0].clone(), clock.now()).status,
        BlockStatus::Duplicate
    );
    assert_consistent(&ledger);
}

#[test]
fn a_corrupted_parent_does_not_condemn_its_waiting_children() {
    let k = keys();
    let mut source = ledger(2);
    let mut clock = Clock::new();
    let now = clock.tick();
    send(&mut source, &k[0], pay(k[1].account(), 5), now);
    let parent = mine_and_submit(&mut source, &k[0], now);
    let child = mine_and_submit(&mut source, &k[1], clock.tick());
    let mut ledger = ledger(2);
    assert!(matches!(
        ledger.submit(child.clone(), late()).status,
        BlockStatus::Orphan { .. }
    ));
    // The parent's header with a body it does not commit to.
    let mut corrupted = parent.clone();
    corrupted.transactions.clear();
    assert!(matches!(
        reject(&mut ledger, corrupted, late()),
        BlockError::MerkleMismatch { .. }
    ));
    let outcome = ledger.submit(parent, late());
    assert!(accepted(&outcome), "{:?}", outcome.invalid);
    assert_eq!(ledger.tip().hash, child.hash());
}

// ----- Merkle proofs -----------------------------------------------------------------------

#[test]
fn inclusion_proofs_verify_with_the_header_alone() {
    let k = keys();
    let mut ledger = ledger(2);
    let now = Clock::new().now();
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = if i % 2 == 0 {
            TxBody::App(Op::Claim(i))
        } else {
            pay(k[0].account(), 1)
        };
        let t = tx(&ledger, &k[i as usize % KEYS], body, now);
        ids.push(ledger.submit_transaction(t, now).unwrap());
    }
    let block = mine_and_submit(&mut ledger, &k[0], now);
    assert_eq!(block.rewards.len(), 4);
    let header = ledger.header(&block.hash()).unwrap().clone();
    for id in &ids {
        let proof = block.prove(id).expect("the transaction is in the block");
        assert!(verify_inclusion(&header, id, &proof));
        for other in ids.iter().filter(|o| *o != id) {
            assert!(!verify_inclusion(&header, other, &proof));
        }
        let mut tampered = header.clone();
        tampered.merkle_root = Default::default();
        assert!(!verify_inclusion(&tampered, id, &proof));
    }
    let outsider = signed(&ledger, &k[1], 99, pay(k[2].account(), 1)).id();
    assert!(block.prove(&outsider).is_none());
}

// ----- invalid branches --------------------------------------------------------------------

/// A ledger on genesis with `n` blocks by `producer`, each holding a note.
fn chain(
    n: usize,
    producer: &Keypair,
    tag: &str,
    clock: &mut Clock,
) -> (TestLedger, Vec<TestBlock>) {
    let mut ledger = ledger(2);
    let mut blocks = Vec::new();
    for i in 0..n {
        let now = clock.tick();
        let note = TxBody::App(Op::Note(format!("{tag}{i}")));
        send(&mut ledger, producer, note, now);
        blocks.push(mine_and_submit(&mut ledger, producer, now));
    }
    (ledger, blocks)
}

/// Branch B: four valid blocks, a fifth that overdraws, then two more on top of it.
fn branch_with_invalid_fifth(clock: &mut Clock) -> (Vec<TestBlock>, TestLedger) {
    let k = keys();
    let (valid, mut blocks) = chain(4, &k[1], "b", clock);
    let overdraw = tx(&valid, &k[3], pay(k[4].account(), FUNDS * 2), clock.now());
    let tip = valid.tip();
    let b5 = raw_block(tip.hash, 5, clock.tick(), &k[1], vec![overdraw], vec![], 2);
    let b6 = raw_block(b5.hash(), 6, clock.tick(), &k[1], vec![], vec![], 2);
    let b7 = raw_block(b6.hash(), 7, clock.tick(), &k[1], vec![], vec![], 2);
    blocks.extend([b5, b6, b7]);
    (blocks, valid)
}

#[test]
fn invalid_block_five_deep_keeps_the_valid_prefix_when_it_has_more_work() {
    let k = keys();
    let mut clock = Clock::new();
    let (mut ledger, a) = chain(3, &k[0], "a", &mut clock);
    let (b, valid_b) = branch_with_invalid_fifth(&mut clock);
    // Children first: everything waits until b1 arrives, then connects in one go.
    for block in b[1..].iter().rev() {
        assert!(matches!(
            ledger.submit(block.clone(), late()).status,
            BlockStatus::Orphan { .. }
        ));
    }
    let outcome = ledger.submit(b[0].clone(), late());
    assert_eq!(outcome.status, BlockStatus::Accepted);
    let invalid: Vec<BlockHash> = outcome.invalid.iter().map(|(h, _)| *h).collect();
    for bad in &b[4..] {
        assert!(
            invalid.contains(&bad.hash()),
            "{bad:?} must be reported invalid"
        );
    }
    let (_, b5_error) = outcome
        .invalid
        .iter()
        .find(|(h, _)| *h == b[4].hash())
        .unwrap();
    assert!(matches!(
        b5_error,
        BlockError::Transaction {
            index: 0,
            error: TxError::Overdraft { .. },
            ..
        }
    ));
    // b1..b4 (four blocks) beat a1..a3.
    assert_eq!(ledger.tip().hash, b[3].hash());
    assert_eq!(ledger.state(), valid_b.state());
    assert!(!ledger.is_on_main_chain(&a[2].hash()));
    assert_consistent(&ledger);
    for block in &b[4..] {
        assert!(matches!(
            reject(&mut ledger, block.clone(), late()),
            BlockError::KnownInvalid { .. }
        ));
    }
    assert_eq!(ledger.orphan_count(), 0);
}

#[test]
fn invalid_block_five_deep_does_not_switch_when_the_valid_prefix_has_less_work() {
    let k = keys();
    let mut clock = Clock::new();
    let (mut ledger, a) = chain(5, &k[0], "a", &mut clock);
    let before = ledger.state().clone();
    let tip = ledger.tip();
    let (b, _) = branch_with_invalid_fifth(&mut clock);
    let mut reported_invalid = Vec::new();
    for block in &b {
        let outcome = ledger.submit(block.clone(), late());
        reported_invalid.extend(outcome.invalid.iter().map(|(h, _)| *h));
        assert!(
            outcome.tip_changes.is_empty(),
            "the tip must never leave chain A"
        );
        assert_eq!(ledger.tip(), tip);
        assert_eq!(ledger.state(), &before);
    }
    // b5 is found invalid at the latest when b6 makes the branch heavier than A.
    assert!(reported_invalid.contains(&b[4].hash()));
    assert!(reported_invalid.contains(&b[6].hash()));
    assert_eq!(ledger.main_chain().last(), Some(&a[4].hash()));
    assert_consistent(&ledger);
    // The valid prefix stays in the tree: extending it past A switches to it.
    let (mut valid_b, _) = chain(0, &k[1], "", &mut clock);
    for block in &b[..4] {
        assert!(accepted(&valid_b.submit(block.clone(), late())));
    }
    let now = clock.tick();
    let b5 = mine_and_submit(&mut valid_b, &k[1], now);
    let b6 = mine_and_submit(&mut valid_b, &k[1], now);
    // b5 ties with A (the smaller tip hash wins), b6 beats it: one of them switches.
    let mut changes = ledger.submit(b5, late()).tip_changes;
    changes.extend(ledger.submit(b6.clone(), late()).tip_changes);
    assert!(changes.iter().any(|c| c.is_reorg()));
    assert_eq!(ledger.tip().hash, b6.hash());
    assert_eq!(ledger.state(), valid_b.state());
    assert_consistent(&ledger);
}

// ----- block store -------------------------------------------------------------------------

/// Bodies in memory, filled by the test as a runtime would fill its store, whose reads
/// can be made to fail.
#[derive(Default, Clone)]
struct FlakyStore {
    inner: Arc<Mutex<MemoryBodies<Op>>>,
    failing: Arc<AtomicBool>,
}

impl FlakyStore {
    /// Stores what the ledger reports unstored, and tells it so, as a runtime does.
    fn persist(&self, ledger: &mut Ledger<Counter, FlakyStore>, accepted: &[BlockHash]) {
        for hash in accepted {
            let block = ledger
                .unstored_block(hash)
                .expect("accepted, not yet stored");
            self.inner.lock().unwrap().insert(Arc::clone(block));
        }
        ledger.mark_stored(accepted.iter().copied());
    }
}

#[derive(Debug, thiserror::Error)]
#[error("disk unreadable")]
struct DiskError;

impl BodySource<Op> for FlakyStore {
    type Error = DiskError;
    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<Op>>>, DiskError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(DiskError);
        }
        let Ok(block) = self.inner.lock().unwrap().get(hash) as Result<_, Infallible>;
        Ok(block)
    }
}

#[test]
fn the_ledger_writes_nothing_and_keeps_accepted_bodies_until_they_are_stored() {
    let k = keys();
    let store = FlakyStore::default();
    let mut ledger = Ledger::with_store(genesis(2), Counter, store.clone()).unwrap();
    let now = Clock::new().now();
    let block = ledger.mine_block(&k[0], now);
    let outcome = ledger.submit(block.clone(), now);
    assert_eq!(outcome.accepted, vec![block.hash()]);
    // Accepted and readable, but nothing was written: the runtime stores it.
    assert!(store.inner.lock().unwrap().is_empty());
    assert_eq!(ledger.unstored_count(), 1);
    assert_eq!(
        ledger.block(&block.hash()).unwrap().as_deref(),
        Some(&block)
    );
    store.persist(&mut ledger, &outcome.accepted);
    assert_eq!(ledger.unstored_count(), 0);
    assert!(ledger.unstored_block(&block.hash()).is_none());
    // From now on the body comes from the source: a failing source fails the read.
    assert!(ledger.block(&block.hash()).unwrap().is_some());
    store.failing.store(true, Ordering::SeqCst);
    assert!(ledger.block(&block.hash()).is_err());
    // A block reloaded from the store is not handed back to be stored again.
    store.failing.store(false, Ordering::SeqCst);
    let mut reloaded = Ledger::with_store(genesis(2), Counter, store.clone()).unwrap();
    let stored = Arc::new(block.clone());
    let outcome = reloaded.submit(ledger_core::BlockInput::Stored(stored), late());
    assert_eq!(outcome.accepted, vec![block.hash()]);
    assert_eq!(reloaded.unstored_count(), 0);
}

#[test]
fn a_store_that_cannot_read_is_a_fault_of_the_node_not_a_verdict_on_a_block() {
    let k = keys();
    let store = FlakyStore::default();
    let mut ledger = Ledger::with_store(genesis(2), Counter, store.clone()).unwrap();
    let mut clock = Clock::new();
    let now = clock.tick();
    let a1 = ledger.mine_block(&k[0], now);
    let outcome = ledger.submit(a1.clone(), now);
    store.persist(&mut ledger, &outcome.accepted);
    // A rival branch, two blocks long: switching to it needs a1's body to disconnect it.
    let mut rival = self::ledger(2);
    let b1 = mine_and_submit(&mut rival, &k[1], now);
    let b2 = mine_and_submit(&mut rival, &k[1], clock.tick());
    let b3 = mine_and_submit(&mut rival, &k[1], clock.tick());

    store.failing.store(true, Ordering::SeqCst);
    let mut faults = Vec::new();
    for block in [&b1, &b2] {
        let outcome = ledger.submit(block.clone(), late());
        // In the tree, found valid, and nobody blamed.
        assert_eq!(outcome.status, BlockStatus::Accepted);
        assert_eq!(outcome.accepted, vec![block.hash()]);
        assert!(outcome.invalid.is_empty(), "{:?}", outcome.invalid);
        faults.extend(outcome.fault);
    }
    let fault = faults.first().expect("the switch needed a1's body");
    assert_eq!(fault.block, a1.hash());
    assert!(fault.to_string().contains("disk unreadable"), "{fault}");
    // The best chain stays as it was, and nothing is remembered as invalid.
    assert_eq!(ledger.tip().hash, a1.hash());
    assert!(ledger.knows_block(&b2.hash()));
    assert!(ledger.is_unstored(&b1.hash()) && ledger.is_unstored(&b2.hash()));

    // The disk recovers: the next block switches to the rival branch.
    store.failing.store(false, Ordering::SeqCst);
    let outcome = ledger.submit(b3.clone(), late());
    assert!(outcome.fault.is_none());
    assert_eq!(ledger.tip(), rival.tip());
    assert_eq!(ledger.state(), rival.state());
    assert!(outcome.tip_changes.iter().any(|c| c.is_reorg()));
    assert_eq!(
        ledger.replay_from_genesis().as_ref().ok(),
        Some(ledger.state())
    );
}

// ----- deep reorganisation -----------------------------------------------------------------

#[test]
fn a_switch_deeper_than_the_undo_window_replays_from_genesis() {
    // Empty blocks at difficulty 0 are cheap enough to go past the undo window.
    let k = keys();
    let genesis = genesis(0);
    let mut clock = Clock::new();
    let mut a = Ledger::new(genesis.clone(), Counter).unwrap();
    let now = clock.tick();
    let moved = tx(&a, &k[0], pay(k[1].account(), 100), now);
    submit_tx(&mut a, moved.clone(), now);
    let claim = tx(&a, &k[2], TxBody::App(Op::Claim(1)), now);
    submit_tx(&mut a, claim.clone(), now);
    let depth = limits::MAX_UNDO_DEPTH + 2;
    for _ in 0..depth {
        let block = a.mine_block(&k[0], now);
        assert!(accepted(&a.submit(block, now)));
    }
    let mut b = Ledger::new(genesis.clone(), Counter).unwrap();
    let rival =
        Transaction::new_signed(&b.genesis_hash(), &k[3], 1, now, TxBody::App(Op::Claim(1)));
    submit_tx(&mut b, rival, now);
    let mut branch = Vec::new();
    for _ in 0..=depth {
        let block = b.mine_block(&k[1], now);
        assert!(accepted(&b.submit(block.clone(), now)));
        branch.push(block);
    }
    let mut changes = Vec::new();
    for block in branch {
        let outcome = a.submit(block, now);
        assert!(accepted(&outcome), "{:?}", outcome.invalid);
        changes.extend(outcome.tip_changes);
    }
    assert_eq!(a.tip(), b.tip());
    assert_eq!(a.state(), b.state());
    let reorg = changes
        .iter()
        .find(|c| c.is_reorg())
        .expect("a branch switch happened");
    assert_eq!(reorg.disconnected.len(), depth);
    // The transfer is back in the mempool; the claim lost to the rival's and is dropped.
    assert!(a.is_pending(&moved.id()));
    assert!(reorg.returned.contains(&moved.id()));
    assert!(reorg.dropped.iter().any(|e| e.tx() == claim.id()));
    assert_consistent(&a);
}

#[test]
fn roster_members_are_found_by_account_and_by_username() {
    let genesis = genesis(2);
    let first = &genesis.roster[0];
    let second = &genesis.roster[1];
    assert_eq!(genesis.member(&second.account), Some(second));
    assert_eq!(genesis.member(&first.account), Some(first));
    assert_eq!(genesis.member(&stranger()), None);
    assert_eq!(genesis.member_by_username(&second.username), Some(second));
    assert_eq!(genesis.member_by_username("nobody"), None);
}

#[test]
fn a_genesis_of_exactly_the_size_limit_is_accepted_and_one_byte_more_is_not() {
    use ledger_core::GenesisError;
    let mut genesis = genesis(2);
    // A parameter encodes as its name's length (8 bytes), the name, and a u64.
    let pad = limits::MAX_GENESIS_BYTES - codec::encoded_len(&genesis) - 16;
    genesis.parameters.insert("p".repeat(pad), 1);
    assert_eq!(codec::encoded_len(&genesis), limits::MAX_GENESIS_BYTES);
    assert_eq!(genesis.check(), Ok(()));
    genesis.parameters.insert(String::new(), 1);
    assert!(matches!(
        genesis.check(),
        Err(GenesisError::TooLarge { size, .. }) if size == limits::MAX_GENESIS_BYTES + 16
    ));
}

#[test]
fn genesis_is_checked() {
    use ledger_core::GenesisError;
    let check = |change: &dyn Fn(&mut Genesis)| {
        let mut genesis = genesis(2);
        change(&mut genesis);
        let error = genesis.check().expect_err("must be refused");
        assert!(Ledger::new(genesis.clone(), Counter).is_err());
        assert!(Genesis::decode(&genesis.encode()).is_err());
        error
    };
    assert!(matches!(
        check(&|g| g.pow_bits = limits::MAX_POW_BITS + 1),
        GenesisError::PowTooHard { .. }
    ));
    assert!(matches!(
        check(&|g| g.network.clear()),
        GenesisError::NetworkName { len: 0, .. }
    ));
    let long = "n".repeat(limits::MAX_NETWORK_NAME + 1);
    assert!(matches!(
        check(&|g| g.network = long.clone()),
        GenesisError::NetworkName { .. }
    ));
    assert!(matches!(
        check(&|g| g.roster[1].role.clear()),
        GenesisError::MemberText { .. }
    ));
    let too_long = "r".repeat(limits::MAX_ROSTER_TEXT + 1);
    assert!(matches!(
        check(&|g| g.roster[0].display_name = too_long.clone()),
        GenesisError::MemberText { .. }
    ));
    assert!(matches!(
        check(&|g| g.roster[1].username = g.roster[0].username.clone()),
        GenesisError::DuplicateMember { .. }
    ));
    assert!(matches!(
        check(&|g| g.roster[1].account = g.roster[0].account),
        GenesisError::DuplicateMember { .. }
    ));
    // An encryption key must be signed by the member's own signing key: one signed by
    // another member, or with its key swapped, is refused.
    let key = EncryptionPublicKey::from_byte_array([5; 32]);
    assert!(matches!(
        check(&|g| g.roster[0].encryption = Some(MemberEncryption::bind(&keys()[1], key))),
        GenesisError::EncryptionKeyBinding { .. }
    ));
    assert!(matches!(
        check(&|g| {
            let mut bound = MemberEncryption::bind(&keys()[0], key);
            bound.key = EncryptionPublicKey::from_byte_array([6; 32]);
            g.roster[0].encryption = Some(bound);
        }),
        GenesisError::EncryptionKeyBinding { .. }
    ));
    let first = keys()[0].account();
    assert!(
        matches!(check(&|g| g.balances.push((first, Amount(1)))), GenesisError::DuplicateBalance { account } if account == first)
    );
    assert!(matches!(
        check(&|g| g.balances.push((stranger(), Amount(u64::MAX)))),
        GenesisError::SupplyOverflow
    ));
    // The limits themselves are fine.
    let mut edge = genesis(limits::MAX_POW_BITS);
    edge.network = "n".repeat(limits::MAX_NETWORK_NAME);
    edge.roster[0].role = "r".repeat(limits::MAX_ROSTER_TEXT);
    edge.roster[0].encryption = Some(MemberEncryption::bind(&keys()[0], key));
    assert_eq!(edge.check(), Ok(()));
    assert_eq!(Genesis::decode(&edge.encode()), Ok(edge));
}

// ----- reloading, validating, syncing ------------------------------------------------------

#[test]
fn a_ledger_reloads_from_its_store_without_rechecking_signatures() {
    let k = keys();
    let mut clock = Clock::new();
    let mut original = ledger(2);
    let mut blocks = Vec::new();
    for i in 0..4 {
        let now = clock.tick();
        send(&mut original, &k[i], TxBody::App(Op::Claim(i as u16)), now);
        send(&mut original, &k[i + 1], pay(k[i].account(), 9), now);
        blocks.push(mine_and_submit(&mut original, &k[i], now));
    }
    let mut store = MemoryBodies::default();
    let stored: Vec<Arc<TestBlock>> = blocks.iter().map(|b| Arc::new(b.clone())).collect();
    for block in &stored {
        store.insert(Arc::clone(block));
    }
    let mut reloaded = Ledger::with_store(genesis(2), Counter, store).unwrap();
    for block in &stored {
        let outcome = reloaded.submit(
            ledger_core::BlockInput::Stored(Arc::clone(block)),
            ledger_core::Timestamp(0),
        );
        assert!(accepted(&outcome), "{:?}", outcome.invalid);
    }
    assert_eq!(reloaded.tip(), original.tip());
    assert_eq!(reloaded.state(), original.state());
    assert_eq!(reloaded.store().len(), blocks.len());
    assert_consistent(&reloaded);
}

#[test]
fn validate_block_checks_everything_and_changes_nothing() {
    let k = keys();
    let mut ledger = ledger(2);
    let now = Clock::new().now();
    send(&mut ledger, &k[0], TxBody::App(Op::Claim(4)), now);
    let block = ledger.mine_block(&k[1], now);
    let before = ledger.state().clone();
    let validated = ledger.validate_block(block.clone(), now).expect("valid");
    assert_eq!(validated.hash(), block.hash());
    assert_eq!(validated.tx_ids(), &[block.transactions[0].id()]);
    assert_eq!(**validated.block(), block);
    assert_eq!(ledger.state(), &before);
    assert_eq!(ledger.tip().hash, ledger.genesis_hash());
    let mut wrong = block.clone();
    wrong.rewards.clear();
    let wrong = reseal(wrong, &k[1], 2);
    assert!(matches!(
        ledger.validate_block(wrong, now),
        Err(BlockError::RewardMissing { .. })
    ));
    assert_eq!(ledger.state(), &before);
    mine_and_submit(&mut ledger, &k[1], now);
    // Not on the tip any more.
    assert!(ledger.validate_block(block, now).is_err());
}

#[test]
fn locators_lead_a_lagging_node_to_the_blocks_it_lacks() {
    let k = keys();
    let mut clock = Clock::new();
    let mut ahead = ledger(0);
    let mut blocks = Vec::new();
    for _ in 0..40 {
        blocks.push(mine_and_submit(&mut ahead, &k[0], clock.tick()));
    }
    let behind = ledger_with(&genesis(0), &blocks[..25], late());
    let locator = behind.locator();
    assert_eq!(locator.first(), Some(&behind.tip().hash));
    assert_eq!(locator.last(), Some(&behind.genesis_hash()));
    assert!(locator.len() <= limits::MAX_LOCATOR_HASHES);
    let next = ahead.hashes_after(&locator, 10);
    let expected: Vec<BlockHash> = blocks[25..35].iter().map(TestBlock::hash).collect();
    assert_eq!(next, expected);
    // A node on a branch the other does not know is answered from the fork point.
    let mut side = ledger_with(&genesis(0), &blocks[..10], late());
    mine_and_submit(&mut side, &k[1], clock.tick());
    let from_fork = ahead.hashes_after(&side.locator(), 3);
    assert_eq!(
        from_fork,
        blocks[10..13]
            .iter()
            .map(TestBlock::hash)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ahead.hashes_after(&[], 2),
        blocks[..2].iter().map(TestBlock::hash).collect::<Vec<_>>()
    );
}

// ----- producing blocks within the limits --------------------------------------------------

/// A policy whose payload asks for that many rewards of one unit each.
struct ManyRewards;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("never")]
struct Never;

impl ledger_core::Policy for ManyRewards {
    type Payload = u16;
    type State = u64;
    type Undo = ();
    type Error = Never;
    fn genesis_state(&self, _: &Genesis) -> u64 {
        0
    }
    fn apply(
        &self,
        ctx: &ledger_core::TxContext<'_>,
        state: &mut u64,
        count: &u16,
    ) -> Result<ledger_core::Applied<()>, Never> {
        *state += 1;
        Ok(ledger_core::Applied {
            undo: (),
            rewards: vec![(ctx.author, Amount(1)); usize::from(*count)],
        })
    }
    fn undo(&self, state: &mut u64, _: ()) {
        *state -= 1;
    }
}

#[test]
fn templates_respect_the_reward_limit_when_a_payload_earns_many() {
    let k = keys();
    let mut genesis = genesis(0);
    genesis.balances.retain(|(a, _)| *a != reserve());
    genesis.balances.push((reserve(), Amount(1_000_000)));
    let mut ledger = Ledger::new(genesis, ManyRewards).unwrap();
    let now = Clock::new().now();
    let half = (limits::MAX_REWARDS_PER_BLOCK / 2 + 1) as u16;
    for (i, count) in [3, half, half, 2].into_iter().enumerate() {
        let tx = Transaction::new_signed(&ledger.genesis_hash(), &k[i], 1, now, TxBody::App(count));
        ledger.submit_transaction(tx, now).unwrap();
    }
    // The first two fit (3 + half rewards); the third would pass the limit.
    let block = ledger.mine_block(&k[0], now);
    assert_eq!(block.transactions.len(), 2);
    assert_eq!(block.rewards.len(), 3 + usize::from(half));
    let outcome = ledger.submit(block, now);
    assert!(
        outcome.status == BlockStatus::Accepted,
        "{:?}",
        outcome.invalid
    );
    // The rest follow in the next block.
    let block = ledger.mine_block(&k[0], now);
    assert_eq!(block.rewards.len(), usize::from(half) + 2);
    assert!(ledger.submit(block, now).status == BlockStatus::Accepted);
    assert_eq!(ledger.mempool().len(), 0);
    assert_eq!(*ledger.state().app(), 4);
}

#[test]
fn an_untrusted_orphan_is_fully_checked_even_when_a_stored_parent_unlocks_it() {
    let k = keys();
    let mut source = ledger(2);
    let now = Clock::new().now();
    let b1 = mine_and_submit(&mut source, &k[0], now);
    let mut forged = tx(&source, &k[1], pay(k[2].account(), 5), now);
    forged.body = pay(k[3].account(), 500);
    let b2 = raw_block(b1.hash(), 2, now, &k[0], vec![forged.clone()], vec![], 2);

    let mut store = MemoryBodies::default();
    let stored = Arc::new(b1.clone());
    store.insert(Arc::clone(&stored));
    let mut ledger = Ledger::with_store(genesis(2), Counter, store).unwrap();
    assert!(matches!(
        ledger.submit(b2.clone(), late()).status,
        BlockStatus::Orphan { .. }
    ));
    let outcome = ledger.submit(
        ledger_core::BlockInput::Stored(stored),
        ledger_core::Timestamp(0),
    );
    assert_eq!(outcome.accepted, vec![b1.hash()]);
    let (hash, error) = outcome
        .invalid
        .first()
        .expect("the forged orphan is refused");
    assert_eq!(*hash, b2.hash());
    assert_eq!(
        tx_error(error.clone()),
        (0, TxError::BadSignature { tx: forged.id() })
    );
    assert_eq!(ledger.tip().hash, b1.hash());
    assert_eq!(ledger.balance(&k[3].account()), Amount(FUNDS));
}

#[test]
fn orphans_waiting_below_an_invalid_block_are_discarded_when_it_is_found_out() {
    let k = keys();
    let mut clock = Clock::new();
    let (mut ledger, a) = chain(2, &k[0], "a", &mut clock);
    let a2 = a[1].hash();
    // A side branch X (overdraws) ← Y ← Z ← W, and X ← Y2 ← V. Y and Y2 tie with a2 and
    // are sealed to lose the tie, so that only V (height 3) triggers the switch.
    let mut time = clock.now().0;
    let mut losing = |prev: BlockHash, height: u64, producer: &Keypair, txs: Vec<TestTx>| {
        loop {
            time += 1;
            let block = raw_block(
                prev,
                height,
                Timestamp(time),
                producer,
                txs.clone(),
                vec![],
                2,
            );
            if height != 2 || block.hash() > a2 {
                return block;
            }
        }
    };
    let overdraw = signed(&ledger, &k[3], 1, pay(k[4].account(), 100 * FUNDS));
    let x = losing(ledger.genesis_hash(), 1, &k[1], vec![overdraw]);
    let y = losing(x.hash(), 2, &k[1], vec![]);
    let y2 = losing(x.hash(), 2, &k[2], vec![]);
    let v = losing(y2.hash(), 3, &k[2], vec![]);
    let z = losing(y.hash(), 3, &k[1], vec![]);
    let w = losing(z.hash(), 4, &k[1], vec![]);
    for block in [&x, &y, &y2] {
        assert!(accepted(&ledger.submit(block.clone(), late())));
    }
    assert!(matches!(
        ledger.submit(w.clone(), late()).status,
        BlockStatus::Orphan { .. }
    ));
    let outcome = ledger.submit(v.clone(), late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert_eq!(ledger.tip().hash, a2);
    // Z's parent Y went with X: Z is refused at once, and W, waiting for Z, with it.
    let outcome = ledger.submit(z.clone(), late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert!(outcome.invalid.iter().any(|(h, _)| *h == w.hash()));
    assert_eq!(ledger.orphan_count(), 0);
    assert!(matches!(
        reject(&mut ledger, w, late()),
        BlockError::KnownInvalid { .. }
    ));
}

#[test]
fn into_result_gives_the_submitted_blocks_own_reason_when_orphans_fall_with_it() {
    let k = keys();
    let mut ledger = ledger(2);
    let overdraw = signed(&ledger, &k[0], 1, pay(k[1].account(), FUNDS + 1));
    let bad = on_genesis(&ledger, &k[0], vec![overdraw.clone()], vec![]);
    let child = raw_block(bad.hash(), 2, Clock::new().now(), &k[0], vec![], vec![], 2);
    assert!(matches!(
        ledger.submit(child, late()).status,
        BlockStatus::Orphan { .. }
    ));
    let error = ledger
        .submit(bad.clone(), late())
        .into_result()
        .unwrap_err();
    assert_eq!(error.block(), bad.hash());
    assert!(
        matches!(
            error,
            BlockError::Transaction {
                index: 0,
                error: TxError::Overdraft { .. },
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_mangled_copy_of_an_orphan_does_not_take_the_genuine_ones_place() {
    let k = keys();
    let mut source = ledger(2);
    let mut clock = Clock::new();
    let parent = mine_and_submit(&mut source, &k[0], clock.tick());
    let now = clock.tick();
    send(&mut source, &k[1], pay(k[2].account(), 5), now);
    let child = mine_and_submit(&mut source, &k[0], now);
    let mut ledger = ledger(2);
    let mut emptied = child.clone();
    emptied.transactions.clear();
    let mut resigned = child.clone();
    resigned.signature = k[3].sign(&block_signing_message(&child.hash()));
    for copy in [emptied, resigned] {
        let outcome = ledger.submit(copy, late());
        assert_eq!(
            outcome.status,
            BlockStatus::Invalid,
            "{:?}",
            outcome.invalid
        );
        assert_eq!(ledger.orphan_count(), 0);
    }
    let outcome = ledger.submit(child.clone(), late());
    assert_eq!(
        outcome.status,
        BlockStatus::Orphan {
            missing: parent.hash()
        }
    );
    assert!(accepted(&ledger.submit(parent, late())));
    assert_eq!(ledger.tip().hash, child.hash());
    assert_eq!(ledger.state(), source.state());
}

#[test]
fn signatures_preverified_for_another_network_are_not_trusted() {
    let k = keys();
    let mut home = ledger(2);
    let mut other_genesis = genesis(2);
    other_genesis.network = "another-network".into();
    let mut other = Ledger::new(other_genesis, Counter).unwrap();
    let now = Clock::new().now();
    // A transfer signed for the other network, in a block of the other network.
    send(&mut other, &k[0], pay(k[1].account(), 400), now);
    let theirs = Arc::new(other.mine_block(&k[0], now));
    let foreign = theirs.transactions[0].clone();
    let verified = ledger_core::preverify(&other.genesis_hash(), &[Arc::clone(&theirs)]);
    assert_eq!(verified.len(), 2);
    home.accept_preverified(verified);
    // The same transaction in a block of this network must still fail its signature.
    let block = on_genesis(&home, &k[0], vec![foreign.clone()], vec![]);
    let (_, error) = tx_error(reject(&mut home, block, late()));
    assert_eq!(error, TxError::BadSignature { tx: foreign.id() });
    assert!(matches!(
        home.submit_transaction(foreign, now),
        Err(TxError::BadSignature { .. })
    ));
}

#[test]
fn a_reorganisation_never_grows_the_mempool_past_its_capacity() {
    let k = keys();
    let mut clock = Clock::new();
    let mut ledger = ledger(0);
    let now = clock.tick();
    let mut mined = Vec::new();
    for i in 0..10 {
        mined.push(send(&mut ledger, &k[0], pay(k[1].account(), 1 + i), now));
    }
    let b1 = mine_and_submit(&mut ledger, &k[0], now);
    // A heavier branch without those transactions.
    let mut rival = ledger_with(&genesis(0), &[], late());
    let c = [
        mine_and_submit(&mut rival, &k[2], clock.tick()),
        mine_and_submit(&mut rival, &k[2], clock.tick()),
    ];
    // Fill the mempool to five short of its capacity.
    let genesis_hash = ledger.genesis_hash();
    for nonce in 1..=(limits::MAX_MEMPOOL_TXS - 5) as u64 {
        let note = TxBody::App(Op::Note(String::new()));
        let tx = Transaction::new_signed(&genesis_hash, &k[3], nonce, now, note);
        ledger.submit_transaction(tx, now).expect("room left");
    }
    let mut changes = Vec::new();
    for block in c {
        changes.extend(ledger.submit(block, late()).tip_changes);
    }
    let reorg = changes
        .iter()
        .find(|c| c.is_reorg())
        .expect("switched to the rival");
    assert_eq!(reorg.disconnected, vec![b1.hash()]);
    assert_eq!(ledger.mempool().len(), limits::MAX_MEMPOOL_TXS);
    let full: Vec<_> = reorg
        .dropped
        .iter()
        .filter(|e| matches!(e, TxError::MempoolFull { .. }))
        .collect();
    assert_eq!(full.len(), 5);
    // Nothing is lost: each transaction of b1 is pending or reported.
    for id in &mined {
        assert!(ledger.is_pending(id) || reorg.dropped.iter().any(|e| e.tx() == *id));
    }
    // A full pool refuses new transactions.
    let one_more = tx(&ledger, &k[4], pay(k[0].account(), 1), now);
    assert_eq!(
        ledger.submit_transaction(one_more.clone(), now),
        Err(TxError::MempoolFull {
            tx: one_more.id(),
            capacity: limits::MAX_MEMPOOL_TXS
        })
    );
}

#[test]
fn the_last_possible_nonce_is_usable_and_ends_the_account() {
    let k = keys();
    let mut ledger = ledger(0);
    let now = Clock::new().now();
    let last = Transaction::new_signed(
        &ledger.genesis_hash(),
        &k[0],
        u64::MAX,
        now,
        pay(k[1].account(), 1),
    );
    submit_tx(&mut ledger, last, now);
    // No nonce is above it: asking for the next one must not overflow.
    assert_eq!(ledger.next_nonce(&k[0].account()), u64::MAX);
    mine_and_submit(&mut ledger, &k[0], now);
    assert_eq!(ledger.next_nonce(&k[0].account()), u64::MAX);
    let again = tx(&ledger, &k[0], pay(k[1].account(), 1), now);
    assert!(matches!(
        ledger.submit_transaction(again, now),
        Err(TxError::StaleNonce { .. })
    ));
}

// ----- what the policy and callers see -----------------------------------------------------

#[test]
fn the_policy_sees_each_authors_roster_entry_and_the_state_lists_every_balance() {
    let k = keys();
    let mut ledger = ledger(2);
    let now = Clock::new().now();
    send(&mut ledger, &k[0], TxBody::App(Op::Add(1)), now);
    send(&mut ledger, &k[1], TxBody::App(Op::Add(2)), now);
    // Not in the roster: the policy is told so (no roster entry).
    send(&mut ledger, &k[3], TxBody::App(Op::Add(3)), now);
    send(&mut ledger, &k[4], pay(k[0].account(), 10), now);
    mine_and_submit(&mut ledger, &k[2], now);

    let seen = &ledger.state().app().roles_seen;
    assert_eq!(
        seen.get(&k[0].account()).map(String::as_str),
        Some("doctor")
    );
    assert_eq!(seen.get(&k[1].account()).map(String::as_str), Some("lab"));
    assert!(!seen.contains_key(&k[3].account()), "{seen:?}");
    assert_eq!(seen.len(), 2);

    // Every account that holds e-cash is listed, with the amount `balance` gives, and
    // the list adds up to the supply.
    let listed: std::collections::BTreeMap<_, _> = ledger
        .state()
        .balances()
        .map(|(account, amount)| (*account, *amount))
        .collect();
    for key in &k {
        assert_eq!(
            listed.get(&key.account()).copied().unwrap_or(Amount::ZERO),
            ledger.balance(&key.account())
        );
    }
    assert_eq!(
        listed.get(&k[4].account()),
        Some(&Amount(FUNDS - 10)),
        "the payer's transfer is in the list"
    );
    let total: u64 = listed.values().map(|a| a.units()).sum();
    assert_eq!(total, genesis_supply(ledger.genesis()));
}

#[test]
fn a_branch_that_fails_beyond_a_better_valid_prefix_keeps_the_prefix() {
    // Reached after a switch to the prefix could not read a body: the ledger stayed on
    // the old chain, and the next block extends the branch with an invalid one.
    let k = keys();
    let store = FlakyStore::default();
    let mut ledger = Ledger::with_store(genesis(2), Counter, store.clone()).unwrap();
    let mut clock = Clock::new();
    let now = clock.tick();
    let a1 = ledger.mine_block(&k[0], now);
    let outcome = ledger.submit(a1.clone(), now);
    store.persist(&mut ledger, &outcome.accepted);
    let mut rival = self::ledger(2);
    let b1 = mine_and_submit(&mut rival, &k[1], now);
    let b2 = mine_and_submit(&mut rival, &k[1], clock.tick());
    // Well formed and signed, but an overdraft on the branch.
    let overdraft = tx(
        &rival,
        &k[3],
        pay(k[0].account(), FUNDS * 100),
        clock.tick(),
    );
    let b3 = raw_block(
        b2.hash(),
        3,
        clock.tick(),
        &k[1],
        vec![overdraft],
        vec![],
        2,
    );

    store.failing.store(true, Ordering::SeqCst);
    let mut faulted = false;
    for block in [&b1, &b2] {
        faulted |= ledger.submit(block.clone(), late()).fault.is_some();
    }
    assert!(faulted);
    assert_eq!(ledger.tip().hash, a1.hash());

    store.failing.store(false, Ordering::SeqCst);
    let outcome = ledger.submit(b3.clone(), late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert!(outcome.invalid.iter().any(|(h, _)| *h == b3.hash()));
    // The valid part of the branch beats the old chain, and stays.
    assert_eq!(ledger.tip(), rival.tip());
    assert_eq!(ledger.state(), rival.state());
    assert!(
        outcome
            .tip_changes
            .iter()
            .any(|c| c.is_reorg() && c.new_tip == b2.hash())
    );
    assert!(
        ledger.height_of(&b3.hash()).is_none(),
        "the invalid block left the tree"
    );
}

#[test]
fn replay_tells_a_lost_body_from_an_unreadable_store() {
    let k = keys();
    let store = FlakyStore::default();
    let mut ledger = Ledger::with_store(genesis(2), Counter, store.clone()).unwrap();
    let now = Clock::new().now();
    let a1 = ledger.mine_block(&k[0], now);
    let outcome = ledger.submit(a1.clone(), now);
    // Reported stored, but the store lost it.
    ledger.mark_stored(outcome.accepted.iter().copied());
    assert!(
        matches!(ledger.replay_from_genesis(), Err(ledger_core::ReplayError::MissingBody(h)) if h == a1.hash())
    );
    store.inner.lock().unwrap().insert(Arc::new(a1.clone()));
    assert!(ledger.replay_from_genesis().is_ok());
    store.failing.store(true, Ordering::SeqCst);
    assert!(
        matches!(ledger.replay_from_genesis(), Err(ledger_core::ReplayError::Unreadable(f)) if f.block == a1.hash())
    );
}
