//! Shared fixtures for the integration tests: a small application policy with rewards
//! and a real undo, a genesis with funded key pairs, mining helpers and a clock.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;

use ledger_core::merkle::merkle_root;
use ledger_core::{
    AccountId, Amount, Applied, Block, BlockHash, BlockHeader, BlockOutcome, BlockStatus,
    BodySource, ChainState, Genesis, Height, Keypair, Ledger, Member, Policy, Reward, Timestamp,
    Transaction, TxBody, TxContext, TxId, mine_header,
};
use serde::{Deserialize, Serialize};

/// Time of the test genesis (milliseconds since the epoch).
pub const GENESIS_TIME: u64 = 1_700_000_000_000;

/// Initial balance of every test key pair.
pub const FUNDS: u64 = 1_000;

/// Initial balance of the reserve that pays rewards.
pub const RESERVE_FUNDS: u64 = 500;

/// Reward a `Claim` earns (a genesis parameter).
pub const CLAIM_REWARD: u64 = 5;

/// Number of funded key pairs in the test genesis.
pub const KEYS: usize = 5;

/// Longest note the policy accepts.
pub const MAX_NOTE: usize = 32;

/// The test application's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Adds to the author's counter; earns `n % 4` from the reserve.
    Add(u32),
    /// Claims a token for the author; fails if already claimed; earns `CLAIM_REWARD`.
    Claim(u16),
    /// Appends a note of at most `MAX_NOTE` bytes; earns nothing.
    Note(String),
}

/// The test application's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppState {
    pub counters: BTreeMap<AccountId, u64>,
    pub claims: BTreeMap<u16, AccountId>,
    pub notes: Vec<String>,
    /// Roster label of each member seen, to check the context the ledger passes.
    pub roles_seen: BTreeMap<AccountId, String>,
}

/// How to revert one applied `Op`.
#[derive(Debug)]
pub enum OpUndo {
    Add {
        account: AccountId,
        previous: Option<u64>,
        role: RoleUndo,
    },
    Claim {
        token: u16,
        role: RoleUndo,
        account: AccountId,
    },
    Note {
        role: RoleUndo,
        account: AccountId,
    },
}

/// Why the test application refuses an `Op`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("token {0} is already claimed")]
    Claimed(u16),
    #[error("note too long")]
    NoteTooLong,
    #[error("counter overflow")]
    Overflow,
    #[error("transfers to this account are refused")]
    Sanctioned,
}

/// An account the test policy refuses transfers to ([`Policy::check_transfer`]).
pub fn sanctioned() -> AccountId {
    AccountId::unspendable("sanctioned")
}

/// The test policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter;

impl Policy for Counter {
    type Payload = Op;
    type State = AppState;
    type Undo = OpUndo;
    type Error = OpError;

    fn genesis_state(&self, _: &Genesis) -> AppState {
        AppState::default()
    }

    fn check_transfer(
        &self,
        _: &TxContext<'_>,
        _: &AppState,
        to: &AccountId,
        _: Amount,
    ) -> Result<(), OpError> {
        if *to == sanctioned() {
            Err(OpError::Sanctioned)
        } else {
            Ok(())
        }
    }

    fn apply(
        &self,
        ctx: &TxContext<'_>,
        state: &mut AppState,
        payload: &Op,
    ) -> Result<Applied<OpUndo>, OpError> {
        // Checks first, so that an error leaves the state unchanged.
        match payload {
            Op::Add(n) => {
                let previous = state.counters.get(&ctx.author).copied();
                previous
                    .unwrap_or(0)
                    .checked_add(u64::from(*n))
                    .ok_or(OpError::Overflow)?;
            }
            Op::Claim(token) if state.claims.contains_key(token) => {
                return Err(OpError::Claimed(*token));
            }
            Op::Note(text) if text.len() > MAX_NOTE => return Err(OpError::NoteTooLong),
            _ => {}
        }
        // Outer `None`: not a member, nothing recorded; inner: the label seen before.
        let role = ctx
            .member
            .map(|m| state.roles_seen.insert(ctx.author, m.role.clone()));
        let (undo, rewards) = match payload {
            Op::Add(n) => {
                let previous = state.counters.get(&ctx.author).copied();
                let next = previous.unwrap_or(0) + u64::from(*n);
                state.counters.insert(ctx.author, next);
                let undo = OpUndo::Add {
                    account: ctx.author,
                    previous,
                    role,
                };
                (undo, vec![(ctx.author, Amount(u64::from(n % 4)))])
            }
            Op::Claim(token) => {
                state.claims.insert(*token, ctx.author);
                let reward = ctx.genesis.parameter("claim_reward", 0);
                let undo = OpUndo::Claim {
                    token: *token,
                    role,
                    account: ctx.author,
                };
                (undo, vec![(ctx.author, Amount(reward))])
            }
            Op::Note(text) => {
                state.notes.push(text.clone());
                let undo = OpUndo::Note {
                    role,
                    account: ctx.author,
                };
                (undo, Vec::new())
            }
        };
        Ok(Applied { undo, rewards })
    }

