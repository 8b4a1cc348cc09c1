//! Block headers, blocks, reward entries, and proof-of-work mining.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::{AccountId, Keypair, Signature};
use crate::merkle::{self, MerkleProof};
use crate::tx::Transaction;
use crate::units::{Amount, Height, Timestamp};

/// A block header. Its hash is the block's identity and its proof of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Distance from genesis (genesis is 0).
    pub height: Height,
    /// Hash of the parent block (the genesis hash for block 1).
    pub prev: BlockHash,
    /// Merkle root over the transaction ids, then the reward entries' hashes.
    pub merkle_root: Hash,
    /// When the block was produced.
    pub timestamp: Timestamp,
    /// The producing account, which signs the block hash.
    pub producer: AccountId,
    /// Proof-of-work nonce; must stay the last field so mining can patch it in place.
    pub nonce: u64,
}

/// Bytes of an encoded header: 8 + 32 + 32 + 8 + 32 + 8, all fixed width.
pub const HEADER_BYTES: usize = 120;

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        BlockHash::from_hash(Hash::of(&codec::encode(self)))
    }

    /// Whether `hash` has at least `pow_bits` leading zero bits.
    pub fn meets_target(hash: &BlockHash, pow_bits: u8) -> bool {
        hash.hash().leading_zero_bits() >= u32::from(pow_bits)
    }
}

/// The work a block at difficulty `pow_bits` represents: the expected number of hashes
/// needed to find it.
pub fn work(pow_bits: u8) -> u128 {
    1u128 << pow_bits.min(crate::limits::MAX_POW_BITS)
}

/// A payment from the reserve that the policy's rules award for a transaction of the
/// same block. The producer lists them; every validator re-derives and compares them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    /// Who is paid.
    pub to: AccountId,
    /// How much.
    pub amount: Amount,
    /// The transaction whose recording earned it.
    pub cause: TxId,
}

impl Reward {
    /// The Merkle entry of this reward: hash of its encoding, domain-separated from
    /// transaction ids.
    pub fn entry_hash(&self) -> Hash {
        Hash::of_parts(&[b"healthchain/reward", &codec::encode(self)])
    }
}

/// A block: header, the producer's signature over the block hash, transactions and
/// reward entries. A decoded `Block` is unchecked; only the [`Ledger`](crate::Ledger)
/// turns it into a [`ValidatedBlock`](crate::ValidatedBlock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block<P> {
    /// The header.
    pub header: BlockHeader,
    /// The producer's signature over the block hash.
    pub signature: Signature,
    /// The transactions, in order of application.
    pub transactions: Vec<Transaction<P>>,
    /// Reserve payments earned by these transactions, in order.
    pub rewards: Vec<Reward>,
}

impl<P: Serialize> Block<P> {
    /// The block hash (hash of the header).
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The Merkle entries: transaction ids followed by reward entry hashes.
    pub fn merkle_entries(&self) -> Vec<Hash> {
        let ids = self.transactions.iter().map(|tx| tx.id());
        merkle_entries(ids, &self.rewards)
    }

    /// Proof that the transaction `tx` is in this block, checkable with the header alone
    /// through [`verify_inclusion`].
    pub fn prove(&self, tx: &TxId) -> Option<MerkleProof> {
        let entries = self.merkle_entries();
        let index = entries.iter().position(|e| e == tx.hash())?;
        merkle::prove_index(&entries, index)
    }
}

/// The Merkle entries of a block from its transaction ids and rewards.
pub(crate) fn merkle_entries(ids: impl Iterator<Item = TxId>, rewards: &[Reward]) -> Vec<Hash> {
    ids.map(|id| *id.hash())
        .chain(rewards.iter().map(Reward::entry_hash))
        .collect()
}

/// Checks, with the header alone, that transaction `tx` is in the block.
pub fn verify_inclusion(header: &BlockHeader, tx: &TxId, proof: &MerkleProof) -> bool {
    merkle::verify_proof(&header.merkle_root, tx.hash(), proof)
}

/// The message a producer signs: a domain tag and the block hash.
pub(crate) fn block_signing_message(hash: &BlockHash) -> [u8; 48] {
    let mut message = [0u8; 48];
    message[..16].copy_from_slice(b"healthchain/blk/");
    message[16..].copy_from_slice(hash.hash().as_bytes());
    message
}

