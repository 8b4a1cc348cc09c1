//! What the REPL shows: text views of a ledger (chain, pending transactions, balances,
//! patient history), and the lookups behind `set_patient`. Pure functions of a ledger.

use health_workflow::{
    Event, HealthLedger, HealthState, PatientId, RecordedEvent, balances, records, username_of,
};
use ledger_core::{AccountId, Block, BodyStore, Genesis, Reward, Timestamp, Transaction, TxBody};

/// The first 8 hex digits of a UUID, as shown in prompts and lists.
pub fn short_uuid(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// A timestamp as `2025-03-26 14:05:09 UTC`.
pub fn time(timestamp: Timestamp) -> String {
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

/// One line describing an event, in the original project's terms.
pub fn describe_event(event: &Event) -> String {
    match event {
        Event::PatientRegistration(r) => format!(
            "PATIENT_REGISTRATION patient {} '{}'",
            short_uuid(&r.patient_id.uuid()),
            r.name
        ),
        Event::DoctorConsultation(c) => format!(
            "DOCTOR_CONSULTATION patient {} notes '{}'{}",
            short_uuid(&c.patient_id.uuid()),
            c.notes,
            c.test_order.as_ref().map_or_else(String::new, |o| format!(
                ", ordered {} (order {})",
                o.test_name,
                short_uuid(&o.order_id.uuid())
            ))
        ),
        Event::LabTestResult(r) => format!(
            "LAB_TEST_RESULT patient {} order {} results '{}'",
            short_uuid(&r.patient_id.uuid()),
            short_uuid(&r.order_id.uuid()),
            r.results
        ),
        Event::Prescription(p) => format!(
            "PRESCRIPTION {} patient {} '{}' '{}' '{}' based on {} result(s)",
            short_uuid(&p.prescription_id.uuid()),
            short_uuid(&p.patient_id.uuid()),
            p.medication,
            p.dosage,
            p.instructions,
            p.based_on.len()
        ),
        Event::PrescriptionFilled(f) => format!(
            "PRESCRIPTION_FILLED prescription {}",
            short_uuid(&f.prescription_id.uuid())
        ),
        other => format!("{:?}", other.kind()),
    }
}

/// One line describing a transaction.
pub fn describe_tx(genesis: &Genesis, tx: &Transaction<Event>) -> String {
    let author = name_in(genesis, &tx.author);
    match &tx.body {
        TxBody::Transfer { to, amount } => format!(
            "TRANSFER_ECASH {author} -> {} {amount}",
            name_in(genesis, to)
        ),
        TxBody::App(event) => format!("{} by {author}", describe_event(event)),
    }
}

/// One line describing a reward entry.
pub fn describe_reward(genesis: &Genesis, reward: &Reward) -> String {
    format!(
        "REWARD {} -> {} {} (for {:#})",
        name_in(genesis, &genesis.reserve),
        name_in(genesis, &reward.to),
        reward.amount,
        reward.cause
    )
}

/// The lines of one block: a header line, then its transactions and rewards.
pub fn block_lines(genesis: &Genesis, block: &Block<Event>) -> Vec<String> {
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
            .map(|tx| format!("  tx {:#} {}", tx.id(), describe_tx(genesis, tx))),
    );
    lines.extend(
        block
            .rewards
            .iter()
            .map(|r| format!("  {}", describe_reward(genesis, r))),
    );
    lines
}

/// The whole best chain, genesis first.
pub fn chain_lines<B: BodyStore<Event>>(ledger: &HealthLedger<B>) -> Vec<String> {
    let genesis = ledger.genesis();
    let mut lines = vec![format!(
        "Block #0 {} genesis of network '{}'{}",
        ledger.genesis_hash(),
        genesis.network,
        if health_workflow::is_demo(genesis) {
            " (DEMO)"
        } else {
            ""
        }
    )];
    for hash in ledger.main_chain().iter().skip(1) {
        match ledger.block(hash) {
            Ok(Some(block)) => lines.extend(block_lines(genesis, &block)),
            Ok(None) => lines.push(format!("Block {hash}: body not available")),
            Err(e) => lines.push(format!("Block {hash}: cannot read it: {e}")),
        }
    }
    let tip = ledger.tip();
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

/// The pending transactions.
pub fn pending_lines<B: BodyStore<Event>>(ledger: &HealthLedger<B>) -> Vec<String> {
    let genesis = ledger.genesis();
    let pending = ledger.mempool();
    if pending.len() == 0 {
        return vec!["No pending transactions.".to_string()];
    }
    let mut lines = vec![format!("{} pending transaction(s):", pending.len())];
    lines.extend(pending.map(|p| format!("  tx {:#} {}", p.id, describe_tx(genesis, &p.tx))));
    lines
}

/// `username: amount`, one line per account, sorted by name.
pub fn balance_lines<B: BodyStore<Event>>(ledger: &HealthLedger<B>) -> Vec<String> {
    balances(ledger)
        .into_iter()
        .map(|b| format!("{}: {}", b.name, b.amount))
        .collect()
}

/// A patient's events in chain order.
pub fn history_lines<B: BodyStore<Event>>(
    ledger: &HealthLedger<B>,
    patient: &PatientId,
) -> Vec<String> {
    let state = ledger.state().app();
    let pending: Vec<&Event> = ledger
        .mempool()
        .filter_map(|p| match &p.tx.body {
            TxBody::App(event) if event.patient_id() == Some(*patient) => Some(event),
            _ => None,
        })
        .collect();
    let mut lines = match state.patient(patient) {
        Some(record) => {
            let mut lines = vec![format!("History of {} ({}):", record.name, record.id)];
            match records::patient_history(ledger, patient) {
                Ok(events) => {
                    for RecordedEvent { recorded, event } in events.unwrap_or_default() {
                        lines.push(format!(
                            "  #{} {} {} by {}",
                            recorded.height,
                            time(recorded.time),
                            describe_event(&event),
                            username_of(ledger, &recorded.author)
                        ));
                    }
                }
                Err(e) => lines.push(format!("  Error: cannot read the history: {e}")),
            }
            lines
        }
        None if pending.is_empty() => {
            return vec![format!("No events for patient {patient} on this node.")];
        }
        None => vec![format!("History of patient {patient} (not mined yet):")],
    };
    lines.extend(
        pending
            .into_iter()
            .map(|event| format!("  pending {}", describe_event(event))),
    );
    lines
}

/// Why `set_patient` cannot pick a patient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientLookupError {
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

/// Finds a patient by full id or by a prefix of at least 4 hex digits, among confirmed
/// patients and registrations still pending. Returns the id and the name.
pub fn find_patient<B: BodyStore<Event>>(
    ledger: &HealthLedger<B>,
    text: &str,
) -> Result<(PatientId, String), PatientLookupError> {
    let text = text.trim();
    let state: &HealthState = ledger.state().app();
    let pending = ledger.mempool().filter_map(|p| match &p.tx.body {
        TxBody::App(Event::PatientRegistration(r)) => Some((r.patient_id, r.name.clone())),
        _ => None,
    });
    let all: Vec<(PatientId, String)> = state
        .patients()
        .map(|p| (p.id, p.name.clone()))
        .chain(pending)
        .collect();
    if let Ok(id) = text.parse::<PatientId>() {
        return all
            .into_iter()
            .find(|(p, _)| *p == id)
            .ok_or_else(|| PatientLookupError::NotFound(text.to_string()));
    }
    let prefix: String = text.chars().filter(|c| *c != '-').collect::<String>();
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) || prefix.len() > 32 {
        return Err(PatientLookupError::Malformed(text.to_string()));
    }
    let mut matches = all
        .into_iter()
        .filter(|(p, _)| p.uuid().simple().to_string().starts_with(&prefix));
    match (matches.next(), matches.next()) {
        (Some(found), None) => Ok(found),
        (None, _) => Err(PatientLookupError::NotFound(text.to_string())),
        (Some(_), Some(_)) => Err(PatientLookupError::Ambiguous(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use health_workflow::{Actor, demo::DemoGenesisBuilder, demo_keypair};
    use ledger_core::Ledger;

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
            balance_lines(&ledger),
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
        let tx = alice.register(&ledger, id, "Jane Doe", now).expect("signs");
        ledger.submit_transaction(tx, now).expect("valid");
        let full = id.to_string();
        assert_eq!(
            find_patient(&ledger, &full),
            Ok((id, "Jane Doe".to_string()))
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
        assert!(pending_lines(&ledger)[1].contains("PATIENT_REGISTRATION"));
        let block = ledger.mine_block(&alice_keys(), now);
        ledger
            .submit_block(block, now)
            .into_result()
            .expect("valid block");
        let chain = chain_lines(&ledger);
        assert!(chain.iter().any(|l| l.contains("Jane Doe")));
        assert!(history_lines(&ledger, &id)[1].contains("PATIENT_REGISTRATION"));
    }

    fn alice_keys() -> ledger_core::Keypair {
        demo_keypair("dr_alice")
    }
}
