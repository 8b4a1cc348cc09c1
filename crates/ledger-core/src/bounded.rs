//! A set that remembers at most a fixed number of keys, forgetting the oldest first.
//!
//! The ledger remembers several things only as long as memory allows: signatures it
//! already verified, blocks it found invalid, blocks waiting for their parent. Each is a
//! [`BoundedSet`]; forgetting is always safe for them (a forgotten signature is verified
//! again, a forgotten invalid block is refused again on its merits). It is public so
//! that a runtime's own bounded memories (a node's "seen" sets for gossip) are the same
//! type.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A set of at most `capacity` keys. Inserting into a full set forgets the oldest key
/// (the one inserted longest ago); inserting a key already present changes nothing.
///
/// Removal is `O(1)`: a removed key stays in the insertion queue until it reaches the
/// front or the queue grows past twice the capacity, when the queue is compacted, so
/// memory stays `O(capacity)` however keys come and go.
#[derive(Debug)]
pub struct BoundedSet<K> {
    capacity: usize,
    /// Each member with the sequence number of its insertion.
    members: HashMap<K, u64>,
    /// Keys in insertion order, oldest first, with their sequence number; an entry is
    /// live only while `members` holds that key with that number.
    order: VecDeque<(K, u64)>,
    /// The next sequence number.
    next: u64,
}

impl<K: Hash + Eq + Copy> BoundedSet<K> {
    /// An empty set that holds at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        BoundedSet {
            capacity,
            members: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &K) -> bool {
        self.members.contains_key(key)
    }

    /// Adds `key` unless present; when the set was full, forgets its oldest key and
    /// returns it.
    pub fn insert(&mut self, key: K) -> Option<K> {
        if self.members.contains_key(&key) {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        self.members.insert(key, seq);
        self.order.push_back((key, seq));
        if self.order.len() > 2 * self.capacity {
            let members = &self.members;
            self.order
                .retain(|(k, s)| members.get(k).is_some_and(|m| m == s));
        }
        if self.members.len() > self.capacity {
            self.pop_oldest()
        } else {
            None
        }
    }

    /// Adds `key` unless present (forgetting the oldest key when full); whether it was
    /// new: how a gossip layer tells a message it has not seen yet.
    pub fn record(&mut self, key: K) -> bool {
        if self.contains(&key) {
            return false;
        }
        self.insert(key);
        true
    }

    /// Removes `key`; whether it was present.
    pub fn remove(&mut self, key: &K) -> bool {
        self.members.remove(key).is_some()
    }

    /// Removes and returns the oldest key, if any.
    pub fn pop_oldest(&mut self) -> Option<K> {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.members.get(&key) == Some(&seq) {
                self.members.remove(&key);
                return Some(key);
            }
        }
        None
    }

    /// Number of keys in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Entries in the insertion queue, removed keys not yet dropped included.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn record_says_whether_a_key_is_new() {
        let mut set = BoundedSet::new(2);
        assert!(set.record(1));
        assert!(!set.record(1));
        assert!(set.record(2));
        assert!(set.record(3));
        assert!(!set.contains(&1), "the oldest is forgotten");
        assert!(!set.record(3));
    }

    #[test]
    fn the_queue_is_compacted_only_past_twice_the_capacity() {
        let mut set = BoundedSet::new(4);
        for k in 0..4 {
            set.insert(k);
        }
        for k in 0..4 {
            assert!(set.remove(&k));
        }
        // Removed keys stay queued until the queue grows past twice the capacity.
        for k in 4..8 {
            set.insert(k);
        }
        assert_eq!(set.queued(), 8, "exactly twice the capacity: not yet");
        set.insert(8);
        assert_eq!(set.len(), 4);
        assert!(set.queued() <= 5, "compacted to the live keys");
    }

    #[test]
    fn a_full_set_forgets_its_oldest_key() {
        let mut set = BoundedSet::new(3);
        for k in 0..3 {
            assert_eq!(set.insert(k), None);
        }
        assert_eq!(set.insert(0), None, "present keys keep their place");
        assert_eq!(set.insert(3), Some(0));
        assert!(!set.contains(&0));
        assert!((1..=3).all(|k| set.contains(&k)));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn removed_keys_are_skipped_and_the_queue_stays_bounded() {
        let mut set = BoundedSet::new(4);
        for k in 0..1_000 {
            set.insert(k);
            assert!(set.remove(&k));
            assert!(set.queued() <= 2 * 4 + 1);
        }
        assert_eq!(set.len(), 0);
        assert_eq!(set.pop_oldest(), None);
        // A key inserted again takes its new place in the order.
        set.insert(1);
        set.insert(2);
        set.remove(&1);
        set.insert(1);
        assert_eq!(set.pop_oldest(), Some(2));
        assert_eq!(set.pop_oldest(), Some(1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
        PopOldest,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..32).prop_map(Op::Insert),
            1 => (0u8..32).prop_map(Op::Remove),
            1 => Just(Op::PopOldest),
        ]
    }

    proptest! {
        /// Against a plain list in insertion order: the set never holds more than its
        /// capacity, and what it forgets is always the oldest key it holds.
        #[test]
        fn never_exceeds_capacity_and_forgets_the_oldest_first(
            capacity in 1usize..8,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut set = BoundedSet::new(capacity);
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let forgotten = set.insert(k);
                        let expected = if model.contains(&k) {
                            None
                        } else {
                            model.push(k);
                            (model.len() > capacity).then(|| model.remove(0))
                        };
                        prop_assert_eq!(forgotten, expected);
                    }
                    Op::Remove(k) => {
                        let present = model.contains(&k);
                        model.retain(|m| *m != k);
                        prop_assert_eq!(set.remove(&k), present);
                    }
                    Op::PopOldest => {
                        let expected = (!model.is_empty()).then(|| model.remove(0));
                        prop_assert_eq!(set.pop_oldest(), expected);
                    }
                }
                prop_assert!(set.len() <= capacity);
                prop_assert_eq!(set.len(), model.len());
                prop_assert!(set.queued() <= 2 * capacity + 1);
                for k in 0..32 {
                    prop_assert_eq!(set.contains(&k), model.contains(&k));
                }
            }
        }
    }
}
