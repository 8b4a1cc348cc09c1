//! Where the ledger reads block bodies.
//!
//! The [`Ledger`](crate::Ledger) keeps headers and state in memory. It never writes
//! anywhere: a block it accepts stays in its memory, listed by
//! [`Ledger::unstored_block`](crate::Ledger::unstored_block), until the runtime around it
//! has made the block durable and says so with
//! [`Ledger::mark_stored`](crate::Ledger::mark_stored). From then on the ledger reads
//! the body, when a branch switch or a replay needs it, through the read-only
//! [`BodySource`] it was given. [`MemoryBodies`] is a source in memory, for tests and
//! for embedders that need no persistence (who never call `mark_stored`, so the ledger
//! keeps every body itself).
//!
//! A failure to read is this node's fault, never a verdict on a block: it reaches the
//! caller as a [`BodyFault`](crate::BodyFault), not as a
//! [`BlockError`](crate::BlockError).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use crate::block::Block;
use crate::hash::BlockHash;

/// Read access to the bodies of blocks the ledger has accepted and the runtime has
/// stored (see the [module docs](self)).
pub trait BodySource<P> {
    /// Why a read failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads a block, or `None` if the source does not have it.
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
    /// Adds a block under its hash (for a source prepared before the ledger is built,
    /// such as a store reloaded with [`BlockInput::Stored`](crate::BlockInput::Stored)).
    pub fn insert(&mut self, block: Arc<Block<P>>)
    where
        P: serde::Serialize,
    {
        self.blocks.insert(block.hash(), block);
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

impl<P> BodySource<P> for MemoryBodies<P> {
    type Error = Infallible;

    fn get(&self, hash: &BlockHash) -> Result<Option<Arc<Block<P>>>, Infallible> {
        Ok(self.blocks.get(hash).cloned())
    }
}
