//! Shared setup of the fuzz targets: the DEMO network at difficulty 0 and a short
//! valid chain on it, built once, so that fuzzed transactions and blocks meet a ledger
//! with a registered patient, a recorded lab result and an open prescription.
//!
//! Signatures stop almost every fuzzed transaction and block at the signature check.
//! To reach the rules behind it, [`resign`] and [`reseal`] sign what was decoded again
//! with the public DEMO keys: each target submits the input as decoded, then re-signed.

use std::sync::{Arc, LazyLock};

use health_workflow::demo::{self, DEMO_USERS, DemoGenesisBuilder};
use health_workflow::{
    Actor, Event, HealthLedger, HealthPolicy, HealthTx, OrderId, PatientId, Prescription,
    PrescriptionId, TestOrder, WorkflowError,
};
use ledger_core::merkle::merkle_root;
use ledger_core::{
    Block, BlockHash, BlockStatus, BodyStore, Genesis, Keypair, Ledger, MemoryBodies, Timestamp,
    Transaction, TxId,
};

/// The genesis, the blocks of the chain on it, and a time just after the last one.
struct Chain {
    genesis: Genesis,
    blocks: Vec<Arc<Block<Event>>>,
    now: Timestamp,
}

static CHAIN: LazyLock<Chain> = LazyLock::new(build_chain);

/// A fresh ledger holding the chain (rebuilt for every input, so that no input depends
/// on an earlier one), and the time to submit at.
pub fn ledger() -> (HealthLedger, Timestamp) {
    let chain = &*CHAIN;
    let mut bodies = MemoryBodies::default();
    for block in &chain.blocks {
        bodies
            .put(&block.hash(), block)
            .expect("memory stores cannot fail");
    }
    let mut ledger = Ledger::with_store(chain.genesis.clone(), HealthPolicy, bodies)
        .expect("the demo genesis is valid");
    for block in &chain.blocks {
        let outcome = ledger.submit_stored_block(Arc::clone(block));
        assert_eq!(
            outcome.status,
            BlockStatus::Accepted,
            "{:?}",
            outcome.invalid
        );
    }
    (ledger, chain.now)
}

/// The transaction's fields signed again by the DEMO user its author's first byte
/// picks, for the network of `ledger`.
pub fn resign(ledger: &HealthLedger, tx: &HealthTx) -> HealthTx {
    let keys = demo_keys(tx.author.as_bytes()[0]);
    Transaction::new_signed(
        &ledger.genesis_hash(),
        &keys,
        tx.nonce,
        tx.timestamp,
        tx.body.clone(),
    )
}

/// The block moved onto the ledger's tip, its transactions re-signed ([`resign`]), its
/// Merkle root recomputed and its header signed by the DEMO user the producer's first
/// byte picks. Difficulty 0 makes every nonce a valid proof of work.
pub fn reseal(ledger: &HealthLedger, mut block: Block<Event>) -> Block<Event> {
    let tip = ledger.tip();
    let keys = demo_keys(block.header.producer.as_bytes()[0]);
    for tx in &mut block.transactions {
        *tx = resign(ledger, tx);
    }
    block.header.prev = tip.hash;
    block.header.height = tip.height.next();
    block.header.producer = keys.account();
    block.header.merkle_root = merkle_root(&block.merkle_entries());
    block.signature = keys.sign(&block_signing_message(&block.hash()));
    block
}

fn demo_keys(pick: u8) -> Keypair {
    demo::demo_keypair(DEMO_USERS[usize::from(pick) % DEMO_USERS.len()].username)
}

/// What a producer signs: a domain tag, then the block hash.
fn block_signing_message(hash: &BlockHash) -> Vec<u8> {
    let mut message = b"healthchain/blk/".to_vec();
    message.extend_from_slice(hash.hash().as_bytes());
    message
}

fn at(seconds: u64) -> Timestamp {
    Timestamp(demo::DEMO_GENESIS_TIME.millis() + seconds * 1_000)
}

/// Three blocks: a patient registered and a test ordered; the result; a prescription
/// based on it, with the payment to the lab. The prescription is left to be filled.
fn build_chain() -> Chain {
    let genesis = DemoGenesisBuilder::new().pow_bits(0).build();
    let mut ledger = Ledger::new(genesis.clone(), HealthPolicy).expect("the demo genesis is valid");
    let [doctor, lab, _pharmacist] = DEMO_USERS.map(|user| {
        Actor::new(&ledger, user.username, demo::demo_keypair(user.username))
            .expect("demo users are on the demo roster")
    });
    let patient = PatientId::from_random_bytes([1; 16]);
    let order = OrderId::from_random_bytes([2; 16]);
    let mut blocks = Vec::new();

    let now = at(60);
    let tx = doctor.register(&ledger, patient, "Jane Doe", now);
    submit(&mut ledger, tx, now);
    let tx = doctor.consult(
        &ledger,
        patient,
        "fatigue",
        Some(TestOrder::blood_test(order)),
        now,
    );
    submit(&mut ledger, tx, now);
    blocks.push(mine(&mut ledger, now));

    let now = at(120);
    let tx = lab.perform_test(&ledger, patient, Some(order), "normal", now);
    let result = submit(&mut ledger, tx, now);
    blocks.push(mine(&mut ledger, now));

    let now = at(180);
    let prescription = Prescription {
        prescription_id: PrescriptionId::from_random_bytes([3; 16]),
        patient_id: patient,
        medication: "Iron".into(),
        dosage: "65 mg".into(),
        instructions: "once a day".into(),
        based_on: vec![result],
    };
    let prescribed = doctor
        .prescribe(&ledger, prescription, now)
        .expect("a valid prescription");
    for tx in prescribed.transactions() {
        submit(&mut ledger, Ok(tx.clone()), now);
    }
    blocks.push(mine(&mut ledger, now));

    Chain {
        genesis,
        blocks,
        now: at(240),
    }
}

fn submit(ledger: &mut HealthLedger, tx: Result<HealthTx, WorkflowError>, now: Timestamp) -> TxId {
    let tx = tx.expect("a valid workflow step");
    ledger
        .submit_transaction(tx, now)
        .expect("the chain's transactions are valid")
}

fn mine(ledger: &mut HealthLedger, now: Timestamp) -> Arc<Block<Event>> {
    let block = ledger.mine_block(&demo::demo_keypair("dr_alice"), now);
    let outcome = ledger.submit_block(block.clone(), now);
    assert_eq!(
        outcome.status,
        BlockStatus::Accepted,
        "{:?}",
        outcome.invalid
    );
    Arc::new(block)
}
