//! Where the ledger keeps block bodies.
//!
//! The [`Ledger`](crate::Ledger) keeps headers and state in memory and reaches block
//! bodies through [`BodyStore`], so a node can keep them on disk. [`MemoryBodies`] keeps
//! them in memory, for tests and embedders that need no persistence.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use crate::block::Block;
use crate::hash::BlockHash;

/// Storage for the bodies of every block the ledger has accepted.
///
/// `put` must make the block durable before it returns if the store is persistent:
/// the ledger treats a returned `Ok` as "this block survives a crash".
pub trait BodyStore<P> {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores a block under its hash.
    fn put(&mut self, hash: &BlockHash, block: &Arc<Block<P>>) -> Result<(), Self::Error>;

    /// Reads a block, or `None` if the store does not have it.
    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<P>>>, Self::Error>;
}

/// Block bodies kept in memory.
#[derive(Debug)]
pub struct MemoryBodies<P> {
    blocks: HashMap<BlockHash, Arc<Block<P>>>,
}

impl<P> Default for MemoryBodies<P> {
    fn default() -> Self {
        MemoryBodies {
            blocks: HashMap::new(),
        }
    }
}

impl<P> MemoryBodies<P> {
    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

impl<P> BodyStore<P> for MemoryBodies<P> {
    type Error = Infallible;

    fn put(&mut self, hash: &BlockHash, block: &Arc<Block<P>>) -> Result<(), Infallible> {
        self.blocks.insert(*hash, Arc::clone(block));
        Ok(())
    }

    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<P>>>, Infallible> {
        Ok(self.blocks.get(hash).cloned())
    }
}