    fn undo(&self, state: &mut AppState, undo: OpUndo) {
        let (role, account) = match undo {
            OpUndo::Add {
                account,
                previous,
                role,
            } => {
                match previous {
                    Some(value) => state.counters.insert(account, value),
                    None => state.counters.remove(&account),
                };
                (role, account)
            }
            OpUndo::Claim {
                token,
                role,
                account,
            } => {
                state.claims.remove(&token);
                (role, account)
            }
            OpUndo::Note { role, account } => {
                state.notes.pop();
                (role, account)
            }
        };
        restore_role(state, account, role);
    }
}

/// What recording a member's role label replaced: `None` when the author is not a
/// member (nothing was recorded), else the label seen before, if any.
pub type RoleUndo = Option<Option<String>>;

fn restore_role(state: &mut AppState, account: AccountId, role: RoleUndo) {
    match role {
        None => {}
        Some(Some(previous)) => {
            state.roles_seen.insert(account, previous);
        }
        Some(None) => {
            state.roles_seen.remove(&account);
        }
    }
}

/// The test ledger type.
pub type TestLedger = Ledger<Counter>;

/// The test block type.
pub type TestBlock = Block<Op>;

/// The test transaction type.
pub type TestTx = Transaction<Op>;

/// `KEYS` deterministic key pairs.
pub fn keys() -> Vec<Keypair> {
    (1..=KEYS as u8)
        .map(|i| Keypair::from_seed([i; 32]))
        .collect()
}

/// An account that holds nothing and that nobody in the tests signs for.
pub fn stranger() -> AccountId {
    Keypair::from_seed([200; 32]).account()
}

/// The reserve account of the test genesis.
pub fn reserve() -> AccountId {
    AccountId::unspendable("test-reserve")
}

/// A genesis with `KEYS` funded key pairs (the first three on the roster), a reserve,
/// and the given difficulty.
pub fn genesis(pow_bits: u8) -> Genesis {
    let keys = keys();
    let roles = ["doctor", "lab", "pharmacy"];
    let roster = keys
        .iter()
        .zip(roles)
        .enumerate()
        .map(|(i, (k, role))| Member {
            account: k.account(),
            username: format!("user{i}"),
            display_name: format!("User {i}"),
            role: role.to_string(),
            encryption: None,
        })
        .collect();
    let mut balances: Vec<(AccountId, Amount)> =
        keys.iter().map(|k| (k.account(), Amount(FUNDS))).collect();
    balances.push((reserve(), Amount(RESERVE_FUNDS)));
    Genesis {
        network: "healthchain-test".into(),
        timestamp: Timestamp(GENESIS_TIME),
        pow_bits,
        producers: None,
        roster,
        balances,
        reserve: reserve(),
        parameters: BTreeMap::from([("claim_reward".to_string(), CLAIM_REWARD)]),
    }
}

/// A ledger on `genesis(pow_bits)`.
pub fn ledger(pow_bits: u8) -> TestLedger {
    Ledger::new(genesis(pow_bits), Counter).expect("the test genesis is valid")
}

/// A monotonic test clock, one second per tick.
#[derive(Clone, Debug)]
pub struct Clock(u64);

