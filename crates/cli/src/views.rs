//! What the REPL shows: text views of a ledger (chain, pending transactions, balances,
//! patient history), and the lookups behind `set_patient`.
//!
//! Reading and showing are apart: the readers (`chain`, `pending`, `history`,
//! `recalculate`, `find_patient`) take a ledger and return data, run wherever the
//! ledger lives; the `*_lines` functions turn that data, or what a
//! [`Backend`](crate::repl::Backend) returned, into the lines the REPL prints.

use health_workflow::{
    Balance, Event, HealthLedger, HealthPolicy, HealthState, PatientId, RecordedEvent, Section,
    records, username_of,
};
use ledger_core::{
    AccountId, Block, BlockHash, BodySource, Genesis, Height, Reward, SharedBlock, Timestamp, Tip,
    Transaction, TxBody, TxId,
};
use p2p::PeerInfo;

use crate::lens::Lens;
use crate::repl::{MineOutcome, SyncRequest};

/// The first 8 hex digits of a UUID, as shown in prompts and lists.
pub(crate) fn short_uuid(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// A timestamp as `2025-03-26 14:05:09 UTC`.
pub(crate) fn time(timestamp: Timestamp) -> String {
    i64::try_from(timestamp.millis())
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || timestamp.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

fn name_in(genesis: &Genesis, account: &AccountId) -> String {
    genesis
        .member(account)
        .map_or_else(|| format!("{account:#}"), |m| m.username.clone())
}

/// One line describing an event by `author`, in the original project's terms, with
/// each sealed section as `lens` reads it.
pub(crate) fn describe_event(lens: &Lens<'_>, author: &AccountId, event: &Event) -> String {
    let text = |section| lens.text(author, event, section);
    match event {
        Event::PatientRegistration(r) => format!(
            "PATIENT_REGISTRATION patient {} {}",
            short_uuid(&r.patient_id.uuid()),
            text(Section::Demographics)
        ),
        Event::DoctorConsultation(c) => format!(
            "DOCTOR_CONSULTATION patient {} notes {}{}",
            short_uuid(&c.patient_id.uuid()),
            text(Section::Notes),
            c.test_orders
                .iter()
                .map(|o| format!(
                    ", ordered {} (order {})",
                    lens.text_at(author, event, Section::TestOrder, &o.test),
                    short_uuid(&o.order_id.uuid())
                ))
                .collect::<String>()
        ),
        Event::LabTestResult(r) => format!(
            "LAB_TEST_RESULT patient {} order {} results {}",
            short_uuid(&r.patient_id.uuid()),
            short_uuid(&r.order_id.uuid()),
            text(Section::Results)
        ),
        Event::Prescription(p) => format!(
            "PRESCRIPTION {} patient {} {} based on {} result(s)",
            short_uuid(&p.prescription_id.uuid()),
            short_uuid(&p.patient_id.uuid()),
            text(Section::Prescription),
            p.based_on.len()
        ),
        Event::PrescriptionFilled(f) => format!(
            "PRESCRIPTION_FILLED prescription {}",
            short_uuid(&f.prescription_id.uuid())
        ),
        Event::EncryptionKeyRotation(r) => format!(
            "ENCRYPTION_KEY_ROTATION new key {}",
            &r.key.to_string()[..16]
        ),
        Event::ConsentGrant(g) => format!(
            "CONSENT_GRANT patient {} grant {} to {} ({} categories)",
            short_uuid(&g.patient_id.uuid()),
            short_uuid(&g.grant_id.uuid()),
            g.grantee,
            g.categories.len()
        ),
        Event::ConsentRevocation(r) => format!(
            "CONSENT_REVOCATION patient {} revokes {}",
            short_uuid(&r.patient_id.uuid()),
            r.grant
        ),
        Event::AccessRecord(a) => format!(
            "ACCESS_RECORD patient {} {} record(s) read by {:#}{}",
            short_uuid(&a.patient_id.uuid()),
            a.bodies.len(),
            a.reader,
            if a.purpose.is_break_glass() {
                " (BREAK-GLASS)"
            } else {
                ""
            }
        ),
        Event::ErasureRequest(e) => format!(
            "ERASURE_REQUEST patient {}",
            short_uuid(&e.patient_id.uuid())
        ),
        Event::ErasureReceipt(r) => format!(
            "ERASURE_RECEIPT patient {} request {:#}",
            short_uuid(&r.patient_id.uuid()),
            r.request
        ),
        other => format!("{:?}", other.kind()),
    }
}

/// One line describing a transaction.
pub(crate) fn describe_tx(genesis: &Genesis, lens: &Lens<'_>, tx: &Transaction<Event>) -> String {
    let author = name_in(genesis, &tx.author);
    match &tx.body {
        TxBody::Transfer { to, amount } => format!(
            "TRANSFER_ECASH {author} -> {} {amount}",
            name_in(genesis, to)
        ),
        TxBody::App(event) => format!("{} by {author}", describe_event(lens, &tx.author, event)),
    }
}

/// One line describing a reward entry.
pub(crate) fn describe_reward(genesis: &Genesis, reward: &Reward) -> String {
    format!(
        "REWARD {} -> {} {} (for {:#})",
        name_in(genesis, &genesis.reserve),
        name_in(genesis, &reward.to),
        reward.amount,
        reward.cause
    )
}

/// The lines of one block: a header line, then its transactions and rewards.
pub(crate) fn block_lines(genesis: &Genesis, lens: &Lens<'_>, block: &Block<Event>) -> Vec<String> {
    let header = &block.header;
    let mut lines = vec![format!(
        "Block #{} {} prev {:#} at {} by {} ({} txs, {} rewards)",
        header.height,
        block.hash(),
        header.prev,
        time(header.timestamp),
        name_in(genesis, &header.producer),
        block.transactions.len(),
        block.rewards.len()
    )];
    lines.extend(
        block
            .transactions
            .iter()
            .map(|tx| format!("  tx {:#} {}", tx.id(), describe_tx(genesis, lens, tx))),
    );
    lines.extend(
        block
            .rewards
            .iter()
            .map(|r| format!("  {}", describe_reward(genesis, r))),
    );
    lines
}

/// A block body read from the store: absent, or why it could not be read.
type StoredBlock = Result<Option<SharedBlock<HealthPolicy>>, String>;

/// The best chain as read from a ledger: what [`chain_lines`] shows.
pub(crate) struct ChainView {
    genesis: Genesis,
    genesis_hash: BlockHash,
    /// Every block after genesis on the best chain, or why it cannot be read.
    blocks: Vec<(BlockHash, StoredBlock)>,
    tip: Tip,
}

/// Reads the best chain, genesis first.
pub(crate) fn chain<B: BodySource<Event>>(ledger: &HealthLedger<B>) -> ChainView {
    ChainView {
        genesis: ledger.genesis().clone(),
        genesis_hash: ledger.genesis_hash(),
        blocks: ledger
            .main_chain()
            .iter()
            .skip(1)
            .map(|hash| (*hash, ledger.block(hash).map_err(|e| e.to_string())))
            .collect(),
        tip: ledger.tip(),
    }
}

/// The whole best chain, genesis first.
pub(crate) fn chain_lines(chain: &ChainView, lens: &Lens<'_>) -> Vec<String> {
    let genesis = &chain.genesis;
    let mut lines = vec![format!(
        "Block #0 {} genesis of network '{}'{}",
        chain.genesis_hash,
        genesis.network,
        if health_workflow::is_demo(genesis) {
            " (DEMO)"
        } else {
            ""
        }
    )];
    for (hash, block) in &chain.blocks {
        match block {
            Ok(Some(block)) => lines.extend(block_lines(genesis, lens, block)),
            Ok(None) => lines.push(format!("Block {hash}: body not available")),
            Err(e) => lines.push(format!("Block {hash}: cannot read it: {e}")),
        }
    }
    let tip = &chain.tip;
    lines.push(format!("Chain height {} tip {}", tip.height, tip.hash));
    lines.push(match &genesis.producers {
        Some(producers) => format!(
            "Final height {} (blocks that {} of the {} producers have built on can never be reverted)",
            tip.final_height,
            producers.len() / 2 + 1,
            producers.len()
        ),
        None => "Open mining: no block is ever final (teaching only)".to_string(),
    });
    lines
}

/// The pending transactions as read from a ledger: what [`pending_lines`] shows.
pub(crate) struct PendingView {
    genesis: Genesis,
    txs: Vec<(TxId, Transaction<Event>)>,
}

/// Reads the pending transactions.
pub(crate) fn pending<B: BodySource<Event>>(ledger: &HealthLedger<B>) -> PendingView {
    PendingView {
        genesis: ledger.genesis().clone(),
        txs: ledger.mempool().map(|p| (p.id, p.tx.clone())).collect(),
    }
}

/// The pending transactions.
pub(crate) fn pending_lines(pending: &PendingView, lens: &Lens<'_>) -> Vec<String> {
    if pending.txs.is_empty() {
        return vec!["No pending transactions.".to_string()];
    }
    let mut lines = vec![format!("{} pending transaction(s):", pending.txs.len())];
    lines.extend(
        pending
            .txs
            .iter()
            .map(|(id, tx)| format!("  tx {id:#} {}", describe_tx(&pending.genesis, lens, tx))),
    );
    lines
}

/// `username: amount`, one line per account, in the order given (sorted by name by
/// [`health_workflow::balances`]).
pub(crate) fn balance_lines(balances: &[Balance]) -> Vec<String> {
    balances
        .iter()
        .map(|b| format!("{}: {}", b.name, b.amount))
        .collect()
}

/// A patient's recorded events, each with its author's username, or why they cannot
/// be read.
type RecordedHistory = Result<Vec<(RecordedEvent, String)>, String>;

/// A patient's history as read from a ledger: what [`history_lines`] shows.
pub(crate) struct HistoryView {
    patient: PatientId,
    /// The registered patient's recorded events (each with its author's username), or
    /// why they cannot be read; `None` for a patient not mined yet.
    recorded: Option<RecordedHistory>,
    /// The patient's events still pending, with their authors.
    pending: Vec<(AccountId, Event)>,
}

/// Reads a patient's events in chain order, then those still pending.
pub(crate) fn history<B: BodySource<Event>>(
    ledger: &HealthLedger<B>,
    patient: &PatientId,
) -> HistoryView {
    let state = ledger.state().app();
    let pending = ledger
        .mempool()
        .filter_map(|p| match &p.tx.body {
            TxBody::App(event)
                if event.patient_id() == Some(*patient) && event.kind().is_record() =>
            {
                Some((p.tx.author, event.clone()))
            }
            _ => None,
        })
        .collect();
    let recorded = state.patient(patient).map(|_| {
        records::patient_history(ledger, patient)
            .map(|events| {
                events
                    .unwrap_or_default()
                    .into_iter()
                    .map(|event| {
                        let author = username_of(ledger, &event.recorded.author);
                        (event, author)
                    })
                    .collect()
            })
            .map_err(|e| e.to_string())
    });
    HistoryView {
        patient: *patient,
        recorded,
        pending,
    }
}

/// A patient's events in chain order.
pub(crate) fn history_lines(history: &HistoryView, lens: &Lens<'_>) -> Vec<String> {
    let patient = &history.patient;
    let mut lines = match &history.recorded {
        Some(events) => {
            let name = events
                .as_ref()
                .ok()
                .and_then(|events| events.first())
                .map_or_else(String::new, |(first, _)| {
                    lens.text(&first.recorded.author, &first.event, Section::Demographics)
                });
            let mut lines = vec![format!("History of {name} ({patient}):")];
            match events {
                Ok(events) => {
                    for (RecordedEvent { recorded, event }, author) in events {
                        lines.push(format!(
                            "  #{} {} {} by {author}",
                            recorded.height,
                            time(recorded.time),
                            describe_event(lens, &recorded.author, event),
                        ));
                    }
                }
                Err(e) => lines.push(format!("  Error: cannot read the history: {e}")),
            }
            lines
        }
        None if history.pending.is_empty() => {
            return vec![format!("No events for patient {patient} on this node.")];
        }
        None => vec![format!("History of patient {patient} (not mined yet):")],
    };
    lines.extend(
        history
            .pending
            .iter()
            .map(|(author, event)| format!("  pending {}", describe_event(lens, author, event))),
    );
    lines
}

/// What `mine` shows: the new block's header line and its contents, or why nothing
/// was mined. `genesis` names the members in a mined block.
pub(crate) fn mine_lines(
    genesis: Option<&Genesis>,
    lens: &Lens<'_>,
    outcome: &MineOutcome,
) -> Vec<String> {
    match outcome {
        MineOutcome::NothingPending => {
            vec!["Nothing to mine: no pending transactions.".to_string()]
        }
        MineOutcome::Failed(e) => vec![format!("Error: mining failed: {e}")],
        MineOutcome::Mined(mined) => {
            let mut lines = vec![format!("Mined block #{} {}", mined.height, mined.hash)];
            if let (Some(genesis), Some(block)) = (genesis, &mined.block) {
                lines.extend(block_lines(genesis, lens, block).into_iter().skip(1));
            }
            lines
        }
    }
}

/// The connected peers.
pub(crate) fn peer_lines(peers: &[PeerInfo]) -> Vec<String> {
    if peers.is_empty() {
        return vec!["No connected peers.".to_string()];
    }
    let mut lines = vec![format!("Connected peers ({}):", peers.len())];
    for peer in peers {
        let listen = peer
            .listen_addr
            .map_or_else(String::new, |a| format!(", listening on {a}"));
        lines.push(format!(
            "  {} at {}{listen}, {:?}, tip #{} when connected",
            peer.name, peer.addr, peer.direction, peer.tip.height
        ));
    }
    lines
}

/// What `sync` shows.
pub(crate) fn sync_lines(request: &SyncRequest) -> Vec<String> {
    vec![format!(
        "Asked {} peer(s) for blocks after #{}; new blocks are reported as they arrive.",
        request.asked, request.after
    )]
}

/// Balances recomputed from genesis, compared with the incremental state.
pub(crate) enum Recalculation {
    /// They match, over a chain of this height.
    Matches(Height),
    /// They differ.
    Differs,
    /// Replaying the chain failed.
    Failed(String),
}

/// Recomputes the state from genesis and compares it with the ledger's.
pub(crate) fn recalculate<B: BodySource<Event>>(ledger: &HealthLedger<B>) -> Recalculation {
    match ledger.replay_from_genesis() {
        Ok(state) if &state == ledger.state() => Recalculation::Matches(ledger.tip().height),
        Ok(_) => Recalculation::Differs,
        Err(e) => Recalculation::Failed(e.to_string()),
    }
}

/// What `recalc_balances` shows before the balances.
pub(crate) fn recalculation_lines(recalculation: &Recalculation) -> Vec<String> {
    vec![match recalculation {
        Recalculation::Matches(height) => format!(
            "Recalculated balances from genesis over {height} blocks: they match the \
             incremental state."
        ),
        Recalculation::Differs => "Recalculated balances from genesis: they DIFFER from the \
                                   incremental state!"
            .to_string(),
        Recalculation::Failed(e) => format!("Recalculating from genesis failed: {e}"),
    }]
}

/// A prescription as listed by `fill`: its text as `lens` reads it.
pub(crate) fn prescription_label<E: std::fmt::Display>(
    lens: &Lens<'_>,
    recorded: &Result<Option<RecordedEvent>, E>,
) -> String {
    match recorded {
        Ok(Some(p)) => lens.plain(&p.recorded.author, &p.event, Section::Prescription),
        Ok(None) => String::new(),
        Err(e) => format!("(cannot read it: {e})"),
    }
}

/// Why `set_patient` cannot pick a patient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatientLookupError {
    /// Neither a UUID nor a hex prefix.
    #[error("'{0}' is not a patient id (a UUID, or the first characters of one)")]
    Malformed(String),
    /// No patient matches.
    #[error("no patient with id {0} on this node (is the registration mined and synced?)")]
    NotFound(String),
    /// More than one patient matches the prefix.
    #[error("'{0}' matches several patients; give more characters")]
    Ambiguous(String),
}

/// A patient found by [`find_patient`]: the id, and the registration (its author and
/// event) from which the name is read, where the reader may.
pub(crate) type FoundPatient = (PatientId, Option<(AccountId, Event)>);

/// Finds a patient by full id or by a prefix of at least 4 hex digits, among confirmed
/// patients and registrations still pending. Returns the id and the registration; only
/// the registration of the patient found is read from its block.
pub(crate) fn find_patient<B: BodySource<Event>>(
    ledger: &HealthLedger<B>,
    text: &str,
) -> Result<FoundPatient, PatientLookupError> {
    let text = text.trim();
    let state: &HealthState = ledger.state().app();
    let pending: Vec<(PatientId, (AccountId, Event))> = ledger
        .mempool()
        .filter_map(|p| match &p.tx.body {
            TxBody::App(event @ Event::PatientRegistration(r)) => {
                Some((r.patient_id, (p.tx.author, event.clone())))
            }
            _ => None,
        })
        .collect();
    let ids = state
        .patients()
        .map(|p| p.id)
        .chain(pending.iter().map(|(id, _)| *id));
    let found = if let Ok(id) = text.parse::<PatientId>() {
        ids.into_iter()
            .find(|p| *p == id)
            .ok_or_else(|| PatientLookupError::NotFound(text.to_string()))?
    } else {
        let prefix: String = text.chars().filter(|c| *c != '-').collect::<String>();
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) || prefix.len() > 32 {
            return Err(PatientLookupError::Malformed(text.to_string()));
        }
        let mut matches = ids.filter(|p| p.uuid().simple().to_string().starts_with(&prefix));
        match (matches.next(), matches.next()) {
            (Some(found), None) => found,
            (None, _) => return Err(PatientLookupError::NotFound(text.to_string())),
            (Some(_), Some(_)) => return Err(PatientLookupError::Ambiguous(text.to_string())),
        }
    };
    let registration = match state.patient(&found) {
        Some(p) => records::recorded_event(ledger, p.registered.height, &p.registered.tx_id)
            .ok()
            .map(|r| (r.recorded.author, r.event)),
        None => pending
            .into_iter()
            .find(|(id, _)| *id == found)
            .map(|(_, registration)| registration),
    };
    Ok((found, registration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_workflow::{
        Actor, BodyReader, Role, demo::DemoGenesisBuilder, demo_encryption_key, demo_keypair,
    };
    use ledger_core::Ledger;
    use p2p::Vault;
    use rand::SeedableRng;

    fn ledger() -> HealthLedger {
        Ledger::new(
            DemoGenesisBuilder::new().pow_bits(0).build(),
            health_workflow::HealthPolicy,
        )
        .expect("demo genesis is valid")
    }

    #[test]
    fn balances_are_sorted_lines() {
        let ledger = ledger();
        assert_eq!(
            balance_lines(&health_workflow::balances(&ledger)),
            [
                "SYSTEM_BANK_001: 1000000",
                "dr_alice: 0",
                "lab_tech_bob: 0",
                "pharm_charlie: 0"
            ]
        );
    }

    #[test]
    fn patients_are_found_by_id_or_prefix() {
        let mut ledger = ledger();
        let alice = Actor::new(&ledger, "dr_alice", demo_keypair("dr_alice")).expect("member");
        let now = Timestamp(1_800_000_000_000);
        let id = PatientId::from_random_bytes([0xab; 16]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let written = alice
            .register(&ledger, id, "Jane Doe", now, &mut rng)
            .expect("signs");
        let vault = Vault::memory();
        let Some(TxBody::App(event)) = Some(&written.tx.body) else {
            unreachable!("a registration is an event")
        };
        let labelled = ledger_core::Policy::labelled_refs(&HealthPolicy, &written.tx.author, event);
        for ((reference, label), body) in labelled.iter().zip(&written.bodies) {
            vault.keep(reference, *label, body).expect("matches");
        }
        ledger.submit_transaction(written.tx, now).expect("valid");
        let key = demo_encryption_key("dr_alice");
        let reader = BodyReader::new(ledger.genesis_hash(), alice_keys().account(), &key);
        let lens = Lens::new(reader, Role::Doctor, &vault);
        let nobody = Lens::sealed(&vault);
        let full = id.to_string();
        let (found, registration) = find_patient(&ledger, &full).expect("found");
        assert_eq!(found, id);
        let (author, event) = registration.expect("pending registration");
        assert_eq!(
            lens.text(&author, &event, Section::Demographics),
            "'Jane Doe'"
        );
        assert_eq!(
            nobody.text(&author, &event, Section::Demographics),
            "(sealed: demographics)"
        );
        assert_eq!(find_patient(&ledger, &full[..8]).map(|p| p.0), Ok(id));
        assert!(matches!(
            find_patient(&ledger, "xyz!"),
            Err(PatientLookupError::Malformed(_))
        ));
        assert!(matches!(
            find_patient(&ledger, "0000"),
            Err(PatientLookupError::NotFound(_))
        ));
        assert!(pending_lines(&pending(&ledger), &lens)[1].contains("'Jane Doe'"));
        assert!(pending_lines(&pending(&ledger), &nobody)[1].contains("(sealed: demographics)"));
        let block = ledger.mine_block(&alice_keys(), now);
        ledger
            .submit(block, now)
            .into_result()
            .expect("valid block");
        let chain_view = chain(&ledger);
        assert!(
            chain_lines(&chain_view, &lens)
                .iter()
                .any(|l| l.contains("Jane Doe"))
        );
        assert!(
            !chain_lines(&chain_view, &nobody)
                .iter()
                .any(|l| l.contains("Jane"))
        );
        let history_view = history(&ledger, &id);
        assert!(history_lines(&history_view, &lens)[0].contains("Jane Doe"));
        assert!(history_lines(&history_view, &lens)[1].contains("PATIENT_REGISTRATION"));
        assert!(history_lines(&history_view, &nobody)[0].contains("(sealed: demographics)"));
        let (_, confirmed) = find_patient(&ledger, &full[..8]).expect("found");
        assert!(confirmed.is_some(), "read back from its block");
    }

    #[test]
    fn backend_answers_read_as_before() {
        let vault = Vault::memory();
        assert_eq!(
            mine_lines(None, &Lens::sealed(&vault), &MineOutcome::NothingPending),
            ["Nothing to mine: no pending transactions."]
        );
        assert_eq!(peer_lines(&[]), ["No connected peers."]);
        assert_eq!(
            sync_lines(&SyncRequest {
                asked: 2,
                after: ledger_core::Height(7)
            }),
            ["Asked 2 peer(s) for blocks after #7; new blocks are reported as they arrive."]
        );
        assert_eq!(
            recalculation_lines(&Recalculation::Differs),
            ["Recalculated balances from genesis: they DIFFER from the incremental state!"]
        );
    }

    fn alice_keys() -> ledger_core::Keypair {
        demo_keypair("dr_alice")
    }
}
