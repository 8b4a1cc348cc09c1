//! Building a genesis for a real network from a roster file.
//!
//! The roster is a CSV file with this header and one line per member:
//!
//! ```text
//! username,display_name,role,public_key_hex,balance,encryption_key_hex
//! dr_alice,Dr. Alice,doctor,5c1b...e3 (64 hex digits),0,80f1...07 (192 hex digits)
//! lab_tech_bob,Bob (Lab),lab_technician,9f02...41,0,1a2b...9c
//! pharm_charlie,Charlie (Pharmacy),pharmacist,77aa...0c,0,c3d4...5e
//! ```
//!
//! `role` is one of `doctor`, `lab_technician`, `pharmacist`; `public_key_hex` and
//! `encryption_key_hex` are the two keys `healthchain keygen` printed for that member
//! (the second is the member's X25519 encryption key with the signature that binds it
//! to the first; a member's sealed records are encrypted to it); `balance` is the
//! member's initial e-cash. The reserve account `SYSTEM_BANK_001`, which pays the rewards and which no
//! one can sign for, is added with the supply given on the command line.

use std::io::Read;

use ledger_core::sealed::MemberEncryption;
use ledger_core::{AccountId, Amount, Genesis, Member, Timestamp};

use health_workflow::demo::{self, RESERVE_USERNAME as RESERVE_NAME};
use health_workflow::{PARAM_LAB_PAYMENT, PARAM_REWARD_FILL, PARAM_REWARD_LAB_RESULT, Role};

/// Reads an `encryption_key_hex` cell: 96 bytes in hex.
fn parse_encryption(text: &str) -> Option<MemberEncryption> {
    if text.len() != 192 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 96];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MemberEncryption::from_bytes(&bytes))
}

/// Why a roster cannot become a genesis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RosterError {
    /// The file is not readable CSV.
    #[error("roster is not valid CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The header is not the expected one.
    #[error("roster header must be '{expected}', found '{found}'")]
    Header {
        /// The expected header.
        expected: &'static str,
        /// The header found.
        found: String,
    },
    /// A line has a bad field.
    #[error("roster line {line}: {problem}")]
    Line {
        /// Line number in the file (the header is line 1).
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// The roster is empty.
    #[error("the roster lists no members")]
    Empty,
    /// `--producers` names someone who is not on the roster.
    #[error("producer '{name}' is not a member of the roster")]
    UnknownProducer {
        /// The username given.
        name: String,
    },
    /// The resulting genesis is not valid.
    #[error("invalid genesis: {0}")]
    Genesis(#[from] ledger_core::GenesisError),
}

/// The header a roster file must have.
pub(crate) const HEADER: &str =
    "username,display_name,role,public_key_hex,balance,encryption_key_hex";

/// Who may produce blocks on a new network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Producers {
    /// The roster's clinical members (doctors, lab technicians, pharmacists).
    #[default]
    CareTeam,
    /// The roster members with these usernames.
    Named(Vec<String>),
    /// Anyone whose block carries enough proof of work, with no finality: for teaching
    /// proof of work only, never for real patient data.
    Open,
}

/// Network-wide settings given on the command line.
#[derive(Debug, Clone)]
pub(crate) struct NetworkSettings {
    /// Network name.
    pub(crate) network: String,
    /// Proof-of-work difficulty.
    pub(crate) pow_bits: u8,
    /// Initial e-cash of the reserve.
    pub(crate) reserve_supply: u64,
    /// Who may produce blocks.
    pub(crate) producers: Producers,
    /// Genesis time.
    pub(crate) timestamp: Timestamp,
    /// Reward to the ordering doctor when a lab result is recorded.
    pub(crate) reward_lab_result: u64,
    /// Reward to the prescribing doctor when a prescription is filled.
    pub(crate) reward_fill: u64,
    /// What a doctor pays the lab for results a prescription is based on.
    pub(crate) lab_payment: u64,
}

