//! Members-only block production and finality, tried as an attacker would, against the
//! real `Ledger` (no network): an outsider's heavier chain, a member with a hundred
//! times the hash power of the others, a 1-vs-2 partition that heals, and blocks
//! delivered in any order.

mod common;

use common::*;
use ledger_core::{
    BlockError, BlockHash, BlockStatus, Genesis, Height, Keypair, Ledger, ProduceError,
};
use proptest::prelude::*;

/// Difficulty of these tests: blocks are cheap, yet each carries work.
const BITS: u8 = 2;

/// The test genesis with the first three keys as its authorised producers.
fn members_genesis() -> Genesis {
    let mut genesis = genesis(BITS);
    genesis.producers = Some(keys()[..3].iter().map(Keypair::account).collect());
    genesis
}

fn members_ledger() -> TestLedger {
    Ledger::new(members_genesis(), Counter).expect("valid genesis")
}

/// A block by `producer` on `parent` (of height `height - 1`), with no transactions.
fn block_on(parent: BlockHash, height: u64, producer: &Keypair, clock: &mut Clock) -> TestBlock {
    raw_block(parent, height, clock.tick(), producer, vec![], vec![], BITS)
}

/// Extends `ledger`'s tip with one empty block by each producer of `order` in turn,
/// returning the blocks.
fn extend(ledger: &mut TestLedger, order: &[&Keypair], clock: &mut Clock) -> Vec<TestBlock> {
    order
        .iter()
        .map(|producer| {
            let tip = ledger.tip();
            let block = block_on(tip.hash, tip.height.0 + 1, producer, clock);
            submit_as_tip(ledger, &block, clock.now());
            block
        })
        .collect()
}

/// A branch of `len` empty blocks by `producer` on `parent` at `height`.
fn branch(
    parent: BlockHash,
    height: u64,
    producer: &Keypair,
    len: usize,
    clock: &mut Clock,
) -> Vec<TestBlock> {
    let mut blocks: Vec<TestBlock> = Vec::new();
    for i in 0..len as u64 {
        let prev = blocks.last().map_or(parent, |b| b.hash());
        blocks.push(block_on(prev, height + 1 + i, producer, clock));
    }
    blocks
}

#[test]
fn producers_in_turn_make_blocks_final_and_the_tip_reports_it() {
    let keys = keys();
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let mut ledger = members_ledger();
    let mut clock = Clock::new();
    extend(&mut ledger, &[a, b], &mut clock);
    assert_eq!(
        ledger.final_height(),
        Height(0),
        "block 1 is built on by B alone"
    );
    let blocks = extend(&mut ledger, &[c], &mut clock);
    assert_eq!(ledger.final_height(), Height(1), "B and C built on block 1");
    assert_eq!(ledger.tip().final_height, Height(1));
    assert_eq!(ledger.final_hash(), ledger.main_chain()[1]);
    extend(&mut ledger, &[a], &mut clock);
    assert_eq!(ledger.final_height(), Height(2));
    assert_ne!(ledger.final_hash(), blocks[0].hash());
}

#[test]
fn mining_twice_in_a_row_works_and_finalises_nothing_new() {
    let keys = keys();
    let mut ledger = members_ledger();
    let mut clock = Clock::new();
    let now = clock.now();
    let tx = common::tx(&ledger, &keys[0], pay(keys[1].account(), 1), now);
    submit_tx(&mut ledger, tx, now);
    mine_and_submit(&mut ledger, &keys[0], clock.tick());
    let tx = common::tx(&ledger, &keys[0], pay(keys[1].account(), 1), clock.now());
    submit_tx(&mut ledger, tx, clock.now());
    mine_and_submit(&mut ledger, &keys[0], clock.tick());
    assert_eq!(ledger.tip().height, Height(2));
    assert_eq!(ledger.final_height(), Height(0));
    assert_consistent(&ledger);
}

