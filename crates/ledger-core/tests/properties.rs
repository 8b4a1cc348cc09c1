//! Property tests for the invariants the ledger promises: canonical encoding, decoders
//! that never panic, tamper evidence, supply conservation, no overdraft or overflow,
//! fork choice independent of arrival order, incremental state equal to a replay,
//! reorganisations that restore state exactly and lose no transaction.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use common::*;
use ledger_core::{
    AccountId, Amount, Block, BlockError, BlockHash, BlockHeader, BlockOutcome, BlockStatus,
    Genesis, Hash, Height, Keypair, Ledger, Member, MemoryBodies, Reward, Signature, Timestamp,
    Transaction, TxBody, TxError, TxId, codec, limits,
};
use proptest::collection::vec;
use proptest::prelude::*;

// ----- strategies ------------------------------------------------------------------------

fn account() -> impl Strategy<Value = AccountId> {
    prop_oneof![
        (0..KEYS).prop_map(|i| keys()[i].account()),
        any::<[u8; 32]>().prop_map(AccountId),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Add),
        (0u16..6).prop_map(Op::Claim),
        "[a-z ]{0,40}".prop_map(Op::Note),
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), 0..2_000u64, any::<u64>()]
}

fn body() -> impl Strategy<Value = TxBody<Op>> {
    prop_oneof![
        (account(), amount()).prop_map(|(to, a)| TxBody::Transfer {
            to,
            amount: Amount(a)
        }),
        op().prop_map(TxBody::App),
    ]
}

fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        Signature(bytes)
    })
}

/// Transactions, properly signed or with arbitrary signature bytes.
fn transaction() -> impl Strategy<Value = TestTx> {
    (
        0..KEYS,
        any::<u64>(),
        any::<u64>(),
        body(),
        any::<[u8; 32]>(),
        proptest::option::of(signature()),
    )
        .prop_map(|(author, nonce, time, body, network, forged)| {
            let mut tx = Transaction::new_signed(
                &BlockHash::from_byte_array(network),
                &keys()[author],
                nonce,
                Timestamp(time),
                body,
            );
            if let Some(signature) = forged {
                tx.signature = signature;
            }
            tx
        })
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        account(),
        any::<u64>(),
    )
        .prop_map(|(height, prev, root, time, producer, nonce)| BlockHeader {
            height: Height(height),
            prev: BlockHash::from_byte_array(prev),
            merkle_root: Hash::from_byte_array(root),
            timestamp: Timestamp(time),
            producer,
            nonce,
        })
}

fn reward() -> impl Strategy<Value = Reward> {
    (account(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(to, a, cause)| Reward {
        to,
        amount: Amount(a),
        cause: TxId::from_byte_array(cause),
    })
}

fn block() -> impl Strategy<Value = TestBlock> {
    (
        header(),
        signature(),
        vec(transaction(), 0..4),
        vec(reward(), 0..3),
    )
        .prop_map(|(header, signature, transactions, rewards)| Block {
            header,
            signature,
            transactions,
            rewards,
        })
}

fn arbitrary_genesis() -> impl Strategy<Value = Genesis> {
    let member = (account(), "[a-z_]{1,12}", "[A-Za-z .]{1,20}", "[a-z]{1,10}").prop_map(
        |(account, username, display_name, role)| Member {
            account,
            username,
            display_name,
            role,
            encryption: None,
        },
    );
    (
        "[a-z-]{1,20}",
        any::<u64>(),
        any::<u8>(),
        proptest::option::of(vec(account(), 0..3)),
        vec(member, 0..3),
        vec((account(), any::<u64>().prop_map(Amount)), 0..4),
        account(),
        proptest::collection::btree_map("[a-z_]{0,10}", any::<u64>(), 0..3),
    )
        .prop_map(
            |(network, time, pow_bits, producers, roster, balances, reserve, parameters)| Genesis {
                network,
                timestamp: Timestamp(time),
                pow_bits,
                producers,
                roster,
                balances,
                reserve,
                parameters,
            },
        )
}

/// Checks that `value` round-trips and that its encoding is the only one: decoding the
/// bytes and encoding again gives the same bytes.
fn assert_canonical<T>(value: &T, limit: usize) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = codec::encode(value);
    prop_assert_eq!(codec::encoded_len(value), bytes.len());
    let decoded: T =
        codec::decode(&bytes, limit).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(codec::encode(&decoded), bytes.clone());
    // Nothing shorter or longer decodes.
    prop_assert!(codec::decode::<T>(&bytes[..bytes.len() - 1], limit).is_err());
    let mut longer = bytes;
    longer.push(0);
    prop_assert!(codec::decode::<T>(&longer, limit).is_err());
    Ok(())
}

