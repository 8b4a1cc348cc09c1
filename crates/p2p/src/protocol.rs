//! The wire messages and their encoding: pure, no I/O.
//!
//! A message travels as one frame: a 4-byte big-endian length, then the message in the
//! canonical encoding of [`ledger_core::codec`]. Decoding always has a byte limit, and
//! [`Message::check_limits`] enforces the counts of [`crate::limits`] on what decoded.
//!
//! An unknown message tag (a variant this version does not know) fails decoding like
//! any other malformed frame: the peer is treated as having sent undecodable data.
//! Protocol upgrades change [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION), which
//! the handshake compares first.

use std::net::SocketAddr;
use std::sync::Arc;

use ledger_core::codec::{self, DecodeError};
use ledger_core::sealed::SealedBody;
use ledger_core::{
    AccountId, Block, BlockHash, Hash, Height, Keypair, Signature, Transaction, verify_signature,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::compact::CompactBlock;
use crate::limits;

/// The tip a node announces in its `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipInfo {
    /// Hash of the best block.
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
    /// Cumulative work of the chain up to it.
    pub work: u128,
    /// Height of the chain's final block (see `Ledger::final_height`).
    pub final_height: Height,
}

/// The first message of each side of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION).
    pub protocol_version: u32,
    /// The genesis hash naming the sender's network.
    pub genesis: BlockHash,
    /// A human-readable name for logs.
    pub node_name: String,
    /// Where the sender accepts connections (for peer exchange), if anywhere.
    pub listen_addr: Option<SocketAddr>,
    /// The sender's best chain.
    pub tip: TipInfo,
    /// Random bytes, fresh for this connection, that the peer's [`KeyProof`] signs.
    pub challenge: [u8; 32],
}

/// Domain of the handshake's key proof.
pub const KEY_PROOF_DOMAIN: &[u8] = b"healthchain/p2p-key-proof/v1";

/// The second handshake message: which roster key the sender holds, proven by a
/// signature over both sides' challenges and the side the prover is on (the one that
/// dialled, or the one that accepted), so it is bound to this connection: it cannot be
/// replayed on another, nor reflected back to the node that made it, on this
/// connection or on a second one to it. `account: None` says the sender holds no key.
///
/// On a plain TCP connection this proves the key to a peer that talks to the prover
/// directly; an attacker who relays a whole session between two honest nodes (a
/// man in the middle) is not stopped by it. Sealed bodies stay encrypted to their
/// readers' keys whoever receives them, so such an attacker learns ciphertext only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProof {
    /// The key the sender proves it holds, if any.
    pub account: Option<AccountId>,
    /// The signature over [`KeyProof::message`] (zero without an account).
    pub signature: Signature,
}

impl KeyProof {
    /// What the holder of `account` signs: the domain, the network, the verifier's
    /// challenge, then the prover's, whether the prover dialled, then the account.
    pub fn message(
        genesis: &BlockHash,
        verifier_challenge: &[u8; 32],
        prover_challenge: &[u8; 32],
        prover_dialled: bool,
        account: &AccountId,
    ) -> Vec<u8> {
        let mut message = Vec::with_capacity(KEY_PROOF_DOMAIN.len() + 129);
        message.extend_from_slice(KEY_PROOF_DOMAIN);
        message.extend_from_slice(genesis.hash().as_bytes());
        message.extend_from_slice(verifier_challenge);
        message.extend_from_slice(prover_challenge);
        message.push(u8::from(prover_dialled));
        message.extend_from_slice(account.as_bytes());
        message
    }

    /// The proof `key` gives a peer that sent `theirs`, after sending `ours`, on a
    /// connection this side dialled (`dialled`) or accepted.
    pub fn sign(
        key: Option<&Keypair>,
        genesis: &BlockHash,
        theirs: &[u8; 32],
        ours: &[u8; 32],
        dialled: bool,
    ) -> KeyProof {
        match key {
            None => KeyProof {
                account: None,
                signature: Signature::default(),
            },
            Some(key) => {
                let account = key.account();
                KeyProof {
                    account: Some(account),
                    signature: key.sign(&Self::message(genesis, theirs, ours, dialled, &account)),
                }
            }
        }
    }

    /// Whether this proof, received by the side that sent `ours`, from the side that
    /// sent `theirs`, is valid; `they_dialled` says which side the prover is on. A
    /// proof without an account is valid and proves nothing.
    pub fn verify(
        &self,
        genesis: &BlockHash,
        ours: &[u8; 32],
        theirs: &[u8; 32],
        they_dialled: bool,
    ) -> bool {
        match &self.account {
            None => true,
            Some(account) => verify_signature(
                account,
                &Self::message(genesis, ours, theirs, they_dialled, account),
                &self.signature,
            ),
        }
    }
}

