//! What the API answers, as JSON: built from the ledger's blocks and state, never
//! from anything a client sent.

use std::collections::BTreeMap;

use health_workflow::seal::SealedRef;
use health_workflow::{Event, HealthTx, Section};
use ledger_core::{Block, BlockHash, Genesis, Reward, TxBody, verify_signature};
use serde::Serialize;
use utoipa::ToSchema;

/// The node at a glance (`GET /status`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Status {
    /// Network name from the genesis.
    pub(crate) network: String,
    /// Genesis hash, which names the network.
    pub(crate) genesis: String,
    /// Height of the best chain's tip (genesis is 0).
    pub(crate) height: u64,
    /// Hash of the tip.
    pub(crate) tip: String,
    /// Height of the final block, which no branch may revert.
    pub(crate) final_height: u64,
    /// Connected peers.
    pub(crate) peers: usize,
    /// Pending transactions.
    pub(crate) mempool: usize,
    /// Their encoded size in bytes.
    pub(crate) mempool_bytes: usize,
    /// Where this node accepts peers (`host:port`): how a new node, or
    /// `healthchain import --api`, joins the network through it.
    pub(crate) peer_addr: String,
}

/// What every view of a block starts with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct BlockHead {
    /// Block height.
    pub(crate) height: u64,
    /// Block hash (64 hex digits).
    pub(crate) hash: String,
    /// Parent hash.
    pub(crate) prev: String,
    /// Block time, Unix milliseconds.
    pub(crate) timestamp: u64,
    /// Producer account (64 hex digits).
    pub(crate) producer: String,
    /// Producer's username, when a roster member.
    pub(crate) producer_name: Option<String>,
    /// Producer's role, when a roster member.
    pub(crate) producer_role: Option<String>,
}

/// A block without its transactions (`GET /blocks`, and the `block` event).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct BlockSummary {
    /// Height, hash, parent, time and producer.
    #[serde(flatten)]
    pub(crate) head: BlockHead,
    /// Number of transactions.
    pub(crate) transactions: usize,
    /// Number of reward entries.
    pub(crate) rewards: usize,
}

/// A reward entry paid by the reserve.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RewardView {
    /// The account paid.
    pub(crate) to: String,
    /// Its username, when a roster member.
    pub(crate) to_name: Option<String>,
    /// The amount, in e-cash.
    pub(crate) amount: u64,
    /// The transaction that earned it.
    pub(crate) cause: String,
}

/// A block with its transactions and rewards (`GET /blocks/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockDetail {
    /// Height, hash, parent, time and producer.
    #[serde(flatten)]
    pub(crate) head: BlockHead,
    /// Merkle root over the transaction ids and reward entries.
    pub(crate) merkle_root: String,
    /// Proof-of-work nonce.
    pub(crate) nonce: u64,
    /// The transactions, in order.
    pub(crate) transactions: Vec<TxView>,
    /// The reward entries, in order.
    pub(crate) rewards: Vec<RewardView>,
}

/// A transaction.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TxView {
    /// Transaction id (64 hex digits).
    pub(crate) id: String,
    /// `Transfer`, or the clinical event's kind.
    pub(crate) kind: String,
    /// Signing account.
    pub(crate) author: String,
    /// Author's username, when a roster member.
    pub(crate) author_name: Option<String>,
    /// Author's role, when a roster member.
    pub(crate) author_role: Option<String>,
    /// Author's nonce.
    pub(crate) nonce: u64,
    /// When the author signed it, Unix milliseconds.
    pub(crate) timestamp: u64,
    /// Whether its signature checks out on this network (ZIP-215).
    pub(crate) signature_valid: bool,
    /// The patient concerned, for clinical events.
    pub(crate) patient_id: Option<String>,
    /// The event's public fields, as text; each sealed section shows as a marker such
    /// as `(sealed: demographics)`, with its ciphertext hash under `<section>_body`.
    pub(crate) fields: BTreeMap<String, String>,
}