/// Decodes untrusted bytes as every top-level type; whatever decodes must be the
/// canonical encoding of what it decodes to.
fn decode_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(tx) = codec::decode::<TestTx>(bytes, limits::MAX_TX_BYTES) {
        prop_assert_eq!(codec::encode(&tx), bytes);
    }
    if let Ok(block) = codec::decode::<TestBlock>(bytes, limits::MAX_BLOCK_BYTES) {
        prop_assert_eq!(codec::encode(&block), bytes);
    }
    if let Ok(genesis) = Genesis::decode(bytes) {
        prop_assert_eq!(genesis.encode(), bytes);
    }
    if let Ok(header) = codec::decode::<BlockHeader>(bytes, ledger_core::HEADER_BYTES) {
        prop_assert_eq!(codec::encode(&header), bytes);
    }
    Ok(())
}

// ----- encoding --------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn transactions_round_trip_canonically(tx in transaction()) {
        assert_canonical(&tx, limits::MAX_TX_BYTES)?;
        prop_assert_eq!(tx.id(), TxId::from_hash(Hash::of(&tx.encode())));
    }

    /// Hashes, account ids and signatures are their bytes, no more: the golden
    /// vectors pin some, this pins every value.
    #[test]
    fn fixed_size_values_encode_as_their_bytes(
        bytes in any::<[u8; 32]>(),
        signature in vec(any::<u8>(), 64),
    ) {
        prop_assert_eq!(codec::encode(&Hash::from_byte_array(bytes)), bytes.to_vec());
        prop_assert_eq!(codec::encode(&AccountId(bytes)), bytes.to_vec());
        prop_assert_eq!(codec::decode::<AccountId>(&bytes, 32), Ok(AccountId(bytes)));
        prop_assert_eq!(codec::decode::<TxId>(&bytes, 32), Ok(TxId::from_byte_array(bytes)));
        let signature = Signature(signature.clone().try_into().unwrap());
        prop_assert_eq!(codec::encode(&signature), signature.0.to_vec());
        prop_assert_eq!(codec::decode::<Signature>(&signature.0, 64), Ok(signature));
    }

    #[test]
    fn headers_round_trip_canonically_in_120_bytes(header in header()) {
        assert_canonical(&header, ledger_core::HEADER_BYTES)?;
        prop_assert_eq!(codec::encode(&header).len(), ledger_core::HEADER_BYTES);
    }

    #[test]
    fn blocks_round_trip_canonically(block in block()) {
        assert_canonical(&block, limits::MAX_BLOCK_BYTES)?;
    }

    #[test]
    fn genesis_round_trips_canonically(genesis in arbitrary_genesis()) {
        assert_canonical(&genesis, limits::MAX_GENESIS_BYTES)?;
        if genesis.check().is_ok() {
            prop_assert_eq!(Genesis::decode(&genesis.encode()), Ok(genesis.clone()));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes)?;
    }

    #[test]
    fn decoding_mangled_encodings_never_panics(
        block in block(),
        genesis in arbitrary_genesis(),
        edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        decode_everything(&mutate(1, block.encode(), &edits))?;
        decode_everything(&mutate(1, block.transactions.first().map(Transaction::encode).unwrap_or_default(), &edits))?;
        decode_everything(&mutate(1, genesis.encode(), &edits))?;
    }
}

// ----- tamper evidence -------------------------------------------------------------------

/// Difficulty of the tamper test: a changed header fails proof of work with
/// probability 255/256, and passes it only to meet the producer's signature.
const TAMPER_BITS: u8 = 8;

/// A valid block on the genesis of `genesis(TAMPER_BITS)` with transfers, payloads and
/// rewards, built once.
fn tamper_fixture() -> &'static TestBlock {
    static BLOCK: OnceLock<TestBlock> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let k = keys();
        let mut ledger = ledger(TAMPER_BITS);
        let now = Clock::new().now();
        send(&mut ledger, &k[0], pay(k[1].account(), 300), now);
        send(&mut ledger, &k[1], TxBody::App(Op::Claim(3)), now);
        send(&mut ledger, &k[2], TxBody::App(Op::Add(7)), now);
        send(
            &mut ledger,
            &k[3],
            TxBody::App(Op::Note("tamper".into())),
            now,
        );
        let block = ledger.mine_block(&k[4], now);
        assert_eq!(block.rewards.len(), 2);
        block
    })
}

