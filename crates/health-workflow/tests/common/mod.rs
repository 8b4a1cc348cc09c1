//! Fixtures shared by the integration tests: a DEMO network on one in-memory ledger,
//! its three users, a clock, fresh ids, and a block crafter for invalid blocks.

#![allow(dead_code, unreachable_pub, missing_docs)]

use health_workflow::demo::{self, DemoGenesisBuilder};
use health_workflow::{
    Actor, Event, EventError, HealthLedger, HealthPolicy, HealthTx, OrderId, PatientId,
    PrescriptionId,
};
use ledger_core::{
    Amount, Block, BlockError, BlockTemplate, Hash, Keypair, MineStatus, Reward, Timestamp,
    Transaction, TxBody, TxError, merkle::merkle_root,
};

/// The key that produces the test blocks: the demo network's producers are its care
/// team, and producing earns nothing.
pub fn producer() -> Keypair {
    health_workflow::demo_keypair("pharm_charlie")
}

pub struct Net {
    pub ledger: HealthLedger,
    pub alice: Actor,
    pub bob: Actor,
    pub charlie: Actor,
    clock: u64,
    ids: u64,
}

impl Net {
    pub fn new(pow_bits: u8) -> Net {
        Net::with_genesis(DemoGenesisBuilder::new().pow_bits(pow_bits))
    }

    pub fn with_genesis(builder: DemoGenesisBuilder) -> Net {
        let genesis = builder.build();
        let ledger = HealthLedger::new(genesis, HealthPolicy).expect("the demo genesis is valid");
        let actor =
            |name: &str| Actor::new(&ledger, name, demo::demo_keypair(name)).expect("a demo user");
        let (alice, bob, charlie) = (
            actor("dr_alice"),
            actor("lab_tech_bob"),
            actor("pharm_charlie"),
        );
        Net {
            ledger,
            alice,
            bob,
            charlie,
            clock: demo::DEMO_GENESIS_TIME.millis(),
            ids: 0,
        }
    }

    /// The current time; each call advances the clock by one second.
    pub fn now(&mut self) -> Timestamp {
        self.clock += 1_000;
        Timestamp(self.clock)
    }

    fn random_bytes(&mut self) -> [u8; 16] {
        self.ids += 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.ids.to_le_bytes());
        bytes
    }

    pub fn patient_id(&mut self) -> PatientId {
        PatientId::from_random_bytes(self.random_bytes())
    }

    pub fn order_id(&mut self) -> OrderId {
        OrderId::from_random_bytes(self.random_bytes())
    }

    pub fn prescription_id(&mut self) -> PrescriptionId {
        PrescriptionId::from_random_bytes(self.random_bytes())
    }

    pub fn submit(&mut self, tx: HealthTx) -> Result<ledger_core::TxId, TxError<EventError>> {
        let now = self.now();
        self.ledger.submit_transaction(tx, now)
    }

    /// Mines the mempool into a block and adds it to the chain.
    pub fn mine(&mut self) -> Block<Event> {
        let now = self.now();
        let block = self.ledger.mine_block(&producer(), now);
        self.ledger
            .submit(block.clone(), now)
            .into_result()
            .expect("a block mined from the mempool is valid");
        block
    }

    pub fn balance(&self, username: &str) -> Amount {
        let member = self
            .ledger
            .genesis()
            .member_by_username(username)
            .expect("a roster member");
        self.ledger.balance(&member.account)
    }

    /// Signs `event` as `keys` with its next nonce, with no checks at all.
    pub fn raw(&mut self, keys: &Keypair, event: Event) -> HealthTx {
        let now = self.now();
        Transaction::new_signed(
            &self.ledger.genesis_hash(),
            keys,
            self.ledger.next_nonce(&keys.account()),
            now,
            TxBody::App(event),
        )
    }

    /// A block on the tip from the mempool, edited by `edit` (transactions or rewards),
    /// with its Merkle root recomputed, mined and sealed: valid in form, so only the
    /// rules can refuse it.
    pub fn craft(&mut self, edit: impl FnOnce(&mut BlockTemplate<Event>)) -> Block<Event> {
        let now = self.now();
        let keys = producer();
        let mut template = self.ledger.block_template(keys.account(), now);
        edit(&mut template);
        let entries: Vec<Hash> = template
            .transactions
            .iter()
            .map(|tx| *tx.id().hash())
            .chain(template.rewards.iter().map(Reward::entry_hash))
            .collect();
        template.header.merkle_root = merkle_root(&entries);
        while template.mine(1 << 16) == MineStatus::Continue {}
        template.seal(&keys).expect("mined")
    }

    /// Submits a crafted block and returns why it is invalid.
    pub fn reject(&mut self, block: Block<Event>) -> BlockError<EventError> {
        let now = self.now();
        self.ledger
            .submit(block, now)
            .into_result()
            .expect_err("the crafted block must be invalid")
    }
}

/// The policy error inside a refused transaction.
pub fn policy_error(error: &TxError<EventError>) -> Option<&EventError> {
    match error {
        TxError::Policy { error, .. } => Some(error),
        _ => None,
    }
}

/// The policy error inside an invalid block.
pub fn block_policy_error(error: &BlockError<EventError>) -> Option<&EventError> {
    match error {
        BlockError::Transaction { error, .. } => policy_error(error),
        _ => None,
    }
}
