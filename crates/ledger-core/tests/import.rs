//! Bulk import: signatures verified ahead of validation, overlapped with it, must give
//! exactly what block-by-block submission gives, and must never let a bad signature in.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::sync::Arc;

use common::*;
use ledger_core::{
    AccountId, Block, BlockError, BlockStatus, Keypair, Ledger, PreparedBlock, Timestamp,
    Transaction, TxError, limits, prepare_and_verify, prepare_blocks, preverify,
};

/// A chain of `blocks` blocks, each with a transfer from every key.
fn chain(blocks: usize) -> (ledger_core::Genesis, Vec<Arc<TestBlock>>) {
    let genesis = genesis(0);
    let mut ledger = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
    let keys = keys();
    let mut clock = Clock::new();
    let mut out = Vec::new();
    for height in 0..blocks {
        let now = clock.tick();
        for (i, from) in keys.iter().enumerate() {
            let to = keys[(i + 1) % keys.len()].account();
            send(&mut ledger, from, pay(to, 1), now);
        }
        let producer = &keys[height % keys.len()];
        out.push(Arc::new(mine_and_submit(&mut ledger, producer, now)));
    }
    (genesis, out)
}

#[test]
fn import_equals_block_by_block_submission() {
    // More blocks than one import batch, so the overlapped path runs.
    let (genesis, blocks) = chain(limits::IMPORT_BATCH * 2 + 3);
    let plain: Vec<TestBlock> = blocks.iter().map(|b| Block::clone(b)).collect();
    let one_by_one = ledger_with(&genesis, &plain, late());

    let mut imported = Ledger::new(genesis, Counter).expect("valid genesis");
    let outcomes = imported.import_blocks(&blocks, late());
    assert!(outcomes.iter().all(|o| o.status == BlockStatus::Accepted));
    assert_eq!(imported.tip(), one_by_one.tip());
    assert_eq!(imported.state(), one_by_one.state());
    assert_consistent(&imported);
}

#[test]
fn preverify_counts_only_valid_signatures() {
    let (genesis, blocks) = chain(3);
    let net = genesis.hash();
    let all = preverify(&net, &blocks);
    // Every transaction plus every producer signature.
    let expected: usize = blocks.iter().map(|b| b.transactions.len() + 1).sum();
    assert_eq!(all.len(), expected);
    // On another network the transaction signatures do not verify; the producers' do
    // (they sign the block hash, which already names the network through its links).
    let other = ledger_core::BlockHash::from_hash(ledger_core::Hash::of(b"another network"));
    assert_eq!(preverify(&other, &blocks).len(), blocks.len());
}

#[test]
fn a_forged_signature_in_a_batch_is_refused_with_its_block_and_index() {
    let (genesis, blocks) = chain(limits::IMPORT_BATCH + 5);
    let mut forged: Vec<Arc<TestBlock>> = blocks.clone();
    let victim = limits::IMPORT_BATCH + 2;
    let mut block = Block::clone(&forged[victim]);
    block.transactions[1].signature.0[5] ^= 1;
    let producer = keys()
        .into_iter()
        .find(|k| k.account() == block.header.producer)
        .expect("a test key produced it");
    let block = reseal(block, &producer, 0);
    let bad_hash = block.hash();
    let bad_tx = block.transactions[1].id();
    forged[victim] = Arc::new(block);

    let mut ledger = Ledger::new(genesis, Counter).expect("valid genesis");
    let outcomes = ledger.import_blocks(&forged, late());
    assert!(
        outcomes[..victim]
            .iter()
            .all(|o| o.status == BlockStatus::Accepted)
    );
    assert_eq!(outcomes[victim].status, BlockStatus::Invalid);
    let (_, error) = &outcomes[victim].invalid[0];
    assert_eq!(
        error,
        &BlockError::Transaction {
            block: bad_hash,
            index: 1,
            error: TxError::BadSignature { tx: bad_tx },
        }
    );
    // Its descendants name the genuine block, which never arrived: they wait as orphans
    // and the chain stops just before the forgery.
    let genuine = blocks[victim].hash();
    assert_eq!(
        outcomes[victim + 1].status,
        BlockStatus::Orphan { missing: genuine }
    );
    assert!(
        outcomes[victim + 2..]
            .iter()
            .all(|o| matches!(o.status, BlockStatus::Orphan { .. }))
    );
    assert_eq!(ledger.tip().height.0 as usize, victim);
    assert_consistent(&ledger);
}