#[test]
fn an_outsiders_heavier_chain_is_refused_before_its_body_is_checked() {
    let keys = keys();
    let outsider = Keypair::from_seed([99; 32]);
    let mut ledger = members_ledger();
    let mut clock = Clock::new();
    extend(&mut ledger, &[&keys[0], &keys[1]], &mut clock);
    let genesis = ledger.genesis_hash();
    let mut attack = branch(genesis, 0, &outsider, 10, &mut clock);
    // A mangled body: only the producer check may speak.
    attack[0].header.merkle_root = ledger_core::Hash::ZERO;
    let attack: Vec<TestBlock> = attack
        .into_iter()
        .map(|b| remine(b, &outsider, BITS))
        .collect();
    let outcome = ledger.submit(attack[0].clone(), clock.now());
    assert_eq!(outcome.status, BlockStatus::Invalid);
    assert!(
        matches!(
            outcome.invalid[0].1,
            BlockError::UnauthorisedProducer { producer, .. } if producer == outsider.account()
        ),
        "{:?}",
        outcome.invalid
    );
    // Later blocks of the outsider's chain wait as orphans of a refused block, or are
    // refused as its descendants: never on the best chain.
    for block in &attack[1..] {
        let status = ledger.submit(block.clone(), clock.now()).status;
        assert_ne!(status, BlockStatus::Accepted);
    }
    assert_eq!(ledger.tip().height, Height(2));
}

#[test]
fn a_member_with_a_hundred_times_the_work_cannot_revert_a_final_block() {
    let keys = keys();
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let mut ledger = members_ledger();
    let mut clock = Clock::new();
    let honest = extend(&mut ledger, &[a, b, c, a, b], &mut clock);
    let final_height = ledger.final_height();
    assert_eq!(final_height, Height(3));
    let final_hash = ledger.final_hash();

    // C forks below the final block and out-works the others a hundredfold.
    let fork = &honest[1];
    let attack = branch(fork.hash(), 2, c, 100 * honest.len(), &mut clock);
    let first = ledger.submit(attack[0].clone(), clock.now());
    assert!(
        matches!(
            first.invalid[0].1,
            BlockError::ConflictsWithFinal { final_height: h, final_hash: f, .. }
                if h == final_height && f == final_hash
        ),
        "{:?}",
        first.invalid
    );
    for block in &attack[1..] {
        let outcome = ledger.submit(block.clone(), clock.now());
        assert_eq!(outcome.status, BlockStatus::Invalid);
    }
    assert_eq!(
        ledger.tip().hash,
        honest.last().expect("five blocks").hash()
    );
    assert_eq!(ledger.final_hash(), final_hash);

    // Delivered child first, the attack waits as orphans and falls when its root is
    // refused.
    let mut fresh = ledger_with(&members_genesis(), &honest, clock.now());
    let late_attack = branch(fork.hash(), 2, c, 20, &mut clock);
    for block in late_attack.iter().rev() {
        let _ = fresh.submit(block.clone(), clock.now());
    }
    assert_eq!(fresh.tip().hash, honest.last().expect("five blocks").hash());

    // Above the final block, work still decides among non-final blocks: C may replace
    // the blocks nobody else has built on yet, but not the final one.
    let tip = ledger.tip();
    let parent = &honest[3];
    let heavier = branch(parent.hash(), 4, c, 3, &mut clock);
    for block in &heavier {
        submit_accepted(&mut ledger, block, clock.now());
    }
    assert_eq!(
        ledger.tip().hash,
        heavier[2].hash(),
        "more work wins above finality"
    );
    assert_ne!(ledger.tip().hash, tip.hash);
    assert_eq!(ledger.final_height(), final_height);
    assert_eq!(ledger.main_chain()[final_height.0 as usize], final_hash);
    assert_consistent(&ledger);
}

