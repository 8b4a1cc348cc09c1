//! Blocks at a steady pace while transactions wait: which producer makes the next
//! block, and when. A plain function of the chain's state and the time, no I/O.
//!
//! A node configured with a producer key and a block interval
//! ([`NodeConfig::block_interval`](crate::NodeConfig::block_interval)) asks at every
//! tick whether a block of its own is due. The genesis lists the authorised producers;
//! block `h` is the turn of producer `h mod n` (its *in-turn* producer), which produces
//! as soon as transactions wait and at least one interval has passed since the tip's
//! timestamp. So while the network is busy, one block per interval, by each producer in
//! turn, and no two producers race for the same height.
//!
//! If the in-turn producer is silent (offline, or locked by finality), the others take
//! over in order: the producer `k` places after it waits [`BACK_OFF`]` × k` more
//! intervals (the *back-off*), counted from the later of the tip's timestamp and the moment
//! transactions began to wait at its node. So after a quiet spell, when the tip is old,
//! only the in-turn producer produces at once; the others give it its turn first.
//! Production never waits for more than `1 + BACK_OFF × (n - 1)` intervals while one
//! producer of the network still produces. A producer still
//! obeys [`Ledger::may_produce`](ledger_core::Ledger::may_produce): the pace only
//! chooses when an allowed producer produces, so finality is unchanged.
//!
//! Without a producer list (open mining, for teaching), every node with a key
//! produces one interval after the tip, as proof of work decides.

use std::time::Duration;

use ledger_core::{AccountId, Height, Timestamp};

/// Intervals a producer waits for each place it stands after the in-turn producer:
/// two, so that a busy in-turn producer whose previous block arrived late is not raced
/// by the next one (a race costs both a branch switch).
pub const BACK_OFF: u64 = 2;

/// The chain as the pace sees it.
#[derive(Clone, Copy, Debug)]
pub struct PaceInput<'a> {
    /// The authorised producers in genesis order (`None`: open mining).
    pub producers: Option<&'a [AccountId]>,
    /// This node's producer key.
    pub me: AccountId,
    /// The best tip's height.
    pub tip_height: Height,
    /// The best tip's timestamp.
    pub tip_time: Timestamp,
    /// Transactions waiting in the mempool.
    pub pending: usize,
    /// Since when transactions have been waiting at this node without a break.
    pub pending_since: Timestamp,
    /// The current time.
    pub now: Timestamp,
    /// The block interval.
    pub interval: Duration,
}

/// How many places after the in-turn producer of the next block `me` is: 0 when it is
/// its turn, `None` when it is no producer.
pub fn places_after_turn(producers: &[AccountId], me: &AccountId, next: Height) -> Option<u64> {
    let n = producers.len() as u64;
    let mine = producers.iter().position(|p| p == me)? as u64;
    let turn = next.0 % n;
    Some((mine + n - turn) % n)
}

