//! What the network path of a busy node costs: batched mempool admission against one
//! verification per transaction, and rebuilding an announced block from the mempool
//! (compact relay) against decoding it whole.
//!
//! After criterion's figures it prints, from medians of interleaved runs, the ratio of
//! admitting 1,024 transfers one by one to admitting them as one batch, and the bytes
//! and time of a 5,000-transaction block announced whole and compact.

mod support;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
use healthchain::ledger_core::{
    AccountId, Amount, Block, BlockHash, BlockHeader, Genesis, Hash, Height, Keypair, Screen,
    Timestamp, Transaction, TxBody, TxId,
};
use healthchain::p2p::compact::{CompactBlock, Reassembly, Rebuilt};
use healthchain::p2p::protocol::{Message, decode_message};
use support::{median, timed};

/// Transactions in one admission batch: below the size at which a node spreads a batch
/// over its cores, as under a steady load.
const BATCH: usize = 1_024;

/// Transactions in the announced block: a 500 ms block at 10,000 a second.
const BLOCK_TXS: usize = 5_000;

/// Distinct signers.
const SIGNERS: usize = 512;

fn transfers(genesis: &BlockHash, count: usize) -> Vec<Transaction<()>> {
    let keys: Vec<Keypair> = (0..SIGNERS)
        .map(|i| Keypair::from_seed(*Hash::of(&(i as u64).to_le_bytes()).as_bytes()))
        .collect();
    (0..count)
        .map(|i| {
            let body = TxBody::Transfer {
                to: keys[(i + 1) % SIGNERS].account(),
                amount: Amount(1),
            };
            let nonce = (i / SIGNERS) as u64 + 1;
            Transaction::new_signed(genesis, &keys[i % SIGNERS], nonce, Timestamp(1), body)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let network = Genesis {
        network: "relay-bench".into(),
        timestamp: Timestamp(0),
        pow_bits: 0,
        producers: None,
        roster: Vec::new(),
        balances: Vec::new(),
        reserve: Keypair::from_seed([9; 32]).account(),
        parameters: Default::default(),
    };
    let genesis = network.hash();
    let screen = Screen::new(&network);
    let batch = transfers(&genesis, BATCH);
    let batched = || {
        let verified = screen.preverify_txs(black_box(&batch));
        assert_eq!(verified.len(), BATCH);
    };
    // One check per transaction with its key decompressed once, as the ledger's own
    // path does with its key cache: what admission did before batches.
    let keys: HashMap<AccountId, VerificationKey> = batch
        .iter()
        .map(|tx| {
            let bytes = VerificationKeyBytes::from(*tx.author.as_bytes());
            (
                tx.author,
                VerificationKey::try_from(bytes).expect("a usable key"),
            )
        })
        .collect();
    let one_by_one = || {
        for tx in black_box(&batch) {
            let signature = ed25519_zebra::Signature::from(tx.signature.0);
            let message = tx.signing_bytes(&genesis);
            assert!(keys[&tx.author].verify(&signature, &message).is_ok());
        }
    };

    let block = Block {
        header: BlockHeader {
            height: Height(1),
            prev: genesis,
            merkle_root: Hash::ZERO,
            timestamp: Timestamp(1),
            producer: Keypair::from_seed([1; 32]).account(),
            nonce: 0,
        },
        signature: Default::default(),
        transactions: transfers(&genesis, BLOCK_TXS),
        rewards: Vec::new(),
    };
    let whole = Message::Block(block.clone()).encode();
    let compact = Message::<()>::CompactBlock(CompactBlock::of(&block)).encode();
    let mempool: HashMap<TxId, Transaction<()>> = block
        .transactions
        .iter()
        .map(|t| (t.id(), t.clone()))
        .collect();
    let decode_whole = || {
        let message = decode_message::<()>(black_box(&whole), 8 << 20).expect("a block");
        assert!(matches!(message, Message::Block(_)));
    };
    let rebuild_compact = || {
        let Ok(Message::CompactBlock(announced)) =
            decode_message::<()>(black_box(&compact), 8 << 20)
        else {
            panic!("a compact block")
        };
        let mut reassembly = Reassembly::new(4);
        let rebuilt = reassembly.start(announced, 1, |id| mempool.get(id).cloned());
        assert!(matches!(rebuilt, Rebuilt::Complete(_)));
    };

    let mut group = c.benchmark_group("admission");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batched_1024", |b| b.iter(batched));
    group.bench_function("one_by_one_1024", |b| b.iter(one_by_one));
    group.finish();
    let mut group = c.benchmark_group("block_relay");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BLOCK_TXS as u64));
    group.bench_function("decode_whole_5000", |b| b.iter(decode_whole));
    group.bench_function("rebuild_compact_5000", |b| b.iter(rebuild_compact));
    group.finish();

    let (mut batch_times, mut single_times) = (Vec::new(), Vec::new());
    let (mut whole_times, mut compact_times) = (Vec::new(), Vec::new());
    for _ in 0..RATIO_RUNS {
        batch_times.push(timed(batched));
        single_times.push(timed(one_by_one));
        whole_times.push(timed(decode_whole));
        compact_times.push(timed(rebuild_compact));
    }
    let (batched, single) = (median(batch_times), median(single_times));
    println!(
        "admission (medians of {RATIO_RUNS} interleaved runs): {BATCH} transfers one by one / \
         as one batch = {:.2} ms / {:.2} ms = {:.2}",
        single * 1e3,
        batched * 1e3,
        single / batched
    );
    let (whole_time, compact_time) = (median(whole_times), median(compact_times));
    println!(
        "block relay of {BLOCK_TXS} transfers: whole {} bytes, decoded in {:.2} ms; compact {} \
         bytes ({:.2} of whole), rebuilt from the mempool in {:.2} ms",
        whole.len(),
        whole_time * 1e3,
        compact.len(),
        compact.len() as f64 / whole.len() as f64,
        compact_time * 1e3
    );
}

/// Runs of each measure behind the printed ratios.
const RATIO_RUNS: usize = 9;

criterion_group!(benches, bench);
criterion_main!(benches);
