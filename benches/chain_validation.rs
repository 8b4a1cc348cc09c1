//! Full validation of a signed chain from genesis, next to the signature floor.
//!
//! Both benchmarks of the `chain_validation` group process the same number of
//! signatures: `full_validation` checks a 1,000-block × 100-transaction chain from
//! genesis the way a syncing node does (`Ledger::import_blocks`: signatures
//! batch-verified across blocks on every core while the previous batch is validated and
//! applied), `structure_only` re-checks everything but signatures (what a node does
//! when it reloads its own store), and `signature_floor` only
//! batch-verifies the same signatures with nothing around them. Their ratio, printed by
//! criterion as two throughputs in one run, is the ledger's overhead over the cost no
//! implementation can avoid.
//!
//! After criterion's figures it prints the ratios themselves, from medians of
//! interleaved runs. Set `CHAIN_BLOCKS` to change the chain length (default 1,000).

/// The allocator the `healthchain` binary uses, so the figures match its measuring
/// commands.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use healthchain::ledger_core::{
    AccountId, Amount, Applied, Block, Genesis, Keypair, Ledger, Policy, SignatureSet, Timestamp,
    Transaction, TxBody, TxContext, prepare_blocks,
};
use support::{median, timed};

const TXS_PER_BLOCK: usize = 100;

/// Transfers only: the policy accepts no payload, so the bench measures the core.
struct TransfersOnly;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("no application payloads on this network")]
struct NoPayloads;

impl Policy for TransfersOnly {
    type Payload = ();
    type State = ();
    type Undo = ();
    type Error = NoPayloads;
    fn genesis_state(&self, _: &Genesis) {}
    fn apply(&self, _: &TxContext<'_>, _: &mut (), _: &()) -> Result<Applied<()>, NoPayloads> {
        Err(NoPayloads)
    }
    fn undo(&self, _: &mut (), _: ()) {}
}

struct Chain {
    genesis: Genesis,
    blocks: Vec<Arc<Block<()>>>,
}

fn build_chain(blocks: usize) -> Chain {
    let keys: Vec<Keypair> = (0..TXS_PER_BLOCK)
        .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
        .collect();
    let reserve = AccountId::unspendable("bench reserve");
    let genesis = Genesis {
        network: "bench".into(),
        timestamp: Timestamp(0),
        pow_bits: 0,
        producers: None,
        roster: Vec::new(),
        balances: keys
            .iter()
            .map(|k| (k.account(), Amount(1_000_000)))
            .chain([(reserve, Amount(0))])
            .collect(),
        reserve,
        parameters: BTreeMap::new(),
    };
    let mut ledger = Ledger::new(genesis.clone(), TransfersOnly).expect("valid genesis");
    let net = ledger.genesis_hash();
    let mut out = Vec::with_capacity(blocks);
    for height in 1..=blocks {
        let now = Timestamp(height as u64 * 1_000);
        for (i, from) in keys.iter().enumerate() {
            let to = keys[(i + 1) % keys.len()].account();
            let body = TxBody::Transfer {
                to,
                amount: Amount(1),
            };
            let tx = Transaction::new_signed(&net, from, height as u64, now, body);
            ledger
                .submit_transaction(tx, now)
                .expect("generated transfer is valid");
        }
        let block = ledger.mine_block(&keys[height % keys.len()], now);
        out.push(Arc::new(block.clone()));
        ledger
            .submit(block, now)
            .into_result()
            .expect("generated block is valid");
    }
    Chain {
        genesis,
        blocks: out,
    }
}

fn validate(chain: &Chain) -> Ledger<TransfersOnly> {
    let mut ledger = Ledger::new(chain.genesis.clone(), TransfersOnly).expect("valid genesis");
    let now = Timestamp(u64::MAX / 2);
    for outcome in ledger.import_blocks(&chain.blocks, now) {
        assert!(outcome.tip_changed(), "every block extends the chain");
    }
    ledger
}

/// Hashes, links, Merkle roots, nonces, balances and rules, without signatures: what
/// the original simulation checked, and what a node re-checks when it reloads its own
/// store.
fn validate_structure(chain: &Chain) -> Ledger<TransfersOnly> {
    let mut ledger = Ledger::new(chain.genesis.clone(), TransfersOnly).expect("valid genesis");
    // As a reloading node does: blocks hashed on every core, then applied in order.
    for prepared in prepare_blocks(&chain.blocks) {
        let outcome = ledger.submit(
            // A stored block is judged at its own time: no clock is read.
            ledger_core::BlockInput::StoredPrepared(prepared),
            ledger_core::Timestamp(0),
        );
        assert!(outcome.tip_changed(), "every block extends the chain");
    }
    ledger
}

fn bench(c: &mut Criterion) {
    let blocks = std::env::var("CHAIN_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let chain = build_chain(blocks);
    // The same signatures, keys decompressed and messages built beforehand, verified
    // the way the ledger batches them (`SignatureSet`, as `healthchain verify --floor`).
    let signatures = SignatureSet::of_blocks(&chain.genesis.hash(), &chain.blocks);
    let mut group = c.benchmark_group("chain_validation");
    group.sample_size(10);
    group.throughput(Throughput::Elements(signatures.len() as u64));
    group.bench_function("full_validation", |b| {
        b.iter_batched(
            || (),
            |()| black_box(validate(&chain)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("structure_only", |b| {
        b.iter(|| black_box(validate_structure(&chain)))
    });
    let floor = || assert!(signatures.verify(), "valid signatures");
    group.bench_function("signature_floor", |b| b.iter(floor));
    group.finish();

    // The ratios the goals are stated in, from medians of interleaved runs.
    let (mut full, mut structure, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RATIO_RUNS {
        full.push(timed(|| drop(black_box(validate(&chain)))));
        structure.push(timed(|| drop(black_box(validate_structure(&chain)))));
        alone.push(timed(floor));
    }
    let (full, structure, alone) = (median(full), median(structure), median(alone));
    println!(
        "chain_validation ratios (medians of {RATIO_RUNS} runs): full validation / signature floor = \
         {:.1} ms / {:.1} ms = {:.2}; structure only / signature floor = {:.2}",
        full * 1e3,
        alone * 1e3,
        full / alone,
        structure / alone
    );
}

/// Runs of each measure behind the printed ratios.
const RATIO_RUNS: usize = 5;

criterion_group!(benches, bench);
criterion_main!(benches);
