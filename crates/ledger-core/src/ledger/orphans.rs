//! The orphan pool: blocks waiting for their parent, bounded in number and in bytes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::block::Block;
use crate::bounded::BoundedSet;
use crate::hash::BlockHash;
use crate::limits;
use crate::units::Timestamp;

use super::Origin;

/// A block waiting for its parent, with how it arrived: once the parent comes it is
/// checked as its own origin requires, whoever brought the parent.
pub(super) struct Orphan<T> {
    pub(super) block: Arc<Block<T>>,
    pub(super) origin: Origin,
    /// The `now` it was submitted with.
    pub(super) received: Timestamp,
    /// Its encoded size, counted against [`limits::MAX_ORPHAN_BYTES`].
    pub(super) size: usize,
}

/// Blocks waiting for their parent, bounded in number and in bytes.
pub(super) struct Orphans<T> {
    pub(super) blocks: HashMap<BlockHash, Orphan<T>>,
    pub(super) by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    /// The hashes of `blocks`, oldest first: the order of eviction.
    pub(super) order: BoundedSet<BlockHash>,
    /// Total encoded size of `blocks`.
    pub(super) bytes: usize,
}

impl<T> Default for Orphans<T> {
    fn default() -> Self {
        Orphans {
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            order: BoundedSet::new(limits::MAX_ORPHANS),
            bytes: 0,
        }
    }
}

impl<T> Orphans<T> {
    pub(super) fn insert(&mut self, hash: BlockHash, orphan: Orphan<T>) {
        if self.blocks.contains_key(&hash) {
            return;
        }
        self.by_parent
            .entry(orphan.block.header.prev)
            .or_default()
            .push(hash);
        self.bytes += orphan.size;
        self.blocks.insert(hash, orphan);
        // The oldest go first: past the count, as `order` forgets them, and then for as
        // long as the pool holds too many bytes.
        if let Some(oldest) = self.order.insert(hash) {
            self.remove(&oldest);
        }
        while self.bytes > limits::MAX_ORPHAN_BYTES {
            let Some(oldest) = self.order.pop_oldest() else {
                break;
            };
            self.remove(&oldest);
        }
    }

    pub(super) fn remove(&mut self, hash: &BlockHash) -> Option<Orphan<T>> {
        let orphan = self.blocks.remove(hash)?;
        self.order.remove(hash);
        self.bytes -= orphan.size;
        let prev = orphan.block.header.prev;
        if let Some(siblings) = self.by_parent.get_mut(&prev) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&prev);
            }
        }
        Some(orphan)
    }

    pub(super) fn children_of(&mut self, parent: &BlockHash) -> Vec<Orphan<T>> {
        let hashes = self.by_parent.remove(parent).unwrap_or_default();
        hashes.iter().filter_map(|h| self.remove(h)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockHeader;
    use crate::hash::Hash;
    use crate::keys::{AccountId, Signature};
    use crate::units::Height;

    fn orphan(n: u64) -> (BlockHash, Arc<Block<()>>) {
        let block = Block {
            header: BlockHeader {
                height: Height(n),
                prev: BlockHash::from_hash(Hash::of(&n.to_le_bytes())),
                merkle_root: Hash::ZERO,
                timestamp: Timestamp(0),
                producer: AccountId::default(),
                nonce: 0,
            },
            signature: Signature::default(),
            transactions: Vec::new(),
            rewards: Vec::new(),
        };
        (block.hash(), Arc::new(block))
    }

    fn untrusted(block: Arc<Block<()>>) -> Orphan<()> {
        sized(block, 200)
    }

    fn sized(block: Arc<Block<()>>, size: usize) -> Orphan<()> {
        Orphan {
            block,
            origin: Origin::Untrusted,
            received: Timestamp(0),
            size,
        }
    }

    #[test]
    fn orphan_bookkeeping_stays_bounded_as_orphans_come_and_go() {
        let mut orphans = Orphans::default();
        for n in 0..(10 * limits::MAX_ORPHANS as u64) {
            let (hash, block) = orphan(n);
            let parent = block.header.prev;
            orphans.insert(hash, untrusted(block));
            // The parent arrives: the orphan leaves the pool.
            assert_eq!(orphans.children_of(&parent).len(), 1);
        }
        assert!(orphans.blocks.is_empty() && orphans.by_parent.is_empty());
        assert!(orphans.order.queued() <= 2 * limits::MAX_ORPHANS + 1);
    }

    #[test]
    fn the_oldest_orphan_is_evicted_first() {
        let mut orphans = Orphans::default();
        let all: Vec<_> = (0..=limits::MAX_ORPHANS as u64).map(orphan).collect();
        for (hash, block) in &all {
            orphans.insert(*hash, untrusted(Arc::clone(block)));
        }
        assert_eq!(orphans.blocks.len(), limits::MAX_ORPHANS);
        assert!(!orphans.blocks.contains_key(&all[0].0));
        assert!(orphans.blocks.contains_key(&all[1].0));
        assert!(!orphans.by_parent.contains_key(&all[0].1.header.prev));
    }

    #[test]
    fn orphans_are_bounded_in_bytes_oldest_evicted_first() {
        let mut orphans = Orphans::default();
        let big = limits::MAX_BLOCK_BYTES;
        let fit = limits::MAX_ORPHAN_BYTES / big;
        let all: Vec<_> = (0..fit as u64 + 3).map(orphan).collect();
        for (hash, block) in &all {
            orphans.insert(*hash, sized(Arc::clone(block), big));
            assert!(orphans.bytes <= limits::MAX_ORPHAN_BYTES);
        }
        assert_eq!(orphans.blocks.len(), fit);
        assert_eq!(orphans.bytes, fit * big);
        for (hash, _) in &all[..3] {
            assert!(!orphans.blocks.contains_key(hash), "the oldest go first");
        }
        let (_, last) = &all[all.len() - 1];
        orphans.children_of(&last.header.prev);
        assert_eq!(
            orphans.bytes,
            (fit - 1) * big,
            "a block leaving frees its bytes"
        );
    }
}
