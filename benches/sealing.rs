//! What sealing a clinical body costs: sealing and opening one event's body, and what
//! each extra reader adds (one HPKE wrap on sealing; opening reads one wrap whatever
//! the number of readers).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use healthchain::health_workflow::seal::{Binding, EncryptionKey, OpenSealed, Reader, seal};
use healthchain::health_workflow::{EventKind, PatientId};
use healthchain::ledger_core::{BlockHash, Keypair};
use rand_core::SeedableRng;

/// A consultation's notes, about the size of the demo's.
const BODY: &[u8] = b"Persistent fatigue and pallor for three weeks; no fever. Order a full \
blood count and ferritin; review in one week with the results.";

fn readers(n: usize) -> Vec<(Reader, EncryptionKey)> {
    (0..n)
        .map(|i| {
            let key = EncryptionKey::from_seed(&[i as u8 + 1; 32]);
            let reader = Reader {
                account: Keypair::from_seed([i as u8 + 50; 32]).account(),
                key: key.public(),
            };
            (reader, key)
        })
        .collect()
}

fn sealing(c: &mut Criterion) {
    let binding = Binding::new(
        BlockHash::from_byte_array([9; 32]),
        Keypair::from_seed([1; 32]).account(),
        PatientId::from_random_bytes([7; 16]),
        EventKind::DoctorConsultation,
    );
    let mut rng = chacha20::ChaCha20Rng::from_seed([3; 32]);
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    for n in [1usize, 2, 3, 5, 10] {
        let members = readers(n);
        let list: Vec<Reader> = members.iter().map(|(r, _)| *r).collect();
        group.bench_with_input(BenchmarkId::new("readers", n), &list, |b, list| {
            b.iter(|| seal(black_box(BODY), &binding, list, &mut rng).expect("seals"));
        });
    }
    group.finish();

    let members = readers(3);
    let list: Vec<Reader> = members.iter().map(|(r, _)| *r).collect();
    let (reference, sealed) = seal(BODY, &binding, &list, &mut rng).expect("seals");
    let (reader, key) = &members[2];
    c.bench_function("open/one event", |b| {
        b.iter(|| {
            sealed
                .open(black_box(&reference), &binding, &reader.account, key)
                .expect("opens")
        });
    });
    c.bench_function("check/delivered body against its reference", |b| {
        b.iter(|| sealed.check(black_box(&reference)).expect("matches"));
    });
}

criterion_group!(benches, sealing);
criterion_main!(benches);
