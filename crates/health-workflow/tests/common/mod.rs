//! Fixtures shared by the integration tests: a DEMO network on one in-memory ledger,
//! its three users, a clock, fresh ids, a seeded random number generator for sealing,
//! the vault of every body sealed, and a block crafter for invalid blocks.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;

use chacha20::ChaCha20Rng;
use health_workflow::demo::{self, DemoGenesisBuilder};
use health_workflow::records::RecordedEvent;
use health_workflow::seal::{BodyId, SealedBody, SealedRef};
use health_workflow::{
    Actor, BodyReader, Event, EventError, HealthLedger, HealthPolicy, HealthTx, OrderId, PatientId,
    PrescriptionId, Reading, Section, Written,
};
use ledger_core::{
    Amount, Block, BlockError, BlockTemplate, Hash, Keypair, MineStatus, Reward, Timestamp,
    Transaction, TxBody, TxError, merkle::merkle_root,
};
use rand_core::SeedableRng;

/// Sealed bodies by the hash of their ciphertext, as a node's vault keeps them.
pub type Vault = HashMap<Hash, SealedBody>;

/// Puts `bodies` into `vault`, each under the hash of its ciphertext (the
/// `ciphertext_hash` of its reference on the chain).
pub fn keep_in(vault: &mut Vault, bodies: impl IntoIterator<Item = SealedBody>) {
    for body in bodies {
        vault.insert(Hash::of(&body.ciphertext), body);
    }
}

/// The seeded generator the tests seal with: the same bodies on every run.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

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
    /// What the actors seal with.
    pub rng: ChaCha20Rng,
    /// Every body sealed through [`Net::keep`].
    pub vault: Vault,
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
            rng: rng(1),
            vault: Vault::new(),
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

    /// A reference to a body no one can read, with a fresh body id: enough for events
    /// signed with [`Net::raw`], since no rule looks inside a body.
    pub fn sealed_ref(&mut self) -> SealedRef {
        let id = self.random_bytes();
        SealedRef {
            body_id: BodyId::from_byte_array(id),
            commitment: Hash::of(&id),
            ciphertext_hash: Hash::of(&[&id[..], b"ciphertext"].concat()),
            ciphertext_len: 64,
        }
    }

    /// Keeps the bodies of `written` in the vault and returns its transaction.
    pub fn keep(&mut self, written: Written) -> HealthTx {
        keep_in(&mut self.vault, written.bodies);
        written.tx
    }

    /// Reads `section` of `event` as the demo member `username`, with its demo
    /// encryption key, from the vault.
    pub fn read(&self, username: &str, event: &RecordedEvent, section: Section) -> Option<Reading> {
        let key = demo::demo_encryption_key(username);
        let reader = BodyReader::new(
            self.ledger.genesis_hash(),
            demo::demo_keypair(username).account(),
            &key,
        );
        reader.read(&event.recorded.author, &event.event, section, |hash| {
            self.vault.get(hash).cloned()
        })
    }

    pub fn submit(&mut self, tx: HealthTx) -> Result<ledger_core::TxId, TxError<EventError>> {
        let now = self.now();
        self.ledger.submit_transaction(tx, now)
    }

    /// Moves the clock to `time` (never back).
    #[allow(dead_code)]
    pub fn set_clock(&mut self, time: Timestamp) {
        self.clock = self.clock.max(time.millis());
    }

    /// Mines the mempool into a block stamped `time` and adds it to the chain.
    #[allow(dead_code)]
    pub fn mine_at(&mut self, time: Timestamp) -> Block<Event> {
        let block = self.ledger.mine_block(&producer(), time);
        self.ledger
            .submit(block.clone(), time)
            .into_result()
            .expect("a block mined from the mempool is valid");
        self.set_clock(time);
        block
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
        self.craft_at(now, edit)
    }

    /// [`Net::craft`], the block stamped `now`.
    pub fn craft_at(
        &mut self,
        now: Timestamp,
        edit: impl FnOnce(&mut BlockTemplate<Event>),
    ) -> Block<Event> {
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