/// Flips one bit of the fixture's encoding and checks that the result either does not
/// decode or is not accepted, changes nothing, and does not stop the genuine block.
fn flip_and_check(bit: usize) -> Result<(), TestCaseError> {
    let genuine = tamper_fixture();
    let mut bytes = genuine.encode();
    bytes[bit / 8] ^= 1 << (bit % 8);
    let Ok(flipped) = codec::decode::<TestBlock>(&bytes, limits::MAX_BLOCK_BYTES) else {
        return Ok(());
    };
    prop_assert_eq!(
        codec::encode(&flipped),
        bytes.clone(),
        "non-canonical encoding accepted"
    );
    prop_assert_ne!(&flipped, genuine);
    let mut ledger = ledger(TAMPER_BITS);
    let before = ledger.state().clone();
    let outcome = ledger.submit(flipped, late());
    prop_assert!(
        matches!(
            outcome.status,
            BlockStatus::Invalid | BlockStatus::Orphan { .. }
        ),
        "bit {} gave {:?}",
        bit,
        outcome.status
    );
    prop_assert_eq!(ledger.tip().hash, ledger.genesis_hash());
    prop_assert_eq!(ledger.state(), &before);
    let outcome = ledger.submit(genuine.clone(), late());
    prop_assert_eq!(
        outcome.status,
        BlockStatus::Accepted,
        "bit {}: {:?}",
        bit,
        outcome.invalid
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn flipping_a_bit_of_a_valid_block_never_yields_a_valid_block(bit in any::<usize>()) {
        let bits = tamper_fixture().encode().len() * 8;
        flip_and_check(bit % bits)?;
    }
}

#[test]
fn flipping_any_bit_of_a_valid_block_never_yields_a_valid_block() {
    let bits = tamper_fixture().encode().len() * 8;
    for bit in 0..bits {
        flip_and_check(bit).unwrap();
    }
}

// ----- balances --------------------------------------------------------------------------

/// How a generated transfer picks its amount, relative to the sender's balance when it
/// runs.
#[derive(Clone, Copy, Debug)]
enum Amt {
    Zero,
    Exact,
    OverByOne,
    Max,
    Fixed(u64),
}

fn amt() -> impl Strategy<Value = Amt> {
    prop_oneof![
        Just(Amt::Zero),
        Just(Amt::Exact),
        Just(Amt::OverByOne),
        Just(Amt::Max),
        (1..2_000u64).prop_map(Amt::Fixed),
        any::<u64>().prop_map(Amt::Fixed),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Xfer {
    from: usize,
    to: usize,
    amount: Amt,
}

fn xfer() -> impl Strategy<Value = Xfer> {
    (0..KEYS, 0..KEYS, amt()).prop_map(|(from, to, amount)| Xfer { from, to, amount })
}

/// A genesis whose supply is close to `u64::MAX`, with two accounts near half of it.
fn rich_genesis() -> Genesis {
    let mut genesis = genesis(0);
    let half = u64::MAX / 2;
    for (i, (_, amount)) in genesis.balances.iter_mut().enumerate() {
        *amount = match i {
            0 => Amount(half),
            1 => Amount(half - 10_000),
            _ => *amount,
        };
    }
    genesis
}

/// The balances and nonces a correct ledger must reach.
#[derive(Clone, Debug)]
struct Model {
    balances: Vec<u64>,
    nonces: Vec<u64>,
}

impl Model {
    fn of(genesis: &Genesis) -> Model {
        let k = keys();
        let balances = k
            .iter()
            .map(|key| {
                genesis
                    .balances
                    .iter()
                    .find(|(a, _)| *a == key.account())
                    .map_or(0, |(_, b)| b.0)
            })
            .collect();
        Model {
            balances,
            nonces: vec![0; KEYS],
        }
    }

    fn amount(&self, x: &Xfer) -> u64 {
        let balance = self.balances[x.from];
        match x.amount {
            Amt::Zero => 0,
            Amt::Exact => balance,
            Amt::OverByOne => balance.saturating_add(1),
            Amt::Max => u64::MAX,
            Amt::Fixed(n) => n,
        }
    }

    /// Applies a transfer of `amount`, or says why it must fail.
    fn apply(&mut self, x: &Xfer, amount: u64, id: TxId) -> Result<(), TxError<OpError>> {
        let k = keys();
        if amount == 0 {
            return Err(TxError::ZeroAmount { tx: id });
        }
        let balance = self.balances[x.from];
        if amount > balance {
            return Err(TxError::Overdraft {
                tx: id,
                account: k[x.from].account(),
                balance: Amount(balance),
                amount: Amount(amount),
            });
        }
        self.balances[x.from] -= amount;
        self.balances[x.to] = self.balances[x.to]
            .checked_add(amount)
            .expect("a fixed supply fits in u64");
        self.nonces[x.from] += 1;
        Ok(())
    }

    fn assert_matches(&self, ledger: &TestLedger) -> Result<(), TestCaseError> {
        for (i, key) in keys().iter().enumerate() {
            prop_assert_eq!(ledger.balance(&key.account()), Amount(self.balances[i]));
        }
        prop_assert_eq!(supply(ledger.state()), genesis_supply(ledger.genesis()));
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Blocks of random transfers, built by hand so that invalid ones reach validation:
    /// a block is accepted exactly when every transfer in it is affordable and non-zero,
    /// the first bad one is reported with the balance it lacked, and balances always
    /// equal plain integer arithmetic.
    #[test]
    fn blocks_never_overdraw_or_overflow(blocks in vec(vec(xfer(), 1..5), 1..8)) {
        let k = keys();
        let genesis = rich_genesis();
        let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
        let mut model = Model::of(&genesis);
        let mut clock = Clock::new();
        for transfers in blocks {
            let mut next = model.clone();
            let mut expected = Ok(());
            let mut txs = Vec::new();
            let mut nonces = model.nonces.clone();
            for (index, x) in transfers.iter().enumerate() {
                let amount = next.amount(x);
                nonces[x.from] += 1;
                let tx = Transaction::new_signed(&ledger.genesis_hash(), &k[x.from], nonces[x.from], clock.now(), pay(k[x.to].account(), amount));
                if expected.is_ok()
                    && let Err(error) = next.apply(x, amount, tx.id())
                {
                    expected = Err((index, error));
                }
                txs.push(tx);
            }
            let tip = ledger.tip();
            let block = raw_block(tip.hash, tip.height.0 + 1, clock.tick(), &k[0], txs, vec![], 0);
            let outcome = ledger.submit(block, clock.now());
            match expected {
                Ok(()) => {
                    prop_assert_eq!(outcome.status, BlockStatus::Accepted, "{:?}", outcome.invalid);
                    model = next;
                }
                Err((index, error)) => {
                    let got = outcome.into_result().unwrap_err();
                    prop_assert!(
                        matches!(&got, BlockError::Transaction { index: i, error: e, .. } if *i == index && *e == error),
                        "expected #{} {:?}, got {:?}", index, error, got
                    );
                }
            }
            model.assert_matches(&ledger)?;
        }
        assert_consistent(&ledger);
    }

    /// The same through the mempool: each transfer is accepted exactly when the model
    /// allows it on top of the pending ones, and mining them gives the model's balances.
    #[test]
    fn mempool_never_overdraws_or_overflows(transfers in vec(xfer(), 1..30)) {
        let k = keys();
        let genesis = rich_genesis();
        let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
        let mut follower = Ledger::new(genesis.clone(), Counter).unwrap();
        let mut model = Model::of(&genesis);
        let mut clock = Clock::new();
        for (i, x) in transfers.iter().enumerate() {
            let amount = model.amount(x);
            let tx = tx(&ledger, &k[x.from], pay(k[x.to].account(), amount), clock.now());
            let expected = model.apply(x, amount, tx.id());
            let got = ledger.submit_transaction(tx.clone(), clock.now()).map(|_| ());
            prop_assert_eq!(got, expected);
            if i % 7 == 6 {
                let block = mine_and_submit(&mut ledger, &k[i % KEYS], clock.tick());
                prop_assert!(accepted(&follower.submit(block, clock.now())));
                model.assert_matches(&ledger)?;
            }
        }
        let block = mine_and_submit(&mut ledger, &k[0], clock.tick());
        prop_assert!(accepted(&follower.submit(block, clock.now())));
        model.assert_matches(&ledger)?;
        prop_assert_eq!(ledger.state(), follower.state());
        assert_consistent(&ledger);
    }
}

// ----- supply and replay under random activity -------------------------------------------

#[derive(Clone, Debug)]
enum Action {
    Send { from: usize, body: TxBody<Op> },
    Mine { producer: usize },
}

/// A receiving account: mostly the test keys, sometimes the reserve (which then pays
/// more rewards) or an account that held nothing before.
fn target() -> impl Strategy<Value = AccountId> {
    prop_oneof![
        8 => (0..KEYS).prop_map(|i| keys()[i].account()),
        1 => Just(reserve()),
        1 => Just(stranger()),
    ]
}

fn local_body() -> impl Strategy<Value = TxBody<Op>> {
    prop_oneof![
        (target(), amount()).prop_map(|(to, a)| pay(to, a % (2 * FUNDS))),
        (target(), amount()).prop_map(|(to, a)| pay(to, a)),
        op().prop_map(TxBody::App),
        op().prop_map(TxBody::App),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..KEYS, local_body()).prop_map(|(from, body)| Action::Send { from, body }),
        1 => (0..KEYS).prop_map(|producer| Action::Mine { producer }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever transfers and payloads are sent and mined (rewards included, until the
    /// reserve runs dry), the sum of balances never changes, the incremental state
    /// equals a replay, and a follower validating the blocks reaches the same state.
    #[test]
    fn supply_is_conserved_and_state_equals_replay(pow_bits in 0u8..=3, actions in vec(action(), 1..40)) {
        let genesis = genesis(pow_bits);
        let total = genesis_supply(&genesis);
        let k = keys();
        let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
        let mut follower = Ledger::new(genesis, Counter).unwrap();
        let mut clock = Clock::new();
        for action in actions.into_iter().chain([Action::Mine { producer: 0 }]) {
            match action {
                Action::Send { from, body } => {
                    let tx = tx(&ledger, &k[from], body, clock.now());
                    // Refusals are fine; they must leave everything unchanged.
                    let before = ledger.state().clone();
                    let _ = ledger.submit_transaction(tx, clock.now());
                    prop_assert_eq!(ledger.state(), &before);
                }
                Action::Mine { producer } => {
                    let block = mine_and_submit(&mut ledger, &k[producer], clock.tick());
                    let outcome = follower.submit(block, clock.now());
                    prop_assert!(accepted(&outcome), "{:?}", outcome.invalid);
                    prop_assert_eq!(supply(ledger.state()), total);
                    prop_assert_eq!(ledger.state(), follower.state());
                    prop_assert_eq!(&ledger.replay_from_genesis().unwrap(), ledger.state());
                }
            }
        }
        prop_assert_eq!(ledger.mempool().len(), 0);
    }
}

// ----- fork choice and reorganisations ---------------------------------------------------

/// One block of a generated tree: its parent (an index into the blocks before it, or
/// genesis), its producer and the transactions offered to it.
#[derive(Clone, Debug)]
struct BlockSpec {
    parent: usize,
    producer: usize,
    sends: Vec<(usize, TxBody<Op>)>,
    /// Make the block overdraw (when its parent is valid).
    invalid: bool,
}

fn block_spec() -> impl Strategy<Value = BlockSpec> {
    block_spec_invalid_one_in(0)
}

/// Block specs of which about one in `n` is invalid (none for `n == 0`).
fn block_spec_invalid_one_in(n: u32) -> impl Strategy<Value = BlockSpec> {
    (
        any::<usize>(),
        0..KEYS,
        vec((0..KEYS, local_body()), 0..3),
        any::<u32>(),
    )
        .prop_map(move |(parent, producer, sends, dice)| BlockSpec {
            parent,
            producer,
            sends,
            invalid: n > 0 && dice % n == 0,
        })
}

/// A generated block tree: the blocks, for each the indices of its ancestors (oldest
/// first) and itself, and whether it and all its ancestors are valid.
struct Tree {
    blocks: Vec<TestBlock>,
    paths: Vec<Vec<usize>>,
    valid: Vec<bool>,
}

/// Builds the tree: every valid block is mined by a ledger that has seen exactly its
/// ancestors. A spec marked invalid on a valid parent overdraws; every block on an
/// invalid parent is an empty block sealed by hand, valid but for its ancestry.
fn build_tree(genesis: &Genesis, specs: &[BlockSpec]) -> Tree {
    let k = keys();
    let mut tree = Tree {
        blocks: Vec::new(),
        paths: Vec::new(),
        valid: Vec::new(),
    };
    for (i, spec) in specs.iter().enumerate() {
        let parent = spec.parent % (i + 1);
        let (mut path, parent_valid) = match parent {
            0 => (Vec::new(), true),
            p => (tree.paths[p - 1].clone(), tree.valid[p - 1]),
        };
        // Distinct times keep siblings with the same content distinct.
        let now = Timestamp(GENESIS_TIME + 1_000 * (path.len() as u64 + 1) + i as u64);
        let producer = &k[spec.producer];
        let height = path.len() as u64 + 1;
        let block = if parent_valid {
            let ancestors: Vec<TestBlock> = path.iter().map(|&j| tree.blocks[j].clone()).collect();
            let mut ledger = ledger_with(genesis, &ancestors, late());
            for (from, body) in &spec.sends {
                let tx = tx(&ledger, &k[*from], body.clone(), now);
                let _ = ledger.submit_transaction(tx, now);
            }
            if spec.invalid {
                let overdraw = tx(&ledger, producer, pay(k[0].account(), 100 * FUNDS), now);
                let prev = ledger.tip().hash;
                let pow = genesis.pow_bits;
                raw_block(prev, height, now, producer, vec![overdraw], vec![], pow)
            } else {
                ledger.mine_block(producer, now)
            }
        } else {
            let prev = tree.blocks[parent - 1].hash();
            raw_block(
                prev,
                height,
                now,
                producer,
                vec![],
                vec![],
                genesis.pow_bits,
            )
        };
        tree.blocks.push(block);
        tree.valid.push(parent_valid && !spec.invalid);
        path.push(i);
        tree.paths.push(path);
    }
    tree
}

/// The tip every node must choose among the valid blocks: the highest, then the
/// smallest hash; `None` for genesis.
fn expected_tip(blocks: &[TestBlock], valid: &[bool]) -> Option<usize> {
    (0..blocks.len()).filter(|&i| valid[i]).max_by(|&a, &b| {
        let key = |i: usize| (blocks[i].header.height, std::cmp::Reverse(blocks[i].hash()));
        key(a).cmp(&key(b))
    })
}

fn body_of(ledger: &TestLedger, hash: &BlockHash) -> Arc<TestBlock> {
    let Ok(block) = ledger.block(hash);
    block.expect("every block of the tree is stored")
}

/// Ids of every transaction on the best chain.
fn main_chain_txs(ledger: &TestLedger) -> HashSet<TxId> {
    ledger.main_chain()[1..]
        .iter()
        .flat_map(|h| {
            body_of(ledger, h)
                .transactions
                .iter()
                .map(Transaction::id)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// No transaction is lost in a reorganisation: each transaction of an abandoned block
/// is on the new best chain, back in the mempool, or reported as dropped.
fn assert_nothing_lost(
    ledger: &TestLedger,
    outcome: &BlockOutcome<OpError>,
) -> Result<(), TestCaseError> {
    let abandoned: Vec<TxId> = outcome
        .tip_changes
        .iter()
        .flat_map(|c| c.disconnected.iter())
        .flat_map(|h| {
            body_of(ledger, h)
                .transactions
                .iter()
                .map(Transaction::id)
                .collect::<Vec<_>>()
        })
        .collect();
    if abandoned.is_empty() {
        return Ok(());
    }
    let on_chain = main_chain_txs(ledger);
    let dropped: HashSet<TxId> = outcome
        .tip_changes
        .iter()
        .flat_map(|c| c.dropped.iter().map(TxError::tx))
        .collect();
    for id in abandoned {
        prop_assert!(
            on_chain.contains(&id) || ledger.is_pending(&id) || dropped.contains(&id),
            "transaction {} was lost in a reorganisation",
            id
        );
    }
    Ok(())
}

/// Feeds `order` to a fresh ledger in chunks (signatures of each chunk pre-verified
/// together), checking after every block that only invalid blocks are reported
/// invalid, nothing is lost and the state equals a replay.
fn feed(
    genesis: &Genesis,
    tree: &Tree,
    order: &[usize],
    chunks: &[usize],
) -> Result<TestLedger, TestCaseError> {
    let blocks = &tree.blocks;
    let invalid: HashSet<BlockHash> = (0..blocks.len())
        .filter(|&i| !tree.valid[i])
        .map(|i| blocks[i].hash())
        .collect();
    let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
    let mut sizes = chunks.iter().cycle();
    let mut rest = order;
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let chunk: Vec<Arc<TestBlock>> =
            chunk.iter().map(|&i| Arc::new(blocks[i].clone())).collect();
        ledger.preverify_signatures(&chunk);
        for block in chunk {
            let outcome = ledger.submit((*block).clone(), late());
            prop_assert!(
                invalid.contains(&block.hash())
                    || matches!(
                        outcome.status,
                        BlockStatus::Accepted | BlockStatus::Orphan { .. }
                    ),
                "{:?}: {:?}",
                outcome.status,
                outcome.invalid
            );
            for (hash, error) in &outcome.invalid {
                prop_assert!(invalid.contains(hash), "valid block refused: {:?}", error);
            }
            assert_nothing_lost(&ledger, &outcome)?;
            prop_assert_eq!(&ledger.replay_from_genesis().unwrap(), ledger.state());
        }
    }
    Ok(ledger)
}

fn tree() -> impl Strategy<Value = (u8, Vec<BlockSpec>)> {
    (0u8..=3, vec(block_spec(), 2..10))
}

fn tree_with_invalid_blocks() -> impl Strategy<Value = (u8, Vec<BlockSpec>)> {
    (0u8..=3, vec(block_spec_invalid_one_in(4), 2..12))
}

/// Feeds the tree in order, reversed (every child before its parent) and shuffled, in
/// chunks, and checks that every run ends on the expected tip with its state.
fn check_fork_choice(
    pow_bits: u8,
    specs: &[BlockSpec],
    shuffle_seed: u64,
    chunks: &[usize],
) -> Result<(), TestCaseError> {
    let genesis = genesis(pow_bits);
    let tree = build_tree(&genesis, specs);
    let blocks = &tree.blocks;
    let best = expected_tip(blocks, &tree.valid);
    let best_path: Vec<TestBlock> = best
        .map(|b| tree.paths[b].iter().map(|&i| blocks[i].clone()).collect())
        .unwrap_or_default();
    let reference = ledger_with(&genesis, &best_path, late());

    let in_order: Vec<usize> = (0..blocks.len()).collect();
    let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
    let mut shuffled = in_order.clone();
    // A Fisher-Yates shuffle driven by the generated seed (xorshift).
    let mut state = shuffle_seed | 1;
    for i in (1..shuffled.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        shuffled.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let all_valid = tree.valid.iter().all(|v| *v);
    for order in [&in_order, &reversed, &shuffled] {
        let ledger = feed(&genesis, &tree, order, chunks)?;
        prop_assert_eq!(ledger.tip().hash, reference.tip().hash);
        prop_assert_eq!(ledger.main_chain(), reference.main_chain());
        prop_assert_eq!(ledger.state(), reference.state());
        if all_valid {
            prop_assert_eq!(ledger.tree_size(), blocks.len() + 1);
        }
        prop_assert_eq!(ledger.orphan_count(), 0);
        assert_consistent(&ledger);
        reload(&genesis, &ledger, blocks)?;
    }
    Ok(())
}

/// Restarts a node: a fresh ledger over a store holding what `ledger` stored, fed the
/// stored blocks children first (so they wait as orphans) through
/// `submit` as `BlockInput::Stored`, must reach the same tip and state.
fn reload(
    genesis: &Genesis,
    ledger: &TestLedger,
    blocks: &[TestBlock],
) -> Result<(), TestCaseError> {
    let mut store = MemoryBodies::default();
    let mut stored = Vec::new();
    for block in blocks.iter().rev() {
        // Blocks refused before storage (descendants of known invalid ones) are absent.
        let Ok(Some(body)) = ledger.block(&block.hash()) else {
            continue;
        };
        store.insert(Arc::clone(&body));
        stored.push(body);
    }
    let mut reloaded = Ledger::with_store(genesis.clone(), Counter, store).unwrap();
    for body in stored {
        let _ = reloaded.submit(
            ledger_core::BlockInput::Stored(body),
            ledger_core::Timestamp(0),
        );
    }
    prop_assert_eq!(reloaded.tip(), ledger.tip());
    prop_assert_eq!(reloaded.state(), ledger.state());
    prop_assert_eq!(reloaded.orphan_count(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every arrival order and chunking of the same blocks, orphans included, gives the
    /// same tip and state: the highest block, ties to the smallest hash.
    #[test]
    fn fork_choice_is_independent_of_arrival_order(
        (pow_bits, specs) in tree(),
        shuffle_seed in any::<u64>(),
        chunks in vec(1usize..5, 1..4),
    ) {
        check_fork_choice(pow_bits, &specs, shuffle_seed, &chunks)?;
    }

    /// The same with invalid blocks (and their descendants) anywhere in the tree: the
    /// best valid chain wins whatever the order, and only invalid blocks are refused.
    #[test]
    fn fork_choice_ignores_invalid_branches_in_any_order(
        (pow_bits, specs) in tree_with_invalid_blocks(),
        shuffle_seed in any::<u64>(),
        chunks in vec(1usize..5, 1..4),
    ) {
        check_fork_choice(pow_bits, &specs, shuffle_seed, &chunks)?;
    }
}

/// A chain of `n` blocks on `base` mined by `producer`, with `sends` offered to the
/// mempool before each block; returns the blocks and the ledger that mined them.
fn grow(
    base: TestLedger,
    producer: &Keypair,
    n: usize,
    sends: &[(usize, TxBody<Op>)],
    clock: &mut Clock,
) -> (Vec<TestBlock>, TestLedger) {
    let k = keys();
    let mut ledger = base;
    let mut blocks = Vec::new();
    for i in 0..n {
        let now = clock.tick();
        for (from, body) in sends.iter().skip(i).step_by(n.max(1)) {
            let tx = tx(&ledger, &k[*from], body.clone(), now);
            let _ = ledger.submit_transaction(tx, now);
        }
        let block = ledger.mine_block(producer, now);
        assert!(accepted(&ledger.submit(block.clone(), now)));
        blocks.push(block);
    }
    (blocks, ledger)
}

/// Submits `blocks` in order, checking each step; returns whether the best chain
/// switched branch.
fn submit_all(ledger: &mut TestLedger, blocks: &[TestBlock]) -> Result<bool, TestCaseError> {
    let mut reorg = false;
    for block in blocks {
        let outcome = ledger.submit(block.clone(), late());
        prop_assert!(outcome.invalid.is_empty(), "{:?}", outcome.invalid);
        assert_nothing_lost(ledger, &outcome)?;
        prop_assert_eq!(&ledger.replay_from_genesis().unwrap(), ledger.state());
        reorg |= outcome.tip_changes.iter().any(|c| c.is_reorg());
    }
    Ok(reorg)
}

fn sends() -> impl Strategy<Value = Vec<(usize, TxBody<Op>)>> {
    vec((0..KEYS, local_body()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A→B→A: a ledger that follows branch A, switches to a heavier B, then back to A
    /// once A grows heavier again ends in exactly the state of a ledger that only ever
    /// saw A; at each switch no transaction is lost.
    #[test]
    fn reorg_there_and_back_restores_the_state(
        n_a in 1usize..4,
        extra_b in 1usize..3,
        a_sends in sends(),
        b_sends in sends(),
        a_more in sends(),
        shared in sends(),
    ) {
        let k = keys();
        let genesis = genesis(2);
        let mut clock = Clock::new();
        // Transactions both branches mine: after a switch they are on the new chain.
        let mut base = Ledger::new(genesis.clone(), Counter).unwrap();
        for (from, body) in &shared {
            let tx = tx(&base, &k[*from], body.clone(), clock.now());
            let _ = base.submit_transaction(tx, clock.now());
        }
        let shared: Vec<TestTx> = base.mempool().map(|p| p.tx.clone()).collect();
        let with_shared = || {
            let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
            for tx in &shared {
                ledger.submit_transaction(tx.clone(), Clock::new().now()).expect("valid on genesis");
            }
            ledger
        };
        let (a, builder_a) = grow(with_shared(), &k[0], n_a, &a_sends, &mut clock);
        let (b, builder_b) = grow(with_shared(), &k[1], n_a + extra_b, &b_sends, &mut clock);
        let (a_ext, builder_a) = grow(builder_a, &k[0], extra_b + 1, &a_more, &mut clock);

        let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
        submit_all(&mut ledger, &a)?;
        let only_a = ledger_with(&genesis, &a, late());
        prop_assert_eq!(ledger.state(), only_a.state());
        prop_assert!(submit_all(&mut ledger, &b)?, "A to B must switch branch");
        prop_assert_eq!(ledger.tip().hash, b.last().unwrap().hash());
        prop_assert_eq!(ledger.state(), builder_b.state());
        prop_assert!(submit_all(&mut ledger, &a_ext)?, "B to A must switch branch");
        prop_assert_eq!(ledger.tip().hash, builder_a.tip().hash);
        prop_assert_eq!(ledger.state(), builder_a.state());
        assert_consistent(&ledger);
    }

    /// A→B→A in place: a heavier branch B whose block after a valid prefix is invalid is
    /// abandoned when the invalid block is reached; unless its valid prefix beats A,
    /// the ledger returns to A with exactly A's state and mempool.
    #[test]
    fn a_branch_failing_midway_restores_the_state_exactly(
        n_a in 1usize..5,
        prefix_shorter in any::<bool>(),
        a_sends in sends(),
        b_sends in sends(),
        pending in sends(),
    ) {
        let k = keys();
        let genesis = genesis(2);
        let mut clock = Clock::new();
        let (a, _) = grow(Ledger::new(genesis.clone(), Counter).unwrap(), &k[0], n_a, &a_sends, &mut clock);
        let prefix_len = if prefix_shorter { n_a - 1 } else { n_a };
        let (mut b, builder_b) = grow(Ledger::new(genesis.clone(), Counter).unwrap(), &k[1], prefix_len, &b_sends, &mut clock);
        let overdraw = tx(&builder_b, &k[4], pay(k[3].account(), 100 * FUNDS), clock.now());
        let tip = builder_b.tip();
        let bad = raw_block(tip.hash, tip.height.0 + 1, clock.tick(), &k[1], vec![overdraw], vec![], 2);
        let child = raw_block(bad.hash(), tip.height.0 + 2, clock.tick(), &k[1], vec![], vec![], 2);
        let bad_hash = bad.hash();
        b.extend([bad, child]);

        let mut ledger = Ledger::new(genesis.clone(), Counter).unwrap();
        submit_all(&mut ledger, &a)?;
        let now = clock.now();
        for (from, body) in &pending {
            let tx = tx(&ledger, &k[*from], body.clone(), now);
            let _ = ledger.submit_transaction(tx, now);
        }
        let state_a = ledger.state().clone();
        let mempool_a: Vec<TxId> = ledger.mempool().map(|p| p.id).collect();
        let mut invalid = Vec::new();
        for block in &b {
            let outcome = ledger.submit(block.clone(), late());
            invalid.extend(outcome.invalid.iter().map(|(h, _)| *h));
            assert_nothing_lost(&ledger, &outcome)?;
            prop_assert_eq!(&ledger.replay_from_genesis().unwrap(), ledger.state());
        }
        prop_assert!(invalid.contains(&bad_hash));
        let prefix_wins = prefix_len == n_a && b[prefix_len - 1].hash() < a[n_a - 1].hash();
        if prefix_wins {
            prop_assert_eq!(ledger.tip().hash, builder_b.tip().hash);
            prop_assert_eq!(ledger.state(), builder_b.state());
        } else {
            prop_assert_eq!(ledger.tip().hash, a[n_a - 1].hash());
            prop_assert_eq!(ledger.state(), &state_a);
            let mempool: Vec<TxId> = ledger.mempool().map(|p| p.id).collect();
            prop_assert_eq!(mempool, mempool_a);
        }
        assert_consistent(&ledger);
    }
}