#[test]
fn prepared_submission_equals_plain_submission() {
    let (genesis, blocks) = chain(5);
    let plain: Vec<TestBlock> = blocks.iter().map(|b| Block::clone(b)).collect();
    let one_by_one = ledger_with(&genesis, &plain, late());

    let mut prepared = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
    for p in prepare_blocks(&blocks) {
        assert_eq!(p.hash(), p.block().hash());
        let ids: Vec<_> = p.block().transactions.iter().map(|t| t.id()).collect();
        assert_eq!(p.tx_ids(), ids.as_slice());
        assert_eq!(
            p.encoded_len(),
            ledger_core::codec::encoded_len(&**p.block())
        );
        assert_eq!(prepared.submit(p, late()).status, BlockStatus::Accepted);
    }
    assert_eq!(prepared.tip(), one_by_one.tip());
    assert_eq!(prepared.state(), one_by_one.state());

    // A node's own store: the same, signatures not checked again.
    let mut stored = Ledger::new(genesis, Counter).expect("valid genesis");
    for p in prepare_blocks(&blocks) {
        assert!(accepted(&stored.submit(
            ledger_core::BlockInput::StoredPrepared(p),
            ledger_core::Timestamp(0)
        )));
    }
    assert_eq!(stored.tip(), one_by_one.tip());
    assert_eq!(stored.state(), one_by_one.state());
}

/// Every check a prepared block skips recomputing still runs: each bad block gets the
/// same error prepared as plain.
#[test]
fn prepared_blocks_are_refused_exactly_as_plain_ones() {
    let (genesis, blocks) = chain(2);
    let keys = keys();
    let producer = keys
        .iter()
        .find(|k| k.account() == blocks[1].header.producer)
        .expect("a test key produced it");
    let mut bad: Vec<TestBlock> = Vec::new();
    // A body the header does not name (Merkle root).
    let mut mangled = Block::clone(&blocks[1]);
    mangled.transactions.swap(0, 1);
    bad.push(mangled);
    // The same transaction twice, resealed so only the repeat is wrong.
    let mut repeated = Block::clone(&blocks[1]);
    let first = repeated.transactions[0].clone();
    repeated.transactions.push(first);
    bad.push(remine(repeated, producer, 0));
    // A forged signature, resealed.
    let mut forged = Block::clone(&blocks[1]);
    forged.transactions[2].signature.0[7] ^= 1;
    bad.push(reseal(forged, producer, 0));

    for block in bad {
        let mut plain = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
        let mut prepared = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
        for ledger in [&mut plain, &mut prepared] {
            assert!(accepted(&ledger.submit(Block::clone(&blocks[0]), late())));
        }
        let expected = plain.submit(block.clone(), late());
        assert_eq!(expected.status, BlockStatus::Invalid);
        assert!(matches!(
            expected.invalid[0].1,
            BlockError::MerkleMismatch { .. }
                | BlockError::Transaction {
                    error: TxError::Duplicate { .. } | TxError::BadSignature { .. },
                    ..
                }
        ));
        let found = prepared.submit(PreparedBlock::new(Arc::new(block)), late());
        assert_eq!(found.status, expected.status);
        assert_eq!(found.invalid, expected.invalid);
        assert_eq!(prepared.tip(), plain.tip());
    }
}