/// One protocol message. `T` is the application payload of transactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message<T> {
    /// The handshake: must be the first message each way, and only the first.
    Hello(Hello),
    /// A transaction for the mempool.
    Tx(Transaction<T>),
    /// A new block.
    Block(Block<T>),
    /// Asks for best-chain blocks after the first locator entry the receiver knows.
    GetBlocks {
        /// Hashes describing the asker's chain, newest first.
        locator: Vec<BlockHash>,
        /// Most blocks wanted.
        limit: u32,
    },
    /// The answer to `GetBlocks`, parents first.
    Blocks(Vec<Block<T>>),
    /// Asks for addresses of other nodes.
    GetPeers,
    /// Addresses of other nodes.
    Peers(Vec<SocketAddr>),
    /// A keep-alive that must be answered by a `Pong` with the same nonce.
    Ping(u64),
    /// The answer to a `Ping`.
    Pong(u64),
    /// The handshake's second message, after both `Hello`s: the key the sender holds.
    KeyProof(KeyProof),
    /// Sealed bodies: pushed with their transaction to peers they are sealed to, or the
    /// answer to `GetBodies`.
    Bodies(Vec<SealedBody>),
    /// Asks for the sealed bodies with these ciphertext hashes.
    GetBodies(Vec<Hash>),
    /// The answer to `GetBodies` for the bodies the asker may not have: they are not
    /// sealed to the key its handshake proved (or it proved none).
    Denied(Vec<Hash>),
    /// Transactions for the mempool, in the order the sender admitted them (a node
    /// relays each admission batch as one or a few of these).
    Txs(Vec<Transaction<T>>),
    /// A new block, by its transaction ids (see [`crate::compact`]).
    CompactBlock(CompactBlock),
    /// Asks the announcer of a compact block for the transactions at these positions.
    GetBlockTxs {
        /// The block.
        block: BlockHash,
        /// Positions in its transaction list, ascending.
        indexes: Vec<u32>,
    },
    /// The answer to `GetBlockTxs`: the transactions asked for, in order.
    BlockTxs {
        /// The block.
        block: BlockHash,
        /// The transactions.
        txs: Vec<Transaction<T>>,
    },
}

/// A decoded message breaks a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A count in the message is above its limit.
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The first message was not a `Hello`.
    #[error("expected hello, got {got}")]
    ExpectedHello {
        /// The message's kind.
        got: &'static str,
    },
    /// The second handshake message was not a `KeyProof`.
    #[error("expected a key proof, got {got}")]
    ExpectedKeyProof {
        /// The kind of message received.
        got: &'static str,
    },
    /// The peer's key proof does not verify, or the peer echoed this node's challenge.
    #[error("the peer's key proof is invalid")]
    BadKeyProof,
    /// A second `Hello` (or key proof) on an established session.
    #[error("second hello or key proof on an established session")]
    RepeatedHello,
    /// A `Blocks` reply nobody asked for, or longer than asked.
    #[error("unsolicited blocks reply")]
    UnsolicitedBlocks,
}

