//! What refusing invalid signatures costs next to accepting valid ones.
//!
//! A peer that sends blocks full of bad signatures must not cost a node more than a
//! small multiple of what good blocks cost: a batch that fails is split in halves
//! instead of being re-run after each bad signature. Both benchmarks verify 2,000
//! transaction signatures (and the producer's) with `preverify`, the pure path a
//! syncing node takes: `accept_valid` where all are valid, `refuse_invalid` where every
//! transaction signature is invalid (signed by the right key over the wrong message).
//! After criterion's figures it prints the ratio (target: at most 8), from medians of
//! interleaved runs.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use healthchain::ledger_core::{
    Amount, Block, BlockHash, BlockHeader, Hash, Height, Keypair, Timestamp, Transaction, TxBody,
    preverify,
};
use support::{median, timed};

/// Signatures in each benchmark's block.
const SIGNATURES: usize = 2_000;

/// Distinct signers, as on a busy network.
const SIGNERS: usize = 100;

/// A block of `SIGNATURES` transfers on the network `genesis`; with `forged`, every
/// transaction is signed over the wrong message.
fn block(genesis: &BlockHash, forged: bool) -> Arc<Block<()>> {
    let keys: Vec<Keypair> = (0..SIGNERS)
        .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
        .collect();
    let transactions = (0..SIGNATURES)
        .map(|i| {
            let from = &keys[i % SIGNERS];
            let body = TxBody::Transfer {
                to: keys[(i + 1) % SIGNERS].account(),
                amount: Amount(1),
            };
            let nonce = (i / SIGNERS) as u64 + 1;
            let mut tx = Transaction::new_signed(genesis, from, nonce, Timestamp(1), body);
            if forged {
                tx.signature = from.sign(b"not this transaction");
            }
            tx
        })
        .collect();
    let producer = &keys[0];
    let mut block = Block {
        header: BlockHeader {
            height: Height(1),
            prev: *genesis,
            merkle_root: Hash::ZERO,
            timestamp: Timestamp(1),
            producer: producer.account(),
            nonce: 0,
        },
        signature: Default::default(),
        transactions,
        rewards: Vec::new(),
    };
    block.header.merkle_root =
        healthchain::ledger_core::merkle::merkle_root(&block.merkle_entries());
    let mut message = b"healthchain/blk/".to_vec();
    message.extend_from_slice(block.hash().hash().as_bytes());
    block.signature = producer.sign(&message);
    Arc::new(block)
}

fn bench(c: &mut Criterion) {
    let genesis = BlockHash::from_hash(Hash::of(b"signature bench network"));
    let valid = [block(&genesis, false)];
    let invalid = [block(&genesis, true)];
    let accept = || {
        let verified = preverify(&genesis, black_box(&valid));
        assert_eq!(verified.len(), SIGNATURES + 1, "all valid");
    };
    let refuse = || {
        let verified = preverify(&genesis, black_box(&invalid));
        assert_eq!(verified.len(), 1, "only the producer's signature is valid");
    };
    let mut group = c.benchmark_group("signatures");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SIGNATURES as u64 + 1));
    group.bench_function("accept_valid", |b| b.iter(accept));
    group.bench_function("refuse_invalid", |b| b.iter(refuse));
    group.finish();

    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for _ in 0..RATIO_RUNS {
        good.push(timed(accept));
        bad.push(timed(refuse));
    }
    let (good, bad) = (median(good), median(bad));
    println!(
        "signatures ratio (medians of {RATIO_RUNS} runs): refusing {SIGNATURES} invalid / \
         accepting {SIGNATURES} valid = {:.1} ms / {:.1} ms = {:.2} (target <= 8)",
        bad * 1e3,
        good * 1e3,
        bad / good
    );
}

/// Runs of each measure behind the printed ratio.
const RATIO_RUNS: usize = 9;

criterion_group!(benches, bench);
criterion_main!(benches);
