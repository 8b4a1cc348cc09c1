//! Events read back from the block store by the state's indexes.
//!
//! [`HealthState`] keeps where each event was recorded (block height and transaction
//! id); the events themselves (public facts and sealed references) stay in the blocks.
//! These functions read them back, one block per distinct height, so their cost depends on
//! the patient's number of events, not on the length of the chain.
//!
//! An event holds public facts; what people wrote is sealed. A [`BodyReader`] (a
//! member's account and encryption key) opens the sections sealed to it from the
//! bodies its vault holds, and says [`Reading::Sealed`] for the rest.

use std::sync::Arc;

use ledger_core::{AccountId, Block, BlockHash, BodySource, Hash, Height, Ledger, TxBody, TxId};

use crate::body::{Body, BodyError, Section};
use crate::event::{Event, Prescription};
use crate::ids::{PatientId, PrescriptionId};
use crate::policy::HealthPolicy;
use crate::seal::{Binding, EncryptionKey, OpenSealed, SealError, SealedBody, SealedRef};
use crate::state::{HealthState, HistoryEntry, Recorded};

/// An event read back from its block, with where and by whom it was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its transaction, block height, block time and author.
    pub recorded: Recorded,
    /// The event.
    pub event: Event,
}

/// Why an indexed event could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError<E: std::error::Error + 'static> {
    /// The block store failed.
    #[error("cannot read the block at height {height}: {source}")]
    Store {
        /// Height of the block read.
        height: Height,
        /// The store's error.
        #[source]
        source: E,
    },
    /// The best chain has no block body at this height (the state and the chain
    /// disagree, or the store lost the body).
    #[error("no block body at height {height} of the best chain")]
    MissingBlock {
        /// The height.
        height: Height,
    },
    /// The block at the recorded height does not carry the event.
    #[error("transaction {tx_id} is not an event of the block at height {height}")]
    NotInBlock {
        /// The transaction looked for.
        tx_id: TxId,
        /// The block's height.
        height: Height,
    },
}

/// The best-chain block at `height`, read from the store.
fn block_at<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    height: Height,
) -> Result<Arc<Block<Event>>, RecordError<B::Error>> {
    let hash = usize::try_from(height.0)
        .ok()
        .and_then(|h| ledger.main_chain().get(h))
        .ok_or(RecordError::MissingBlock { height })?;
    ledger
        .block(hash)
        .map_err(|source| RecordError::Store { height, source })?
        .ok_or(RecordError::MissingBlock { height })
}

/// Finds transaction `tx_id` in `block` and returns its event.
fn event_in<E: std::error::Error>(
    block: &Block<Event>,
    tx_id: &TxId,
) -> Result<RecordedEvent, RecordError<E>> {
    let height = block.header.height;
    block
        .transactions
        .iter()
        .find(|tx| tx.id() == *tx_id)
        .and_then(|tx| match &tx.body {
            TxBody::App(event) => Some(RecordedEvent {
                recorded: Recorded {
                    tx_id: *tx_id,
                    height,
                    time: block.header.timestamp,
                    author: tx.author,
                },
                event: event.clone(),
            }),
            TxBody::Transfer { .. } => None,
        })
        .ok_or(RecordError::NotInBlock {
            tx_id: *tx_id,
            height,
        })
}

/// The event carried by transaction `tx_id` of the best-chain block at `height`, as
/// recorded in a [`Recorded`] or a [`HistoryEntry`] of the confirmed state.
pub fn recorded_event<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    height: Height,
    tx_id: &TxId,
) -> Result<RecordedEvent, RecordError<B::Error>> {
    event_in(&*block_at(ledger, height)?, tx_id)
}

/// A patient's confirmed history with each event, its time and author, in chain
/// order; `None` for a patient the confirmed state does not know. Reads each block
/// holding one of the patient's events once.
pub fn patient_history<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    patient: &PatientId,
) -> Result<Option<Vec<RecordedEvent>>, RecordError<B::Error>> {
    let state: &HealthState = ledger.state().app();
    let Some(entries) = state.history(patient) else {
        return Ok(None);
    };
    let mut events = Vec::with_capacity(entries.len());
    let mut block: Option<Arc<Block<Event>>> = None;
    for HistoryEntry { tx_id, height, .. } in entries {
        let current = match block.take() {
            Some(b) if b.header.height == *height => b,
            _ => block_at(ledger, *height)?,
        };
        events.push(event_in(&current, tx_id)?);
        block = Some(current);
    }
    Ok(Some(events))
}

/// A confirmed prescription (its sealed details and the results it reads),
/// read from its block; `None` if the confirmed state has no such prescription.
pub fn prescription<B: BodySource<Event>>(
    ledger: &Ledger<HealthPolicy, B>,
    id: &PrescriptionId,
) -> Result<Option<Prescription>, RecordError<B::Error>> {
    let Some(record) = ledger.state().app().prescription(id) else {
        return Ok(None);
    };
    let at = &record.prescribed;
    match recorded_event(ledger, at.height, &at.tx_id)?.event {
        Event::Prescription(p) => Ok(Some(p)),
        _ => Err(RecordError::NotInBlock {
            tx_id: at.tx_id,
            height: at.height,
        }),
    }
}

