//! The extension point: an application's payloads and rules.

use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};

use crate::genesis::{Genesis, Member};
use crate::hash::{BlockHash, TxId};
use crate::keys::AccountId;
use crate::sealed::{BodyAccess, BodyLabel, EncryptionPublicKey, SealedRef};
use crate::units::{Amount, Height, Timestamp};

/// What a policy sees about the transaction it is asked to apply.
#[derive(Clone, Copy, Debug)]
pub struct TxContext<'a> {
    /// The transaction's id.
    pub tx_id: TxId,
    /// Its signing author (the signature has been checked).
    pub author: AccountId,
    /// The author's roster entry, if the author is a member.
    pub member: Option<&'a Member>,
    /// Height of the block it is applied in (for the mempool: the next block's height).
    pub height: Height,
    /// Timestamp of that block (for the mempool: the caller's `now`).
    pub block_time: Timestamp,
    /// The transaction's own timestamp.
    pub tx_time: Timestamp,
    /// The network's genesis.
    pub genesis: &'a Genesis,
    /// Its hash, which names the network.
    pub genesis_hash: BlockHash,
}

/// The result of applying a payload: how to revert it, and what it earned.
#[derive(Debug)]
pub struct Applied<U> {
    /// Everything [`Policy::undo`] needs to restore the previous state exactly.
    pub undo: U,
    /// Reserve payments this payload earns, in order. The ledger pays each one the
    /// reserve can still afford and requires the block to list exactly those.
    pub rewards: Vec<(AccountId, Amount)>,
}

impl<U> Applied<U> {
    /// Applied with no rewards.
    pub fn new(undo: U) -> Self {
        Applied {
            undo,
            rewards: Vec::new(),
        }
    }
}

/// An application's rules over its own payloads.
///
/// The ledger calls [`Policy::apply`] for every `App` transaction, in the mempool and in
/// blocks alike, with signature, nonce and balance rules already enforced. The policy
/// keeps its own state (`State`), which the ledger maintains incrementally: on a
/// branch switch it calls [`Policy::undo`] with the values `apply` returned, newest
/// first. Replaying the chain from genesis must give the same state, so `apply` must
/// depend only on its arguments.
pub trait Policy: Send + Sync + 'static {
    /// The application payload carried by `TxBody::App`.
    type Payload: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static;
    /// The application state derived from the chain.
    type State: Clone + Debug + PartialEq + Send + Sync + 'static;
    /// What reverting one applied payload needs.
    type Undo: Debug + Send + Sync + 'static;
    /// Why a payload is refused.
    type Error: std::error::Error + Clone + PartialEq + Send + Sync + 'static;

    /// The state before any block, derived from the genesis.
    fn genesis_state(&self, genesis: &Genesis) -> Self::State;

    /// Checks `payload` against `state` and applies it. On `Err` the state must be
    /// unchanged.
    fn apply(
        &self,
        ctx: &TxContext<'_>,
        state: &mut Self::State,
        payload: &Self::Payload,
    ) -> Result<Applied<Self::Undo>, Self::Error>;

    /// Reverts one `apply`, given what it returned. Called newest first.
    fn undo(&self, state: &mut Self::State, undo: Self::Undo);

    /// The sealed bodies `payload` refers to, for the runtime that keeps and delivers
    /// them ([`sealed`](crate::sealed)). No validation rule reads a body; by default a
    /// payload refers to none.
    fn sealed_refs(&self, payload: &Self::Payload) -> Vec<SealedRef> {
        let _ = payload;
        Vec::new()
    }

    /// The sealed bodies `payload`, signed by `author`, refers to, each with what it is
    /// about: the label a runtime keeps beside the body to decide whom it serves it to
    /// ([`Policy::body_access`]) and which bodies an erasure removes. By default each of
    /// [`Policy::sealed_refs`] labelled with its author only.
    fn labelled_refs(
        &self,
        author: &AccountId,
        payload: &Self::Payload,
    ) -> Vec<(SealedRef, BodyLabel)> {
        let label = BodyLabel {
            author: *author,
            ..BodyLabel::default()
        };
        self.sealed_refs(payload)
            .into_iter()
            .map(|r| (r, label))
            .collect()
    }

    /// Whether `reader` may be given a body labelled `label` at `now`, under the chain
    /// state `state`: the consent rule a runtime applies before it serves or keeps a
    /// body. By default every body is granted to every reader it is sealed to.
    fn body_access(
        &self,
        genesis: &Genesis,
        state: &Self::State,
        label: &BodyLabel,
        reader: &AccountId,
        now: Timestamp,
    ) -> BodyAccess {
        let _ = (genesis, state, label, reader, now);
        BodyAccess::Granted
    }

    /// Called by the bulk import ([`Ledger::import_blocks`](crate::Ledger::import_blocks))
    /// with the payloads of each block before it is applied, so a policy can
    /// check ahead, batched and on every core, what [`Policy::apply`] would check one by
    /// one: a signature a payload carries, with
    /// [`verify_signatures`](crate::verify_signatures). It may remember only facts (this
    /// signature is valid), never a verdict `apply` would not reach by itself, so it
    /// changes how fast blocks are applied, not whether. By default nothing.
    fn prepare(&self, state: &Self::State, genesis_hash: &BlockHash, payloads: &[&Self::Payload]) {
        let _ = (state, genesis_hash, payloads);
    }

    /// The encryption key bodies are sealed to `account` with now, if it has one: what a
    /// runtime wraps a body's key to when it gives the body to a reader it was not
    /// sealed to. By default none.
    fn encryption_key(
        &self,
        state: &Self::State,
        account: &AccountId,
    ) -> Option<EncryptionPublicKey> {
        let _ = (state, account);
        None
    }

    /// Checks a transfer of `amount` to `to` by `ctx.author` against the application
    /// state (after the nonce check, before the balance check): an application may keep
    /// some accounts out of the e-cash system. On `Err` the transfer is refused, in the
    /// mempool and in blocks alike. By default every transfer is allowed.
    fn check_transfer(
        &self,
        ctx: &TxContext<'_>,
        state: &Self::State,
        to: &AccountId,
        amount: Amount,
    ) -> Result<(), Self::Error> {
        let _ = (ctx, state, to, amount);
        Ok(())
    }
}