/// Where a transaction is (`GET /txs/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TxLocation {
    /// The best-chain block that holds it (`null` while pending).
    pub(crate) block: Option<String>,
    /// That block's height.
    pub(crate) height: Option<u64>,
    /// Its position in the block.
    pub(crate) index: Option<usize>,
    /// Whether it waits in the mempool.
    pub(crate) pending: bool,
    /// The transaction.
    pub(crate) tx: TxView,
}

/// One event of a patient's history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PatientEvent {
    /// Height of the block that holds it.
    pub(crate) height: u64,
    /// That block's hash.
    pub(crate) block: String,
    /// The transaction.
    pub(crate) tx: TxView,
}

/// A patient's history by pseudonym (`GET /patients/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PatientView {
    /// The patient id (a UUID).
    pub(crate) patient_id: String,
    /// The events, in chain order.
    pub(crate) events: Vec<PatientEvent>,
}

/// A balance, as `balances` prints it (`GET /accounts`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    /// Username, or the account in hex outside the roster.
    pub(crate) username: String,
    /// Role, when a roster member.
    pub(crate) role: Option<String>,
    /// The account.
    pub(crate) account: String,
    /// Confirmed balance, in e-cash.
    pub(crate) balance: u64,
    /// The nonce its next transaction should use: above its confirmed and pending ones.
    pub(crate) next_nonce: u64,
}

/// The pending transactions (`GET /mempool`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MempoolView {
    /// How many.
    pub(crate) count: usize,
    /// Their encoded size in bytes.
    pub(crate) bytes: usize,
    /// The transactions, in the order they would be mined (at most
    /// [`MAX_MEMPOOL_LISTED`](super::MAX_MEMPOOL_LISTED)).
    pub(crate) transactions: Vec<TxView>,
}

/// A transaction the node accepted (`POST /txs`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Submitted {
    /// Its id.
    pub(crate) id: String,
}

/// The member behind `account`: username and role label.
fn member(genesis: &Genesis, account: &ledger_core::AccountId) -> (Option<String>, Option<String>) {
    match genesis.member(account) {
        Some(m) => (Some(m.username.clone()), Some(m.role.clone())),
        None => (None, None),
    }
}

impl BlockHead {
    fn of(genesis: &Genesis, block: &Block<Event>) -> Self {
        let header = &block.header;
        let (producer_name, producer_role) = member(genesis, &header.producer);
        BlockHead {
            height: header.height.0,
            hash: block.hash().to_string(),
            prev: header.prev.to_string(),
            timestamp: header.timestamp.millis(),
            producer: header.producer.to_string(),
            producer_name,
            producer_role,
        }
    }
}

impl BlockSummary {
    pub(crate) fn of(genesis: &Genesis, block: &Block<Event>) -> Self {
        BlockSummary {
            head: BlockHead::of(genesis, block),
            transactions: block.transactions.len(),
            rewards: block.rewards.len(),
        }
    }
}

impl BlockDetail {
    pub(crate) fn of(genesis: &Genesis, block: &Block<Event>) -> Self {
        BlockDetail {
            head: BlockHead::of(genesis, block),
            merkle_root: block.header.merkle_root.to_string(),
            nonce: block.header.nonce,
            transactions: block
                .transactions
                .iter()
                .map(|tx| TxView::of(genesis, tx))
                .collect(),
            rewards: block
                .rewards
                .iter()
                .map(|r| RewardView::of(genesis, r))
                .collect(),
        }
    }
}

impl RewardView {
    fn of(genesis: &Genesis, reward: &Reward) -> Self {
        RewardView {
            to: reward.to.to_string(),
            to_name: member(genesis, &reward.to).0,
            amount: reward.amount.units(),
            cause: reward.cause.to_string(),
        }
    }
}

/// Each sealed section of `event` with its field name in a transaction's view: a
/// consultation's second test order is `test_name_2`, and so on.
pub(crate) fn sealed_keys(event: &Event) -> Vec<(String, Section, SealedRef)> {
    let mut seen = BTreeMap::<Section, usize>::new();
    event
        .sealed()
        .into_iter()
        .map(|(section, reference)| {
            let n = seen.entry(section).or_default();
            *n += 1;
            let key = match *n {
                1 => section_key(section).to_string(),
                n => format!("{}_{n}", section_key(section)),
            };
            (key, section, reference)
        })
        .collect()
}

