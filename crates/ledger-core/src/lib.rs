//! `ledger-core`: the pure ledger of healthchain, usable with rules of your own.
//!
//! No sockets, files, clocks or background threads: time comes in as an argument
//! (`now`), randomness as an argument (key generation), and stored block bodies are
//! read through the read-only [`BodySource`] trait: the ledger decides, the runtime
//! around it persists what the ledger reports ([`Ledger::unstored_block`]). The crate
//! knows:
//!
//! - **Identities and hashes**: [`Hash`](struct@Hash) (SHA-256) and its distinct uses [`BlockHash`]
//!   and [`TxId`]; [`AccountId`] (an ed25519 public key), [`Signature`], [`Keypair`];
//!   quantities [`Amount`] (checked arithmetic only), [`Height`], [`Timestamp`].
//! - **The canonical encoding** ([`codec`]): one fixed bincode configuration used for
//!   everything hashed, signed, stored or sent, pinned by golden tests.
//! - **Transactions** ([`Transaction`]): a `Transfer` or an application payload,
//!   signed over the network's genesis hash, with per-author nonces.
//! - **Blocks** ([`Block`], [`BlockHeader`]): Merkle root over transaction ids and
//!   reward entries ([`merkle`], [`verify_inclusion`]), proof of work
//!   ([`BlockTemplate::mine`]), the producer's signature.
//! - **The [`Genesis`]**: network name, difficulty, producers, roster, balances.
//! - **The [`Ledger`]**: block tree, finality and fork choice (the higher final block,
//!   then most work, then smallest tip hash; see [`Ledger::final_height`]),
//!   incremental [`ChainState`] with undo for branch switches, orphans, a bounded
//!   mempool, batched and cached signature checks, the producer rule honest producers
//!   follow ([`Ledger::may_produce`]), and a
//!   [`replay_from_genesis`](Ledger::replay_from_genesis) that must agree with it.
//! - **One signature rule** on every path: ZIP-215 (cofactored ed25519, under which a
//!   batch and single checks always agree), see [`verify_signature`].
//! - **The [`Policy`] trait**: how an application adds payloads, rules and rewards.
//! - **Bulk import**: [`Ledger::import_blocks`] and [`Ledger::import_stream`] verify
//!   the signatures of the next batch on every core while the previous batch is
//!   applied and the one after it is read, encoding each transaction once; [`prepare_blocks`] computes what a
//!   block's bytes alone determine (ids, Merkle root, size) off the ledger, for
//!   [`Ledger::submit`] with [`BlockInput::Prepared`] or [`BlockInput::StoredPrepared`].
//!
//! Validation runs cheapest check first: limits, proof of work, parent, height and
//! time, producer, Merkle root, signatures (producer, then transactions, in one batch),
//! nonces and balances, the policy's rules, and finally the reward entries, which must
//! be exactly those the policy's rules compute. Each failure is its own
//! [`BlockError`] or [`TxError`] variant naming the block and transaction.
//!
//! # Example
//!
//! A policy with "notes" as its payload, one block mined, balances read back:
//!
//! ```
//! use ledger_core::{
//!     AccountId, Amount, Applied, Genesis, Keypair, Ledger, Policy, Timestamp, Transaction,
//!     TxBody, TxContext,
//! };
//!
//! /// Anyone may post a note of up to 100 bytes and earns 1 e-cash from the reserve.
//! struct Notes;
//!
//! #[derive(Debug, thiserror::Error, Clone, PartialEq)]
//! #[error("note too long")]
//! struct TooLong;
//!
//! impl Policy for Notes {
//!     type Payload = String;
//!     type State = Vec<String>;
//!     type Undo = ();
//!     type Error = TooLong;
//!     fn genesis_state(&self, _: &Genesis) -> Vec<String> {
//!         Vec::new()
//!     }
//!     fn apply(
//!         &self,
//!         ctx: &TxContext<'_>,
//!         notes: &mut Vec<String>,
//!         note: &String,
//!     ) -> Result<Applied<()>, TooLong> {
//!         if note.len() > 100 {
//!             return Err(TooLong);
//!         }
//!         notes.push(note.clone());
//!         Ok(Applied { undo: (), rewards: vec![(ctx.author, Amount(1))] })
//!     }
//!     fn undo(&self, notes: &mut Vec<String>, _: ()) {
//!         notes.pop();
//!     }
//! }
//!
//! let alice = Keypair::from_seed([1; 32]);
//! let reserve = AccountId::unspendable("reserve");
//! let genesis = Genesis {
//!     network: "notes".into(),
//!     timestamp: Timestamp(0),
//!     pow_bits: 4,
//!     producers: None,
//!     roster: vec![],
//!     balances: vec![(reserve, Amount(1_000))],
//!     reserve,
//!     parameters: Default::default(),
//! };
//! let mut ledger = Ledger::new(genesis, Notes)?;
//! let now = Timestamp(1_000);
//! let note = Transaction::new_signed(
//!     &ledger.genesis_hash(), &alice, 1, now, TxBody::App("hello".to_string()),
//! );
//! ledger.submit_transaction(note, now)?;
//! let block = ledger.mine_block(&alice, now);
//! ledger.submit(block, now).into_result()?;
//!
//! assert_eq!(ledger.state().app(), &vec!["hello".to_string()]);
//! assert_eq!(ledger.balance(&alice.account()), Amount(1));
//! assert_eq!(ledger.balance(&reserve), Amount(999));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod block;
mod bounded;
pub mod codec;
mod error;
mod genesis;
mod hash;
mod keys;
mod ledger;
pub mod limits;
mod mempool;
pub mod merkle;
mod policy;
mod prepared;
pub mod sealed;
mod state;
mod store;
mod tx;
mod units;
mod verify;

pub use block::{
    Block, BlockHeader, BlockTemplate, HEADER_BYTES, MineStatus, Reward, mine_header,
    verify_inclusion, work,
};
pub use bounded::BoundedSet;
pub use error::{BlockError, BodyFault, ProduceError, StoreFailure, TxError};
pub use genesis::{Genesis, GenesisError, Member};
pub use hash::{BlockHash, Hash, HexError, TxId};
pub use keys::{AccountId, Keypair, Signature, verify_signature};
pub use ledger::{
    BlockInput, BlockOutcome, BlockStatus, Ledger, ReplayError, SharedBlock, Tip, TipChange,
    ValidatedBlock,
};
pub use mempool::PendingTx;
pub use policy::{Applied, Policy, TxContext};
pub use prepared::{PreparedBlock, prepare_blocks};
pub use state::ChainState;
pub use store::{BodySource, MemoryBodies};
pub use tx::{Transaction, TxBody};
pub use units::{Amount, Height, Timestamp};
pub use verify::{
    Preverified, Screen, SignatureSet, prepare_and_verify, preverify, preverify_txs,
    verify_signatures,
};