impl<T> Message<T> {
    /// The message's kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Tx(_) => "tx",
            Message::Txs(_) => "txs",
            Message::CompactBlock(_) => "compact-block",
            Message::GetBlockTxs { .. } => "get-block-txs",
            Message::BlockTxs { .. } => "block-txs",
            Message::Block(_) => "block",
            Message::GetBlocks { .. } => "get-blocks",
            Message::Blocks(_) => "blocks",
            Message::GetPeers => "get-peers",
            Message::Peers(_) => "peers",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::KeyProof(_) => "key-proof",
            Message::Bodies(_) => "bodies",
            Message::GetBodies(_) => "get-bodies",
            Message::Denied(_) => "denied",
        }
    }

    /// Checks the counts of [`crate::limits`] (the byte limit was applied when decoding).
    pub fn check_limits(&self) -> Result<(), ProtocolError> {
        let check = |what, count, max| {
            if count > max {
                Err(ProtocolError::TooMany { what, count, max })
            } else {
                Ok(())
            }
        };
        match self {
            Message::Hello(hello) => check(
                "node name bytes",
                hello.node_name.len(),
                limits::MAX_NODE_NAME,
            ),
            Message::GetBlocks { locator, .. } => {
                check("locator hashes", locator.len(), limits::MAX_LOCATOR_HASHES)
            }
            Message::Blocks(blocks) => check(
                "blocks in reply",
                blocks.len(),
                limits::MAX_BLOCKS_PER_REPLY,
            ),
            Message::Peers(addrs) => check("peer addresses", addrs.len(), limits::MAX_PEER_ADDRS),
            Message::Bodies(bodies) => {
                check(
                    "sealed bodies",
                    bodies.len(),
                    limits::MAX_BODIES_PER_MESSAGE,
                )?;
                let wraps = bodies.iter().map(|b| b.wraps.len()).max().unwrap_or(0);
                check("wraps of a body", wraps, ledger_core::sealed::MAX_WRAPS)
            }
            Message::Txs(txs) => check(
                "transactions in a relay",
                txs.len(),
                limits::MAX_TXS_PER_MESSAGE,
            ),
            Message::CompactBlock(compact) => {
                check(
                    "transaction ids of a compact block",
                    compact.txids.len(),
                    ledger_core::limits::MAX_TXS_PER_BLOCK,
                )?;
                check(
                    "rewards of a compact block",
                    compact.rewards.len(),
                    ledger_core::limits::MAX_REWARDS_PER_BLOCK,
                )
            }
            Message::GetBlockTxs { indexes, .. } => check(
                "positions asked for",
                indexes.len(),
                ledger_core::limits::MAX_TXS_PER_BLOCK,
            ),
            Message::BlockTxs { txs, .. } => check(
                "transactions of a block",
                txs.len(),
                ledger_core::limits::MAX_TXS_PER_BLOCK,
            ),
            Message::GetBodies(hashes) | Message::Denied(hashes) => {
                check("body hashes", hashes.len(), limits::MAX_BODIES_PER_MESSAGE)
            }
            Message::KeyProof(_)
            | Message::Tx(_)
            | Message::Block(_)
            | Message::GetPeers
            | Message::Ping(_)
            | Message::Pong(_) => Ok(()),
        }
    }
}

impl<T: Serialize> Message<T> {
    /// The canonical encoding (the frame's payload).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

/// The encoding of `Message::Blocks` holding these blocks, byte for byte, without
/// copying them into an owned message first: how a node answers `GetBlocks` from the
/// blocks its store shares.
pub fn encode_blocks<T: Serialize>(blocks: &[Arc<Block<T>>]) -> Vec<u8> {
    codec::encode(&BlocksReply(blocks))
}

/// `Message::Blocks` over borrowed blocks (see [`encode_blocks`]).
struct BlocksReply<'a, T>(&'a [Arc<Block<T>>]);

impl<T: Serialize> Serialize for BlocksReply<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The blocks as the sequence `Vec<Block<T>>` would be.
        struct Blocks<'a, T>(&'a [Arc<Block<T>>]);
        impl<T: Serialize> Serialize for Blocks<'_, T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|block| &**block))
            }
        }
        // `Blocks` is the fifth variant of `Message` (index 4).
        serializer.serialize_newtype_variant("Message", 4, "Blocks", &Blocks(self.0))
    }
}

/// The encoding of `Message::Txs` holding these transactions, without copying them
/// into an owned message: how a node relays an admission batch.
pub fn encode_txs<T: Serialize>(txs: &[&Transaction<T>]) -> Vec<u8> {
    codec::encode(&TxsRelay(txs))
}

/// `Message::Txs` over borrowed transactions (see [`encode_txs`]).
struct TxsRelay<'a, 'b, T>(&'a [&'b Transaction<T>]);

impl<T: Serialize> Serialize for TxsRelay<'_, '_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The transactions as the sequence `Vec<Transaction<T>>` would be.
        struct Txs<'a, 'b, T>(&'a [&'b Transaction<T>]);
        impl<T: Serialize> Serialize for Txs<'_, '_, T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().copied())
            }
        }
        // `Txs` is the fourteenth variant of `Message` (index 13).
        serializer.serialize_newtype_variant("Message", 13, "Txs", &Txs(self.0))
    }
}

