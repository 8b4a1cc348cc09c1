//! The cost of growing the chain must not depend on its length.
//!
//! For a short chain (100 blocks) and a long one (10,000 blocks) of healthcare events,
//! the `append` group times appending one more 100-transaction block whose
//! transactions already arrived through the mempool (how a node usually sees a block),
//! and the `query` group times a balance query and a patient-history query. The
//! design keeps state incrementally and indexed, so each long/short ratio should stay
//! near 1 (the goal is at most 1.2); criterion prints both figures side by side.
//!
//! After criterion's figures it prints the long/short ratios themselves, from medians
//! of interleaved runs. Set `APPEND_LONG_BLOCKS` to change the long chain's length
//! (default 10,000).

/// The allocator the `healthchain` binary uses, so the figures match its measuring
/// commands.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use healthchain::health_workflow::demo::DemoGenesisBuilder;
use healthchain::health_workflow::{
    Event, HealthLedger, HealthPolicy, PatientId, PatientRegistration, demo_keypair, records,
};
use healthchain::ledger_core::sealed::{BodyId, SealedRef};
use healthchain::ledger_core::{Hash, Keypair, Ledger, Timestamp, Transaction, TxBody};
use support::median;

/// Registrations in each block of the base chains (kept small so building them is
/// quick; the state still grows with every block).
const BASE_TXS: usize = 10;
/// Transactions in each appended block.
const APPEND_TXS: usize = 100;

struct Chain {
    ledger: HealthLedger,
    doctor: Keypair,
    first_patient: PatientId,
    next_id: u128,
    time: u64,
}

impl Chain {
    fn registration(&mut self) -> Transaction<Event> {
        self.next_id += 1;
        let patient = PatientId::from_random_bytes(self.next_id.to_le_bytes());
        // A realistic sealed reference: bodies are off the validation path, so its
        // content does not matter to what is measured.
        let reference = SealedRef {
            body_id: BodyId::from_byte_array(self.next_id.to_le_bytes()),
            commitment: Hash::of(&self.next_id.to_le_bytes()),
            ciphertext_hash: Hash::of(&self.next_id.to_be_bytes()),
            ciphertext_len: 96,
        };
        let event = Event::PatientRegistration(PatientRegistration {
            patient_id: patient,
            demographics: reference,
            patient_keys: healthchain::health_workflow::PatientKeys::sign(
                &self.ledger.genesis_hash(),
                &patient,
                &Keypair::from_seed(Hash::of(&self.next_id.to_le_bytes()).to_byte_array()),
            ),
        });
        let nonce = self.ledger.next_nonce(&self.doctor.account());
        Transaction::new_signed(
            &self.ledger.genesis_hash(),
            &self.doctor,
            nonce,
            Timestamp(self.time),
            TxBody::App(event),
        )
    }

    /// Fills the mempool with `n` registrations (signatures checked on the way in),
    /// then mines the block; returns it unsubmitted.
    fn next_block(&mut self, n: usize) -> healthchain::ledger_core::Block<Event> {
        self.time += 1_000;
        for _ in 0..n {
            let tx = self.registration();
            self.ledger
                .submit_transaction(tx, Timestamp(self.time))
                .expect("generated registration is valid");
        }
        self.ledger.mine_block(&self.doctor, Timestamp(self.time))
    }

    fn append(&mut self, block: healthchain::ledger_core::Block<Event>) {
        let outcome = self.ledger.submit(block, Timestamp(self.time));
        assert!(outcome.tip_changed(), "every block extends the chain");
    }
}

fn chain(blocks: usize) -> Chain {
    let genesis = DemoGenesisBuilder::new()
        .pow_bits(0)
        .timestamp(Timestamp(0))
        .build();
    let ledger = Ledger::new(genesis, HealthPolicy).expect("valid genesis");
    let mut chain = Chain {
        ledger,
        doctor: demo_keypair("dr_alice"),
        first_patient: PatientId::from_random_bytes(1u128.to_le_bytes()),
        next_id: 0,
        time: 1_000,
    };
    for _ in 0..blocks {
        let block = chain.next_block(BASE_TXS);
        chain.append(block);
    }
    chain
}

fn bench(c: &mut Criterion) {
    let long = std::env::var("APPEND_LONG_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut chains = [(100usize, chain(100)), (long, chain(long))];

    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (length, chain) in &mut chains {
        group.bench_function(BenchmarkId::new("block_100_txs", *length), |b| {
            // Building and gossiping each block is not timed; appending it is.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let block = chain.next_block(APPEND_TXS);
                    let start = Instant::now();
                    chain.append(black_box(block));
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("query");
    group.sample_size(20);
    for (length, chain) in &chains {
        let alice = chain.doctor.account();
        group.bench_function(BenchmarkId::new("balance", *length), |b| {
            b.iter(|| black_box(chain.ledger.balance(black_box(&alice))))
        });
        let patient = chain.first_patient;
        group.bench_function(BenchmarkId::new("patient_history", *length), |b| {
            b.iter(|| {
                // The index lookup and the events read back from their blocks.
                let history = records::patient_history(&chain.ledger, black_box(&patient));
                black_box(history.ok().flatten().map(|events| events.len()))
            })
        });
    }
    group.finish();

    // The long/short ratios the goal is stated in, from medians of interleaved runs.
    let [(_, short), (_, long_chain)] = &mut chains;
    let mut appends = [Vec::new(), Vec::new()];
    for _ in 0..RATIO_RUNS {
        for (i, chain) in [&mut *short, &mut *long_chain].into_iter().enumerate() {
            let block = chain.next_block(APPEND_TXS);
            let start = Instant::now();
            chain.append(black_box(block));
            appends[i].push(start.elapsed().as_secs_f64());
        }
    }
    let per_query = |chain: &Chain, query: &dyn Fn(&Chain)| {
        let start = Instant::now();
        for _ in 0..QUERY_RUNS {
            query(chain);
        }
        start.elapsed().as_secs_f64() / QUERY_RUNS as f64
    };
    let balance = |c: &Chain| {
        black_box(c.ledger.balance(black_box(&c.doctor.account())));
    };
    let history = |c: &Chain| {
        let events = records::patient_history(&c.ledger, black_box(&c.first_patient));
        black_box(events.ok().flatten().map(|e| e.len()));
    };
    let [short_append, long_append] = appends.map(median);
    println!(
        "append ratios, {long} / 100 blocks: append {:.2}, balance {:.2}, patient history {:.2}",
        long_append / short_append,
        per_query(long_chain, &balance) / per_query(short, &balance),
        per_query(long_chain, &history) / per_query(short, &history),
    );
}

/// Appends behind the printed ratio, per chain.
const RATIO_RUNS: usize = 51;

/// Queries timed together behind the printed ratios.
const QUERY_RUNS: u32 = 100_000;

criterion_group!(benches, bench);
criterion_main!(benches);