/// A block being mined: everything but the proof-of-work nonce and the signature.
///
/// Mining is resumable: [`BlockTemplate::mine`] tries a bounded number of nonces and can
/// be called again, so a caller can interleave it with other work or cancel it.
#[derive(Clone, Debug)]
pub struct BlockTemplate<P> {
    /// The header; its `nonce` is the next one to try.
    pub header: BlockHeader,
    /// Transactions chosen from the mempool.
    pub transactions: Vec<Transaction<P>>,
    /// Rewards those transactions earn.
    pub rewards: Vec<Reward>,
    /// Difficulty to reach.
    pub pow_bits: u8,
    found: Option<BlockHash>,
}

/// Result of a bounded round of mining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MineStatus {
    /// A nonce meeting the target was found; seal the block.
    Found(BlockHash),
    /// The round ended without success; call again to continue.
    Continue,
}

impl<P: Serialize> BlockTemplate<P> {
    pub(crate) fn new(
        header: BlockHeader,
        transactions: Vec<Transaction<P>>,
        rewards: Vec<Reward>,
        pow_bits: u8,
    ) -> Self {
        BlockTemplate {
            header,
            transactions,
            rewards,
            pow_bits,
            found: None,
        }
    }

    /// Tries up to `iterations` nonces, starting at `header.nonce`.
    pub fn mine(&mut self, iterations: u64) -> MineStatus {
        if let Some(hash) = self.found {
            return MineStatus::Found(hash);
        }
        match mine_header(&mut self.header, self.pow_bits, iterations) {
            Some(hash) => {
                self.found = Some(hash);
                MineStatus::Found(hash)
            }
            None => MineStatus::Continue,
        }
    }

    /// Signs the mined header and assembles the block. Returns `None` if no nonce
    /// has been found yet.
    pub fn seal(self, keys: &Keypair) -> Option<Block<P>> {
        let hash = self.found?;
        Some(Block {
            signature: keys.sign(&block_signing_message(&hash)),
            header: self.header,
            transactions: self.transactions,
            rewards: self.rewards,
        })
    }
}

/// Searches nonces from `header.nonce` for at most `iterations` tries. On success the
/// header holds the winning nonce and its hash is returned; otherwise `header.nonce` is
/// the next nonce to try.
pub fn mine_header(header: &mut BlockHeader, pow_bits: u8, iterations: u64) -> Option<BlockHash> {
    let mut bytes = codec::encode(header);
    debug_assert_eq!(bytes.len(), HEADER_BYTES);
    let nonce_at = bytes.len() - 8;
    for _ in 0..iterations {
        bytes[nonce_at..].copy_from_slice(&header.nonce.to_le_bytes());
        let hash = BlockHash::from_hash(Hash::of(&bytes));
        if BlockHeader::meets_target(&hash, pow_bits) {
            return Some(hash);
        }
        header.nonce = header.nonce.wrapping_add(1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BlockHeader {
        BlockHeader {
            height: Height(1),
            prev: BlockHash::from_hash(Hash::of(b"g")),
            merkle_root: Hash::ZERO,
            timestamp: Timestamp(1),
            producer: AccountId([1; 32]),
            nonce: 0,
        }
    }

    #[test]
    fn header_is_fixed_size_and_mining_patches_the_nonce() {
        let mut h = header();
        assert_eq!(codec::encode(&h).len(), HEADER_BYTES);
        let found = mine_header(&mut h, 8, 1_000_000).expect("8 bits is easy");
        assert_eq!(found, h.hash());
        assert!(BlockHeader::meets_target(&found, 8));
    }

    #[test]
    fn mining_resumes_where_it_stopped() {
        let mut h = header();
        let mut rounds = 0;
        let hash = loop {
            rounds += 1;
            if let Some(hash) = mine_header(&mut h, 10, 7) {
                break hash;
            }
        };
        let mut once = header();
        assert_eq!(mine_header(&mut once, 10, 1 << 20), Some(hash));
        assert_eq!(once.nonce, h.nonce);
        assert!(rounds > 1);
    }
}