/// Why a frame's payload is not an acceptable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes are not a message (an unknown tag included).
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    /// The message decoded but breaks a limit.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Decodes one message from a frame's payload, reading at most `limit` bytes, and
/// checks its counts.
pub fn decode_message<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<Message<T>, MessageError> {
    let message: Message<T> = codec::decode(bytes, limit)?;
    message.check_limits()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Hash;

    fn hello() -> Hello {
        Hello {
            protocol_version: limits::PROTOCOL_VERSION,
            genesis: BlockHash::from_hash(Hash::of(b"g")),
            node_name: "a".into(),
            listen_addr: Some("127.0.0.1:5001".parse().expect("valid address")),
            tip: TipInfo {
                hash: BlockHash::from_hash(Hash::of(b"t")),
                height: Height(3),
                work: 48,
                final_height: ledger_core::Height(0),
            },
            challenge: [5; 32],
        }
    }

    #[test]
    fn messages_round_trip() {
        let messages: Vec<Message<String>> = vec![
            Message::Hello(hello()),
            Message::GetBlocks {
                locator: vec![BlockHash::from_hash(Hash::of(b"x"))],
                limit: 5,
            },
            Message::Blocks(vec![]),
            Message::GetPeers,
            Message::Peers(vec!["10.0.0.1:1".parse().expect("valid address")]),
            Message::Ping(7),
            Message::Pong(7),
        ];
        for m in messages {
            let bytes = m.encode();
            assert_eq!(decode_message::<String>(&bytes, 1 << 20), Ok(m));
        }
    }

    #[test]
    fn a_borrowed_blocks_reply_encodes_as_the_message() {
        let block = |n: u64| Block::<String> {
            header: ledger_core::BlockHeader {
                height: Height(n),
                prev: BlockHash::from_hash(Hash::of(&n.to_le_bytes())),
                merkle_root: Hash::of(b"m"),
                timestamp: ledger_core::Timestamp(n * 10),
                producer: ledger_core::AccountId::default(),
                nonce: n,
            },
            signature: ledger_core::Signature::default(),
            transactions: Vec::new(),
            rewards: Vec::new(),
        };
        for count in [0, 1, 3] {
            let blocks: Vec<Arc<Block<String>>> = (1..=count).map(|n| Arc::new(block(n))).collect();
            let owned = Message::Blocks(blocks.iter().map(|b| Block::clone(b)).collect());
            assert_eq!(encode_blocks(&blocks), owned.encode());
        }
    }

    #[test]
    fn a_borrowed_txs_relay_encodes_as_the_message_and_its_count_is_limited() {
        let genesis = BlockHash::default();
        let key = Keypair::from_seed([3; 32]);
        let tx = |n: u64| {
            Transaction::new_signed(
                &genesis,
                &key,
                n,
                ledger_core::Timestamp(n),
                ledger_core::TxBody::App(format!("note {n}")),
            )
        };
        for count in [0, 1, 3] {
            let txs: Vec<Transaction<String>> = (1..=count).map(tx).collect();
            let borrowed: Vec<&Transaction<String>> = txs.iter().collect();
            let owned = Message::Txs(txs.clone());
            assert_eq!(encode_txs(&borrowed), owned.encode());
            assert_eq!(
                decode_message::<String>(&owned.encode(), 1 << 20),
                Ok(owned)
            );
        }
        let many = Message::Txs(vec![tx(1); limits::MAX_TXS_PER_MESSAGE + 1]);
        assert!(matches!(
            decode_message::<String>(&many.encode(), 1 << 30),
            Err(MessageError::Protocol(ProtocolError::TooMany { .. }))
        ));
        let most = Message::Txs(vec![tx(1); limits::MAX_TXS_PER_MESSAGE]);
        assert!(decode_message::<String>(&most.encode(), 1 << 30).is_ok());
    }

    #[test]
    fn unknown_tag_is_undecodable() {
        let mut bytes = Message::<String>::Ping(1).encode();
        bytes[..4].copy_from_slice(&200u32.to_le_bytes());
        assert!(matches!(
            decode_message::<String>(&bytes, 1 << 20),
            Err(MessageError::Decode(_))
        ));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        for bytes in [&[][..], &[1, 2, 3][..], &[0xff; 64][..]] {
            assert!(decode_message::<String>(bytes, 1 << 20).is_err());
        }
    }

    #[test]
    fn long_locator_is_refused() {
        let m: Message<String> = Message::GetBlocks {
            locator: vec![BlockHash::default(); limits::MAX_LOCATOR_HASHES + 1],
            limit: 1,
        };
        assert!(matches!(
            decode_message::<String>(&m.encode(), 1 << 20),
            Err(MessageError::Protocol(ProtocolError::TooMany { .. }))
        ));
    }

    #[test]
    fn long_node_name_is_refused() {
        let mut h = hello();
        h.node_name = "x".repeat(limits::MAX_NODE_NAME + 1);
        let m: Message<String> = Message::Hello(h);
        assert!(decode_message::<String>(&m.encode(), 1 << 20).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_message::<String>(&bytes, 4096);
        }
    }
}