impl Clock {
    /// Starts one second after the genesis.
    pub fn new() -> Clock {
        Clock(GENESIS_TIME + 1_000)
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.0)
    }

    /// Advances one second and returns the new time.
    pub fn tick(&mut self) -> Timestamp {
        self.0 += 1_000;
        Timestamp(self.0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A signed transaction from `keys` on `ledger`'s network with the next free nonce.
pub fn tx(ledger: &TestLedger, keys: &Keypair, body: TxBody<Op>, now: Timestamp) -> TestTx {
    let nonce = ledger.next_nonce(&keys.account());
    Transaction::new_signed(&ledger.genesis_hash(), keys, nonce, now, body)
}

/// A transaction from `keys` with an explicit nonce, signed for `ledger`'s network and
/// dated now.
pub fn signed(ledger: &TestLedger, keys: &Keypair, nonce: u64, body: TxBody<Op>) -> TestTx {
    Transaction::new_signed(
        &ledger.genesis_hash(),
        keys,
        nonce,
        Clock::new().now(),
        body,
    )
}

/// Signs `body` from `keys` with the next free nonce and submits it to the mempool,
/// expecting it to be accepted.
pub fn send(ledger: &mut TestLedger, keys: &Keypair, body: TxBody<Op>, now: Timestamp) -> TxId {
    let tx = tx(ledger, keys, body, now);
    ledger
        .submit_transaction(tx, now)
        .expect("transaction must be accepted")
}

/// A transfer body.
pub fn pay(to: AccountId, amount: u64) -> TxBody<Op> {
    TxBody::Transfer {
        to,
        amount: Amount(amount),
    }
}

/// Submits `tx` to the mempool, expecting it to be accepted.
pub fn submit_tx(ledger: &mut TestLedger, tx: TestTx, now: Timestamp) {
    ledger
        .submit_transaction(tx, now)
        .expect("transaction must be accepted");
}

/// Submits `block`, expecting it to be accepted.
pub fn submit_accepted<B: BodySource<Op>>(
    ledger: &mut Ledger<Counter, B>,
    block: &TestBlock,
    now: Timestamp,
) {
    let outcome = ledger.submit(block.clone(), now);
    assert_eq!(
        outcome.status,
        BlockStatus::Accepted,
        "{:?}",
        outcome.invalid
    );
}

/// Submits `block`, expecting it to be accepted and to become the tip.
pub fn submit_as_tip<B: BodySource<Op>>(
    ledger: &mut Ledger<Counter, B>,
    block: &TestBlock,
    now: Timestamp,
) {
    submit_accepted(ledger, block, now);
    assert_eq!(ledger.tip().hash, block.hash());
}

/// Mines a block on the tip with the pending transactions, submits it, expects it to
/// become the tip and returns it.
pub fn mine_and_submit(ledger: &mut TestLedger, producer: &Keypair, now: Timestamp) -> TestBlock {
    let block = ledger.mine_block(producer, now);
    submit_as_tip(ledger, &block, now);
    block
}

/// The message a producer signs for a block: a domain tag and the block hash.
pub fn block_signing_message(hash: &BlockHash) -> Vec<u8> {
    let mut message = b"healthchain/blk/".to_vec();
    message.extend_from_slice(hash.hash().as_bytes());
    message
}

/// Recomputes the Merkle root, mines the header from nonce 0 and signs with `keys`.
pub fn reseal(mut block: TestBlock, keys: &Keypair, pow_bits: u8) -> TestBlock {
    block.header.merkle_root = merkle_root(&block.merkle_entries());
    remine(block, keys, pow_bits)
}

/// Mines the header as it is (Merkle root untouched) and signs with `keys`.
pub fn remine(mut block: TestBlock, keys: &Keypair, pow_bits: u8) -> TestBlock {
    block.header.nonce = 0;
    let hash = mine_header(&mut block.header, pow_bits, u64::MAX).expect("unbounded search");
    block.signature = keys.sign(&block_signing_message(&hash));
    block
}

/// A block assembled by hand on `parent` (hash, height, time), then sealed.
#[allow(clippy::too_many_arguments)]
pub fn raw_block(
    prev: BlockHash,
    height: u64,
    timestamp: Timestamp,
    producer: &Keypair,
    transactions: Vec<TestTx>,
    rewards: Vec<Reward>,
    pow_bits: u8,
) -> TestBlock {
    let block = Block {
        header: BlockHeader {
            height: Height(height),
            prev,
            merkle_root: Default::default(),
            timestamp,
            producer: producer.account(),
            nonce: 0,
        },
        signature: Default::default(),
        transactions,
        rewards,
    };
    reseal(block, producer, pow_bits)
}

/// A fresh ledger on `genesis` fed `blocks` in order, each expected to be accepted.
pub fn ledger_with(genesis: &Genesis, blocks: &[TestBlock], now: Timestamp) -> TestLedger {
    let mut ledger = Ledger::new(genesis.clone(), Counter).expect("valid genesis");
    for block in blocks {
        submit_accepted(&mut ledger, block, now);
    }
    ledger
}

/// Sum of every balance.
pub fn supply<S>(state: &ChainState<S>) -> u64 {
    state
        .total_supply()
        .expect("a fixed supply cannot overflow")
        .0
}

/// The supply fixed by `genesis`.
pub fn genesis_supply(genesis: &Genesis) -> u64 {
    genesis.supply().expect("valid genesis").0
}

/// Checks the invariants every ledger must hold at any time: the incremental state
/// equals a replay from genesis, and the supply is the genesis supply.
pub fn assert_consistent(ledger: &TestLedger) {
    let replayed = ledger.replay_from_genesis().expect("replay succeeds");
    assert_eq!(
        &replayed,
        ledger.state(),
        "incremental state differs from replay"
    );
    assert_eq!(supply(ledger.state()), genesis_supply(ledger.genesis()));
}

/// Whether an outcome accepted the submitted block.
pub fn accepted<E>(outcome: &BlockOutcome<E>) -> bool {
    outcome.status == BlockStatus::Accepted
}

/// A far-future "now" at which every test block is acceptable.
pub fn late() -> Timestamp {
    Timestamp(GENESIS_TIME + 10_000_000)
}

/// Overwrites, inserts or removes bytes of `bytes`, or cuts it short, at positions
/// chosen by `edits`. Of every `overwrites + 3` edit kinds, `overwrites` overwrite a
/// byte (which keeps the layout, so more mutants still decode), and one each inserts,
/// removes and truncates.
pub fn mutate(overwrites: u8, mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, value, kind) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let at = at % bytes.len();
        let kind = kind % (overwrites + 3);
        if kind < overwrites {
            bytes[at] = value;
        } else if kind == overwrites {
            bytes.insert(at, value);
        } else if kind == overwrites + 1 {
            bytes.remove(at);
        } else {
            bytes.truncate(at);
        }
    }
    bytes
}