#[test]
fn a_one_against_two_partition_heals_to_the_majority_without_losing_a_final_block() {
    let keys = keys();
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let mut clock = Clock::new();
    // All three share a history.
    let mut lone = members_ledger();
    let shared = extend(&mut lone, &[a, b, c], &mut clock);
    let mut pair = ledger_with(&members_genesis(), &shared, clock.now());
    let fork = lone.tip();

    // Cut off, A keeps mining (with a transfer of its own), and gets far ahead in work.
    let now = clock.now();
    let spend = common::tx(&lone, a, pay(keys[3].account(), 7), now);
    let spent = spend.id();
    submit_tx(&mut lone, spend, now);
    let mut alone = vec![mine_and_submit(&mut lone, a, clock.tick())];
    alone.extend(extend(&mut lone, &[a; 11], &mut clock));
    let lone_final = lone.final_height();
    assert!(lone_final <= fork.height, "A alone finalises nothing new");

    // B and C take turns, and finalise blocks A never saw.
    let majority = extend(&mut pair, &[b, c, b, c], &mut clock);
    let pair_final = pair.final_height();
    assert!(pair_final > fork.height);
    assert!(lone.tip().work > pair.tip().work, "A's chain has more work");
    let pair_final_hash = pair.final_hash();

    // The partition heals: each side sends the other everything it has.
    for block in &majority {
        let _ = lone.submit(block.clone(), clock.now());
    }
    let mut refused = 0;
    for block in &alone {
        let outcome = pair.submit(block.clone(), clock.now());
        if outcome.status == BlockStatus::Invalid {
            refused += 1;
        }
    }
    assert_eq!(refused, alone.len(), "the majority refuses A's branch");
    assert_eq!(
        lone.tip().hash,
        pair.tip().hash,
        "A switches to the majority"
    );
    assert_eq!(lone.final_hash(), pair_final_hash);
    assert_eq!(
        pair.final_hash(),
        pair_final_hash,
        "no final block was lost"
    );
    // A's transfer is not lost either: it is back in A's mempool.
    assert!(lone.is_pending(&spent));
    assert_consistent(&lone);
    assert_consistent(&pair);
    assert!(alone.iter().all(|b| !lone.is_on_main_chain(&b.hash())));
}

#[test]
fn open_mining_has_no_finality_and_work_decides_alone() {
    let keys = keys();
    let mut ledger = ledger(BITS);
    let mut clock = Clock::new();
    let honest = extend(
        &mut ledger,
        &[&keys[0], &keys[1], &keys[2], &keys[0]],
        &mut clock,
    );
    assert_eq!(ledger.final_height(), Height(0));
    let outsider = Keypair::from_seed([98; 32]);
    let attack = branch(
        ledger.genesis_hash(),
        0,
        &outsider,
        honest.len() + 1,
        &mut clock,
    );
    for block in &attack {
        submit_accepted(&mut ledger, block, clock.now());
    }
    assert_eq!(ledger.tip().hash, attack.last().expect("blocks").hash());
}

#[test]
fn a_producer_that_built_on_an_abandoned_block_waits_until_finality_settles_it() {
    let keys = keys();
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let mut ledger = members_ledger();
    let mut clock = Clock::new();
    let stranger = Keypair::from_seed([97; 32]);
    assert!(matches!(
        ledger.may_produce(&stranger.account()),
        Err(ProduceError::NotAuthorised { .. })
    ));
    let shared = extend(&mut ledger, &[a], &mut clock);
    // B builds on A's block 1 (a vote for it), on a branch that then loses to C's
    // heavier branch from genesis.
    let on_one = block_on(shared[0].hash(), 2, b, &mut clock);
    submit_as_tip(&mut ledger, &on_one, clock.now());
    assert_eq!(ledger.may_produce(&b.account()), Ok(()));
    let other = branch(ledger.genesis_hash(), 0, c, 3, &mut clock);
    for block in &other {
        submit_accepted(&mut ledger, block, clock.now());
    }
    assert_eq!(ledger.tip().hash, other[2].hash());
    assert_eq!(
        ledger.may_produce(&b.account()),
        Err(ProduceError::Locked {
            producer: b.account(),
            voted: shared[0].hash(),
            height: Height(1),
        })
    );
    // A's own block left the chain, but A built on genesis, which every branch holds.
    assert_eq!(ledger.may_produce(&a.account()), Ok(()));
    // A and C make C's block 1 final: B's vote for A's block 1 can never count now.
    extend(&mut ledger, &[a], &mut clock);
    assert!(ledger.final_height() >= Height(1));
    assert_eq!(ledger.may_produce(&b.account()), Ok(()));
}