/// The field name of a sealed section in a transaction's view.
pub(crate) fn section_key(section: Section) -> &'static str {
    match section {
        Section::Demographics => "name",
        Section::Notes => "notes",
        Section::TestOrder => "test_name",
        Section::Results => "results",
        Section::Prescription => "prescription",
        _ => "sealed",
    }
}

impl TxView {
    pub(crate) fn of(genesis: &Genesis, tx: &HealthTx) -> Self {
        let (author_name, author_role) = member(genesis, &tx.author);
        let genesis_hash: BlockHash = genesis.hash();
        let signature_valid =
            verify_signature(&tx.author, &tx.signing_bytes(&genesis_hash), &tx.signature);
        let mut fields = BTreeMap::new();
        let mut put = |key: &str, value: String| {
            fields.insert(key.to_string(), value);
        };
        let (kind, patient_id) = match &tx.body {
            TxBody::Transfer { to, amount } => {
                put("to", to.to_string());
                if let Some(name) = member(genesis, to).0 {
                    put("to_name", name);
                }
                put("amount", amount.units().to_string());
                ("Transfer".to_string(), None)
            }
            TxBody::App(event) => {
                // Sealed sections show as markers with their reference: the API serves
                // no clinical text (it has no caller to read it as).
                for (key, section, reference) in sealed_keys(event) {
                    let key = key.as_str();
                    put(key, crate::lens::sealed_marker(section));
                    put(
                        &format!("{key}_body"),
                        reference.ciphertext_hash.to_string(),
                    );
                }
                let patient = match event {
                    Event::PatientRegistration(e) => Some(e.patient_id),
                    Event::DoctorConsultation(e) => {
                        for (n, order) in e.test_orders.iter().enumerate() {
                            match n {
                                0 => put("order_id", order.order_id.to_string()),
                                n => {
                                    put(&format!("order_id_{}", n + 1), order.order_id.to_string())
                                }
                            }
                        }
                        Some(e.patient_id)
                    }
                    Event::LabTestResult(e) => {
                        put("order_id", e.order_id.to_string());
                        Some(e.patient_id)
                    }
                    Event::Prescription(e) => {
                        put("prescription_id", e.prescription_id.to_string());
                        let based_on: Vec<String> =
                            e.based_on.iter().map(ToString::to_string).collect();
                        put("based_on", based_on.join(","));
                        Some(e.patient_id)
                    }
                    Event::PrescriptionFilled(e) => {
                        put("prescription_id", e.prescription_id.to_string());
                        None
                    }
                    Event::EncryptionKeyRotation(e) => {
                        put("encryption_key", e.key.to_string());
                        None
                    }
                    Event::ConsentGrant(g) => {
                        put("grant_id", g.grant_id.to_string());
                        put("grantee", g.grantee.to_string());
                        let categories: Vec<&str> =
                            g.categories.iter().map(|c| c.label()).collect();
                        put("categories", categories.join(","));
                        put("not_before", g.not_before.millis().to_string());
                        put("not_after", g.not_after.millis().to_string());
                        put("purpose", g.purpose.clone());
                        Some(g.patient_id)
                    }
                    Event::ConsentRevocation(r) => {
                        put("grant", r.grant.to_string());
                        Some(r.patient_id)
                    }
                    Event::AccessRecord(a) => {
                        put("reader", a.reader.to_string());
                        put("bodies", a.bodies.len().to_string());
                        put("purpose", a.purpose.to_string());
                        Some(a.patient_id)
                    }
                    Event::ErasureRequest(e) => Some(e.patient_id),
                    Event::ErasureReceipt(r) => {
                        put("request", r.request.to_string());
                        Some(r.patient_id)
                    }
                    // A kind this front end does not know yet: shown by kind only.
                    _ => None,
                };
                (
                    format!("{:?}", event.kind()),
                    patient.map(|p| p.to_string()),
                )
            }
        };
        TxView {
            id: tx.id().to_string(),
            kind,
            author: tx.author.to_string(),
            author_name,
            author_role,
            nonce: tx.nonce,
            timestamp: tx.timestamp.millis(),
            signature_valid,
            patient_id,
            fields,
        }
    }
}
