//! Signed transactions.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::hash::{BlockHash, Hash, TxId};
use crate::keys::{AccountId, Keypair, Signature};
use crate::units::{Amount, Timestamp};

/// What a transaction does: move e-cash, or carry an application payload `P` that the
/// network's [`Policy`](crate::Policy) interprets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxBody<P> {
    /// Moves `amount` from the author to `to`.
    Transfer {
        /// The receiving account.
        to: AccountId,
        /// How much; must be non-zero.
        amount: Amount,
    },
    /// An application event.
    App(P),
}

/// A transaction signed by its author.
///
/// The signature covers the network's genesis hash followed by the encoding of every
/// other field, so a transaction cannot be replayed on another network; the per-author
/// `nonce` must strictly increase, so it cannot be replayed on this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction<P> {
    /// The signing account.
    pub author: AccountId,
    /// Strictly greater than the author's previous nonce.
    pub nonce: u64,
    /// When the author created it.
    pub timestamp: Timestamp,
    /// What it does.
    pub body: TxBody<P>,
    /// The author's signature; must stay the last field (see [`Transaction::signing_bytes`]).
    pub signature: Signature,
}

/// Borrowed view of the signed fields, encoded exactly like the first four fields of
/// [`Transaction`].
#[derive(Serialize)]
struct Unsigned<'a, P> {
    author: &'a AccountId,
    nonce: u64,
    timestamp: Timestamp,
    body: &'a TxBody<P>,
}

/// Length of an encoded [`Signature`]: its 64 bytes, with no length prefix.
const SIGNATURE_LEN: usize = 64;

impl<P: Serialize> Transaction<P> {
    /// Builds and signs a transaction for the network named by `genesis`.
    pub fn new_signed(
        genesis: &BlockHash,
        keys: &Keypair,
        nonce: u64,
        timestamp: Timestamp,
        body: TxBody<P>,
    ) -> Transaction<P> {
        let author = keys.account();
        let unsigned = codec::encode(&Unsigned {
            author: &author,
            nonce,
            timestamp,
            body: &body,
        });
        let signature = keys.sign(&signing_message(genesis, &unsigned));
        Transaction {
            author,
            nonce,
            timestamp,
            body,
            signature,
        }
    }

    /// The canonical encoding of the whole signed transaction.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The transaction id: hash of the signed encoding.
    pub fn id(&self) -> TxId {
        TxId::from_hash(Hash::of(&self.encode()))
    }

    /// The bytes the signature covers, on the network named by `genesis`.
    pub fn signing_bytes(&self, genesis: &BlockHash) -> Vec<u8> {
        let encoded = self.encode();
        signing_message(genesis, unsigned_part(&encoded))
    }
}

/// The signed prefix of an encoded transaction: everything but the trailing signature.
pub(crate) fn unsigned_part(encoded: &[u8]) -> &[u8] {
    &encoded[..encoded.len().saturating_sub(SIGNATURE_LEN)]
}

/// The message a signature covers, in parts: the genesis hash of the network, then the
/// signed prefix (`unsigned`) of the transaction's encoding.
pub(crate) fn signed_parts<'a>(genesis: &'a BlockHash, unsigned: &'a [u8]) -> [&'a [u8]; 2] {
    [genesis.hash().as_bytes(), unsigned]
}

/// [`signed_parts`], joined.
pub(crate) fn signing_message(genesis: &BlockHash, unsigned: &[u8]) -> Vec<u8> {
    signed_parts(genesis, unsigned).concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::verify_signature;

    #[test]
    fn signature_covers_genesis_and_fields() {
        let keys = Keypair::from_seed([1; 32]);
        let net = BlockHash::from_hash(Hash::of(b"net"));
        let tx: Transaction<()> = Transaction::new_signed(
            &net,
            &keys,
            1,
            Timestamp(5),
            TxBody::Transfer {
                to: AccountId([2; 32]),
                amount: Amount(10),
            },
        );
        assert!(verify_signature(
            &tx.author,
            &tx.signing_bytes(&net),
            &tx.signature
        ));
        let other = BlockHash::from_hash(Hash::of(b"other"));
        assert!(!verify_signature(
            &tx.author,
            &tx.signing_bytes(&other),
            &tx.signature
        ));
        let mut changed = tx.clone();
        changed.nonce = 2;
        assert!(!verify_signature(
            &changed.author,
            &changed.signing_bytes(&net),
            &changed.signature
        ));
        assert_ne!(tx.id(), changed.id());
    }
}