/// Honest producers under an asynchronous network: each mines on its own view's tip
/// when [`Ledger::may_produce`] lets it, and its blocks reach the others after random
/// delays.
struct Network {
    views: Vec<TestLedger>,
    /// Blocks on their way: (to whom, block, steps left).
    inflight: Vec<(usize, TestBlock, u8)>,
    all: Vec<TestBlock>,
    clock: Clock,
}

impl Network {
    fn new() -> Network {
        Network {
            views: (0..3).map(|_| members_ledger()).collect(),
            inflight: Vec::new(),
            all: Vec::new(),
            clock: Clock::new(),
        }
    }

    fn step(&mut self, producer: usize, delays: u16) {
        let now = self.clock.tick();
        let mut arrived = Vec::new();
        self.inflight
            .retain_mut(|(to, block, left)| match left.checked_sub(1) {
                Some(l) => {
                    *left = l;
                    true
                }
                None => {
                    arrived.push((*to, block.clone()));
                    false
                }
            });
        for (to, block) in arrived {
            let _ = self.views[to].submit(block, now);
        }
        let keys = keys();
        let view = &mut self.views[producer];
        if view.may_produce(&keys[producer].account()).is_err() {
            return;
        }
        let tip = view.tip();
        let block = block_on(tip.hash, tip.height.0 + 1, &keys[producer], &mut self.clock);
        submit_as_tip(view, &block, self.clock.now());
        for to in (0..3).filter(|&q| q != producer) {
            let delay = ((delays >> (4 * to)) & 0xf) as u8;
            self.inflight.push((to, block.clone(), delay));
        }
        self.all.push(block);
    }

    fn deliver_everything(&mut self) {
        let now = self.clock.tick();
        for (to, block, _) in std::mem::take(&mut self.inflight) {
            let _ = self.views[to].submit(block, now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Honest producers on an asynchronous network never finalise conflicting blocks:
    /// once every block has reached everyone, all three views, and two fresh nodes fed
    /// every block in two different orders, agree on the tip and the final block.
    #[test]
    fn honest_producers_never_split_whatever_the_delays_and_arrival_order(
        steps in proptest::collection::vec((0usize..3, any::<u16>()), 1..40),
        seed in any::<u64>(),
    ) {
        let mut net = Network::new();
        for (producer, delays) in &steps {
            net.step(*producer, *delays);
        }
        net.deliver_everything();
        let mut shuffled = net.all.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let now = net.clock.tick();
        let mut in_order = members_ledger();
        let mut out_of_order = members_ledger();
        for block in &net.all {
            let _ = in_order.submit(block.clone(), now);
        }
        for block in &shuffled {
            let _ = out_of_order.submit(block.clone(), now);
        }
        let tip = in_order.tip().hash;
        let final_hash = in_order.final_hash();
        for view in net.views.iter().chain([&out_of_order]) {
            prop_assert_eq!(view.final_hash(), final_hash);
            prop_assert_eq!(view.tip().hash, tip);
        }
    }
}

#[test]
fn with_four_producers_finality_needs_three_of_them() {
    let keys = keys();
    let (a, b, c, d) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let mut genesis = genesis(BITS);
    genesis.producers = Some(keys[..4].iter().map(Keypair::account).collect());
    let mut ledger = Ledger::new(genesis, Counter).expect("valid genesis");
    let mut clock = Clock::new();
    // A majority of four is three: two producers building on block 1 are not enough.
    extend(&mut ledger, &[a, b, c], &mut clock);
    assert_eq!(
        ledger.final_height(),
        Height(0),
        "only B and C built on block 1"
    );
    extend(&mut ledger, &[d], &mut clock);
    assert_eq!(
        ledger.final_height(),
        Height(1),
        "B, C and D built on block 1"
    );
    extend(&mut ledger, &[a], &mut clock);
    assert_eq!(
        ledger.final_height(),
        Height(2),
        "C, D and A built on block 2"
    );
}