/// What a reader sees of one sealed section of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reading {
    /// The clear text.
    Clear(Body),
    /// Sealed to others: this reader has no wrap for it (or no key at all).
    Sealed,
    /// The body is not in the vault (not sealed to this node, or not received yet).
    Missing,
    /// The body is in the vault but does not open as it should: the binding, the
    /// commitment or its form is wrong.
    Refused(ReadError),
}

/// Why a body sealed to the reader could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Opening failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The clear text is not a body of its section.
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl Reading {
    /// The clear body, if this is one.
    pub fn clear(&self) -> Option<&Body> {
        match self {
            Reading::Clear(body) => Some(body),
            _ => None,
        }
    }
}

/// A member reading sealed bodies: its account and its encryption key, on one network.
#[derive(Debug)]
pub struct BodyReader<'a> {
    genesis: BlockHash,
    account: AccountId,
    key: &'a EncryptionKey,
}

impl<'a> BodyReader<'a> {
    /// `account`, with its encryption key `key`, on the network `genesis`.
    pub fn new(genesis: BlockHash, account: AccountId, key: &'a EncryptionKey) -> Self {
        BodyReader {
            genesis,
            account,
            key,
        }
    }

    /// The account reading.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Reads `section` of `event`, written by `author`, from `vault` (looked up by the
    /// ciphertext hash on the chain). `None` if the event has no such section.
    pub fn read(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
        vault: impl Fn(&Hash) -> Option<SealedBody>,
    ) -> Option<Reading> {
        let reference = event.sealed_section(section)?;
        self.read_at(author, event, section, &reference, vault)
    }

    /// Reads the body `reference` names in `section` of `event`: for a section an event
    /// holds more than once (a consultation's test orders, [`Event::sealed_order`]).
    pub fn read_at(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
        reference: &SealedRef,
        vault: impl Fn(&Hash) -> Option<SealedBody>,
    ) -> Option<Reading> {
        let patient = event.patient_id()?;
        let binding = Binding::new(self.genesis, *author, patient, event.kind());
        Some(self.read_sealed(&binding, section, reference, vault))
    }

    /// Reads the body `reference` names, sealed in `section` of the event `binding`
    /// describes, from `vault`: [`BodyReader::read`] when the event itself is not at
    /// hand (a [`Patient`](crate::Patient)'s `demographics`, say).
    pub fn read_sealed(
        &self,
        binding: &Binding,
        section: Section,
        reference: &SealedRef,
        vault: impl Fn(&Hash) -> Option<SealedBody>,
    ) -> Reading {
        let Some(body) = vault(&reference.ciphertext_hash) else {
            return Reading::Missing;
        };
        if !body.is_sealed_to(&self.account) {
            return Reading::Sealed;
        }
        let read = body
            .open(reference, binding, &self.account, self.key)
            .map_err(ReadError::from)
            .and_then(|clear| Body::decode(&clear, section).map_err(ReadError::from));
        match read {
            Ok(body) => Reading::Clear(body),
            Err(error) => Reading::Refused(error),
        }
    }
}

/// Reads `section` of `event` as `reader` (none: a node holding no member key), from
/// `vault`: [`BodyReader::read`], or [`Reading::Sealed`] without a reader.
pub fn read_section(
    reader: Option<&BodyReader<'_>>,
    author: &AccountId,
    event: &Event,
    section: Section,
    vault: impl Fn(&Hash) -> Option<SealedBody>,
) -> Option<Reading> {
    let reference = event.sealed_section(section)?;
    read_reference(reader, author, event, section, &reference, vault)
}