/// Reads a roster and builds the genesis it describes.
pub(crate) fn build_genesis(
    input: impl Read,
    settings: &NetworkSettings,
) -> Result<Genesis, RosterError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let found = reader.headers()?.iter().collect::<Vec<_>>().join(",");
    if found != HEADER {
        return Err(RosterError::Header {
            expected: HEADER,
            found,
        });
    }
    let reserve = demo::reserve_account();
    let mut roster = Vec::new();
    let mut balances = Vec::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |problem: String| RosterError::Line { line, problem };
        if record.len() != 6 {
            return Err(bad(format!("expected 6 fields, found {}", record.len())));
        }
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        let (username, display_name, role) = (field(0), field(1), field(2));
        if username == RESERVE_NAME {
            return Err(bad(format!("'{RESERVE_NAME}' is reserved for the reserve")));
        }
        match Role::from_label(&role) {
            Some(Role::Doctor | Role::LabTechnician | Role::Pharmacist) => {}
            _ => {
                return Err(bad(format!(
                    "role '{role}' is not doctor, lab_technician or pharmacist"
                )));
            }
        }
        let account =
            AccountId::from_hex(&field(3)).map_err(|e| bad(format!("public key: {e}")))?;
        if !account.is_usable() {
            return Err(bad("public key is not a usable ed25519 key".into()));
        }
        let balance: u64 = field(4)
            .parse()
            .map_err(|_| bad(format!("balance '{}' is not a whole number", field(4))))?;
        if balance > 0 {
            balances.push((account, Amount(balance)));
        }
        let encryption = parse_encryption(&field(5))
            .filter(|e| e.is_bound_to(&account) && health_workflow::seal::is_usable_key(&e.key))
            .ok_or_else(|| {
                bad(
                    "encryption key is not the 192 hex digits keygen printed for this member's key"
                        .into(),
                )
            })?;
        roster.push(Member {
            account,
            username,
            display_name,
            role,
            encryption: Some(encryption),
        });
    }
    if roster.is_empty() {
        return Err(RosterError::Empty);
    }
    let producers = match &settings.producers {
        Producers::CareTeam => Some(health_workflow::clinical_producers(&roster)),
        Producers::Named(names) => Some(
            names
                .iter()
                .map(|name| {
                    roster
                        .iter()
                        .find(|m| m.username == *name)
                        .map(|m| m.account)
                        .ok_or_else(|| RosterError::UnknownProducer { name: name.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Producers::Open => None,
    };
    roster.push(demo::reserve_member());
    balances.push((reserve, Amount(settings.reserve_supply)));
    let genesis = Genesis {
        network: settings.network.clone(),
        timestamp: settings.timestamp,
        pow_bits: settings.pow_bits,
        producers,
        roster,
        balances,
        reserve,
        parameters: [
            (PARAM_REWARD_LAB_RESULT, settings.reward_lab_result),
            (PARAM_REWARD_FILL, settings.reward_fill),
            (PARAM_LAB_PAYMENT, settings.lab_payment),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect(),
    };
    genesis.check()?;
    Ok(genesis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Keypair;

    fn settings() -> NetworkSettings {
        NetworkSettings {
            network: "clinic".into(),
            pow_bits: 8,
            reserve_supply: 5_000,
            producers: Producers::CareTeam,
            timestamp: Timestamp(1),
            reward_lab_result: 500,
            reward_fill: 700,
            lab_payment: 100,
        }
    }

    fn key(n: u8) -> String {
        Keypair::from_seed([n; 32]).account().to_string()
    }

    fn enc(n: u8) -> String {
        crate::tools::encryption_entry_hex(&Keypair::from_seed([n; 32]))
    }

    #[test]
    fn builds_a_genesis() {
        let csv = format!(
            "{HEADER}\ndr_a,Dr. A,doctor,{},10,{}\nlab_b,\"Lab, B\",lab_technician,{},0,{}\n",
            key(1),
            enc(1),
            key(2),
            enc(2)
        );
        let genesis = build_genesis(csv.as_bytes(), &settings()).expect("valid roster");
        assert_eq!(genesis.network, "clinic");
        assert_eq!(genesis.roster.len(), 3);
        assert_eq!(genesis.roster[1].display_name, "Lab, B");
        // Each member's encryption key, bound to its signing key, is in the roster.
        assert!(genesis.roster[..2].iter().all(|m| m.encryption.is_some()));
        assert_eq!(genesis.supply().expect("no overflow"), Amount(5_010));
        assert_eq!(genesis.producers.as_ref().map(Vec::len), Some(2));
        let bytes = genesis.encode();
        assert_eq!(Genesis::decode(&bytes).expect("decodes"), genesis);
    }

    #[test]
    fn producers_are_the_care_team_unless_named_or_open() {
        let csv = format!(
            "{HEADER}\ndr_a,Dr. A,doctor,{},10,{}\nlab_b,Lab B,lab_technician,{},0,{}\n",
            key(1),
            enc(1),
            key(2),
            enc(2)
        );
        let with = |producers| NetworkSettings {
            producers,
            ..settings()
        };
        let named = build_genesis(
            csv.as_bytes(),
            &with(Producers::Named(vec!["lab_b".into()])),
        )
        .expect("a named member");
        assert_eq!(
            named.producers,
            Some(vec![Keypair::from_seed([2; 32]).account()])
        );
        let open = build_genesis(csv.as_bytes(), &with(Producers::Open)).expect("open");
        assert_eq!(open.producers, None);
        let unknown = build_genesis(csv.as_bytes(), &with(Producers::Named(vec!["bob".into()])));
        assert!(matches!(unknown, Err(RosterError::UnknownProducer { name }) if name == "bob"));
        let team = build_genesis(csv.as_bytes(), &settings()).expect("care team");
        let reserve = team.reserve;
        assert!(!team.producers.expect("members only").contains(&reserve));
    }

    #[test]
    fn refuses_bad_rosters() {
        let cases = [
            "user,name\n".to_string(),
            format!("{HEADER}\n"),
            format!("{HEADER}\na,A,surgeon,{},0,{}\n", key(1), enc(1)),
            format!("{HEADER}\na,A,doctor,abcd,0,{}\n", enc(1)),
            // An encryption key that is not bound to the member's signing key.
            format!("{HEADER}\na,A,doctor,{},0,{}\n", key(1), enc(2)),
            format!("{HEADER}\na,A,doctor,{},0,00ff\n", key(1)),
            // The old five-column roster, without encryption keys.
            format!("{HEADER}\na,A,doctor,{},0\n", key(1)).replace(",encryption_key_hex", ""),
            format!("{HEADER}\na,A,doctor,{},lots,{}\n", key(1), enc(1)),
            format!(
                "{HEADER}\na,A,doctor,{},0,{}\na,B,doctor,{},0,{}\n",
                key(1),
                enc(1),
                key(2),
                enc(2)
            ),
            format!(
                "{HEADER}\n{RESERVE_NAME},A,doctor,{},0,{}\n",
                key(1),
                enc(1)
            ),
        ];
        for csv in cases {
            assert!(build_genesis(csv.as_bytes(), &settings()).is_err(), "{csv}");
        }
    }
}