/// Whether `me` should produce the next block now.
pub fn due(input: &PaceInput<'_>) -> bool {
    if input.pending == 0 {
        return false;
    }
    let places = match input.producers {
        None => 0,
        Some(producers) => match places_after_turn(producers, &input.me, input.tip_height.next()) {
            Some(places) => places,
            None => return false,
        },
    };
    let interval = u64::try_from(input.interval.as_millis()).unwrap_or(u64::MAX);
    let since_tip = input.now.0.saturating_sub(input.tip_time.0);
    if places == 0 {
        return since_tip >= interval;
    }
    let from = input.tip_time.0.max(input.pending_since.0);
    input.now.0.saturating_sub(from) >= interval.saturating_mul(1 + BACK_OFF * places)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Keypair;
    use proptest::prelude::*;

    fn producers(n: u8) -> Vec<AccountId> {
        (1..=n)
            .map(|i| Keypair::from_seed([i; 32]).account())
            .collect()
    }

    fn input<'a>(producers: &'a [AccountId], me: usize, height: u64, since: u64) -> PaceInput<'a> {
        PaceInput {
            producers: Some(producers),
            me: producers[me],
            tip_height: Height(height),
            tip_time: Timestamp(1_000_000),
            pending: 5,
            pending_since: Timestamp(0),
            now: Timestamp(1_000_000 + since),
            interval: Duration::from_millis(500),
        }
    }

    #[test]
    fn the_in_turn_producer_produces_one_interval_after_the_tip() {
        let list = producers(3);
        // Block 4 is the turn of producer 4 mod 3 = 1.
        assert!(!due(&input(&list, 1, 3, 499)));
        assert!(due(&input(&list, 1, 3, 500)));
        assert!(!due(&input(&list, 2, 3, 500)));
        assert!(!due(&input(&list, 0, 3, 500)));
    }

    #[test]
    fn the_others_take_over_in_order_when_the_in_turn_producer_is_silent() {
        let list = producers(3);
        // Producer 2 is one place after the turn (1), producer 0 two places; each place
        // waits two intervals more.
        assert!(!due(&input(&list, 2, 3, 1_499)));
        assert!(due(&input(&list, 2, 3, 1_500)));
        assert!(!due(&input(&list, 0, 3, 2_499)));
        assert!(due(&input(&list, 0, 3, 2_500)));
    }

    #[test]
    fn nothing_is_produced_without_pending_transactions_or_by_an_outsider() {
        let list = producers(3);
        let mut quiet = input(&list, 1, 3, 10_000);
        quiet.pending = 0;
        assert!(!due(&quiet));
        let outsider = Keypair::from_seed([9; 32]).account();
        let mut other = input(&list, 1, 3, 10_000);
        other.me = outsider;
        assert!(!due(&other));
        assert_eq!(places_after_turn(&list, &outsider, Height(4)), None);
    }

    #[test]
    fn open_mining_produces_one_interval_after_the_tip() {
        let list = producers(1);
        let mut open = input(&list, 0, 3, 499);
        open.producers = None;
        assert!(!due(&open));
        open.now = Timestamp(1_000_500);
        assert!(due(&open));
    }

    #[test]
    fn after_a_quiet_spell_only_the_in_turn_producer_produces_at_once() {
        let list = producers(3);
        // The tip is a minute old; transactions arrived 100 ms ago.
        let quiet = |me: usize, waited: u64| {
            let mut i = input(&list, me, 3, 60_000);
            i.pending_since = Timestamp(i.now.0 - waited);
            due(&i)
        };
        assert!(quiet(1, 100), "the in-turn producer");
        assert!(!quiet(2, 100) && !quiet(0, 100), "the others wait");
        assert!(
            !quiet(2, 1_499) && quiet(2, 1_500),
            "one place after: three intervals"
        );
        assert!(
            !quiet(0, 2_499) && quiet(0, 2_500),
            "two places after: five intervals"
        );
    }

    #[test]
    fn a_clock_behind_the_tip_waits() {
        let list = producers(3);
        let mut behind = input(&list, 1, 3, 0);
        behind.now = Timestamp(10);
        assert!(!due(&behind));
    }

    proptest! {
        /// At every height exactly one producer is in turn, each producer has its own
        /// place, and whoever is due at some time, every producer placed before it is
        /// due too: producers never race, and a silent one is always replaced.
        #[test]
        fn one_producer_in_turn_and_distinct_back_offs(
            n in 1u8..8,
            height in 0u64..10_000,
            since in 0u64..10_000,
            interval in 1u64..2_000,
        ) {
            let list = producers(n);
            let places: Vec<u64> = list
                .iter()
                .map(|p| places_after_turn(&list, p, Height(height + 1)).expect("a producer"))
                .collect();
            let mut sorted = places.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..u64::from(n)).collect::<Vec<_>>());
            let due_at = |me: usize| {
                let mut i = input(&list, me, height, since);
                i.interval = Duration::from_millis(interval);
                due(&i)
            };
            for a in 0..list.len() {
                for b in 0..list.len() {
                    if places[a] < places[b] && due_at(b) {
                        prop_assert!(due_at(a));
                    }
                }
            }
            // After 1 + BACK_OFF × (n - 1) intervals, every producer is due.
            if since >= interval * (1 + BACK_OFF * (u64::from(n) - 1)) {
                for me in 0..list.len() {
                    prop_assert!(due_at(me));
                }
            }
        }
    }
}