#[test]
fn a_stream_import_stops_when_asked_and_reads_at_most_two_batches_ahead() {
    let (genesis, blocks) = chain(limits::IMPORT_BATCH * 3 + 3);
    let stop_after = limits::IMPORT_BATCH / 2;
    let read = std::sync::atomic::AtomicUsize::new(0);
    let stream = blocks.iter().map(|b| {
        read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::clone(b)
    });
    let mut ledger = Ledger::new(genesis, Counter).expect("valid genesis");
    let mut seen = 0;
    ledger.import_stream(stream, late(), |block, outcome| {
        assert_eq!(outcome.status, BlockStatus::Accepted);
        assert_eq!(block.hash(), blocks[seen].hash());
        seen += 1;
        if seen == stop_after {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    assert_eq!(seen, stop_after);
    assert_eq!(ledger.tip().height.0 as usize, stop_after);
    // The batch being applied and, at most, the one verified and the one read beside it.
    assert!(read.load(std::sync::atomic::Ordering::Relaxed) <= 3 * limits::IMPORT_BATCH);
    assert_consistent(&ledger);
}

/// Blocks prepared and verified off the ledger (as a syncing node's verifier does):
/// accepted as plain submission accepts them, a forged signature still refused, and
/// signatures verified for another network not trusted.
#[test]
fn blocks_verified_off_the_ledger_are_trusted_only_for_their_network() {
    let (genesis, blocks) = chain(4);
    let net = genesis.hash();
    let mut ledger = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
    for prepared in prepare_and_verify(&net, &blocks[..2]) {
        assert!(accepted(&ledger.submit(prepared, late())));
    }

    let mut forged = Block::clone(&blocks[2]);
    forged.transactions[0].signature.0[3] ^= 1;
    let producer = keys()
        .into_iter()
        .find(|k| k.account() == forged.header.producer)
        .expect("a test key produced it");
    let forged = Arc::new(reseal(forged, &producer, 0));
    let bad_tx = forged.transactions[0].id();
    let [prepared] = <[_; 1]>::try_from(prepare_and_verify(&net, &[forged])).expect("one");
    let outcome = ledger.submit(prepared, late());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert!(matches!(
        outcome.invalid[0].1,
        BlockError::Transaction {
            index: 0,
            error: TxError::BadSignature { tx },
            ..
        } if tx == bad_tx
    ));

    // Verified for another network: the flag does not carry over, so this ledger checks
    // the signatures itself; they are genuine here, so the block is accepted.
    let other = ledger_core::BlockHash::from_hash(ledger_core::Hash::of(b"another network"));
    let [prepared] = <[_; 1]>::try_from(prepare_and_verify(&other, &blocks[2..3])).expect("one");
    assert!(accepted(&ledger.submit(prepared, late())));
    assert_eq!(ledger.tip().hash, blocks[2].hash());
    assert_consistent(&ledger);
}

/// Blocks with a few signers and with more than are told apart by comparing ids:
/// every signature is checked against its own author's key, and a forged one and one
/// by an unusable key are not counted.
#[test]
fn preverification_checks_each_signature_against_its_author() {
    for signers in [3u8, 40] {
        let network = genesis(0).hash();
        let keys: Vec<Keypair> = (0..signers)
            .map(|i| Keypair::from_seed([100 + i; 32]))
            .collect();
        let when = Timestamp(1_000);
        let sign = |k: &Keypair, nonce| {
            Transaction::new_signed(&network, k, nonce, when, pay(k.account(), 1))
        };
        // Two transactions from each signer, then one forged and one unusable.
        let mut txs: Vec<TestTx> = (1..=2)
            .flat_map(|nonce| keys.iter().map(move |k| (k, nonce)))
            .map(|(k, nonce)| sign(k, nonce))
            .collect();
        let mut forged = sign(&keys[1], 3);
        forged.signature = txs[0].signature;
        let mut unusable = sign(&keys[0], 4);
        unusable.author = AccountId([0xff; 32]);
        txs.extend([forged, unusable]);
        let block = raw_block(network, 1, when, &keys[0], txs, vec![], 0);
        let verified = preverify(&network, &[Arc::new(block)]);
        // The producer's signature and the two from each signer.
        assert_eq!(
            verified.len(),
            1 + 2 * usize::from(signers),
            "{signers} signers"
        );
    }
}