/// Reads the body `reference` names in `section` of `event` as `reader`:
/// [`read_section`] for a section an event holds more than once.
pub fn read_reference(
    reader: Option<&BodyReader<'_>>,
    author: &AccountId,
    event: &Event,
    section: Section,
    reference: &SealedRef,
    vault: impl Fn(&Hash) -> Option<SealedBody>,
) -> Option<Reading> {
    match reader {
        Some(reader) => reader.read_at(author, event, section, reference, vault),
        None => event.patient_id().map(|_| Reading::Sealed),
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::{BlockHash, Hash, MemoryBodies, Timestamp};

    use super::*;
    use crate::demo::{DEMO_GENESIS_TIME, DemoGenesisBuilder, demo_encryption_key, demo_keypair};
    use crate::workflow::Actor;
    use rand_core::SeedableRng;

    type Vault = std::collections::HashMap<Hash, SealedBody>;

    /// A source that lost the bodies it was given, or fails to read them.
    #[derive(Default)]
    struct Lossy {
        fail: bool,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct DiskError;

    impl BodySource<Event> for Lossy {
        type Error = DiskError;
        fn get(&self, _: &BlockHash) -> Result<Option<Arc<Block<Event>>>, DiskError> {
            if self.fail { Err(DiskError) } else { Ok(None) }
        }
    }

    /// A ledger on `bodies` with one registered patient, mined at height 1, and the
    /// vault of its sealed bodies.
    fn registered_with_vault<B: BodySource<Event>>(
        bodies: B,
    ) -> (Ledger<HealthPolicy, B>, PatientId, TxId, Vault) {
        let genesis = DemoGenesisBuilder::new().pow_bits(0).build();
        let mut ledger = Ledger::with_store(genesis, HealthPolicy, bodies).expect("valid genesis");
        let now = Timestamp(DEMO_GENESIS_TIME.millis() + 1_000);
        let alice = Actor::new(&ledger, "dr_alice", demo_keypair("dr_alice")).expect("member");
        let patient = PatientId::from_random_bytes([7; 16]);
        let mut rng = chacha20::ChaCha20Rng::from_seed([3; 32]);
        let written = alice
            .register(&ledger, patient, "Jane Doe", now, &mut rng)
            .expect("valid");
        let vault = written
            .bodies
            .iter()
            .map(|b| (Hash::of(&b.ciphertext), b.clone()))
            .collect();
        let id = ledger
            .submit_transaction(written.tx, now)
            .expect("accepted");
        let block = ledger.mine_block(&demo_keypair("dr_alice"), now);
        ledger
            .submit(block, now)
            .into_result()
            .expect("valid block");
        (ledger, patient, id, vault)
    }

    fn registered<B: BodySource<Event>>(bodies: B) -> (Ledger<HealthPolicy, B>, PatientId, TxId) {
        let (ledger, patient, id, _) = registered_with_vault(bodies);
        (ledger, patient, id)
    }

    #[test]
    fn events_are_read_back_from_their_blocks() {
        let (ledger, patient, id, vault) = registered_with_vault(MemoryBodies::default());
        let history = patient_history(&ledger, &patient)
            .expect("readable")
            .expect("known");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].recorded.tx_id, id);
        assert_eq!(history[0].recorded.height, Height(1));
        let event = &history[0];
        let author = event.recorded.author;
        let from_vault = |h: &Hash| vault.get(h).cloned();
        // The care team reads the name; the event itself holds none of it.
        for member in ["dr_alice", "lab_tech_bob", "pharm_charlie"] {
            let key = demo_encryption_key(member);
            let reader =
                BodyReader::new(ledger.genesis_hash(), demo_keypair(member).account(), &key);
            let reading = reader.read(&author, &event.event, Section::Demographics, from_vault);
            assert_eq!(
                reading.as_ref().and_then(Reading::clear),
                Some(&Body::demographics("Jane Doe")),
                "{member}"
            );
        }
        assert!(!format!("{:?}", event.event).contains("Jane"));
        // Without a member key, or without the body, it stays sealed.
        assert_eq!(
            read_section(
                None,
                &author,
                &event.event,
                Section::Demographics,
                from_vault
            ),
            Some(Reading::Sealed)
        );
        let key = demo_encryption_key("dr_alice");
        let reader = BodyReader::new(ledger.genesis_hash(), author, &key);
        assert_eq!(
            reader.read(&author, &event.event, Section::Demographics, |_| None),
            Some(Reading::Missing)
        );
        assert_eq!(
            reader.read(&author, &event.event, Section::Notes, from_vault),
            None
        );
        // The body opens only for its own event: read as another author's, it is
        // refused.
        let other = demo_keypair("lab_tech_bob").account();
        assert!(matches!(
            reader.read(&other, &event.event, Section::Demographics, from_vault),
            Some(Reading::Refused(_))
        ));
        let other = PatientId::from_random_bytes([8; 16]);
        assert!(matches!(patient_history(&ledger, &other), Ok(None)));
    }

    #[test]
    fn a_missing_body_or_a_failing_store_is_an_error_not_a_guess() {
        // The runtime reports the block stored, so the ledger reads it from the source.
        let lossy = |fail| {
            let (mut ledger, patient, _) = registered(Lossy { fail });
            let chain = ledger.main_chain().to_vec();
            ledger.mark_stored(chain);
            (ledger, patient)
        };
        let (ledger, patient) = lossy(false);
        assert!(matches!(
            patient_history(&ledger, &patient),
            Err(RecordError::MissingBlock { height: Height(1) })
        ));
        let (ledger, patient) = lossy(true);
        let error = patient_history(&ledger, &patient).expect_err("the store fails");
        assert!(matches!(
            error,
            RecordError::Store {
                height: Height(1),
                ..
            }
        ));
        assert!(error.to_string().contains("disk on fire"));
    }

    #[test]
    fn an_index_that_names_another_transaction_is_reported() {
        let (ledger, _, _) = registered(MemoryBodies::default());
        let stranger = TxId::from_hash(Hash::of(b"not in that block"));
        assert!(matches!(
            recorded_event(&ledger, Height(1), &stranger),
            Err(RecordError::NotInBlock {
                height: Height(1),
                ..
            })
        ));
        assert!(matches!(
            recorded_event(&ledger, Height(9), &stranger),
            Err(RecordError::MissingBlock { height: Height(9) })
        ));
    }
}
