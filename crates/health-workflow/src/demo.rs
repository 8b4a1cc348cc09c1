//! The DEMO network: the original project's three users, reserve and amounts.
//!
//! **Everything here is for demonstrations and tests only.** The demo signing keys are
//! derived from a published seed phrase, so anyone can sign as any demo user; the demo
//! logins are the original project's well-known passwords. A real deployment creates
//! its own keys and genesis (and its own [`Credentials`](crate::Credentials)).

use std::collections::BTreeMap;

use ledger_core::sealed::MemberEncryption;
use ledger_core::{AccountId, Amount, Genesis, Keypair, Member, Timestamp};
use sha2::{Digest, Sha256};

use crate::policy::{
    DEFAULT_LAB_PAYMENT, DEFAULT_REWARD_FILL, DEFAULT_REWARD_LAB_RESULT, PARAM_LAB_PAYMENT,
    PARAM_REWARD_FILL, PARAM_REWARD_LAB_RESULT,
};
use crate::role::Role;
use crate::seal::EncryptionKey;

/// Username of the reserve account that pays rewards, as in the original project.
pub const RESERVE_USERNAME: &str = "SYSTEM_BANK_001";

/// Display name of the reserve account.
pub const RESERVE_DISPLAY_NAME: &str = "System Bank";

/// Name of the DEMO network.
pub const DEMO_NETWORK: &str = "healthchain-demo";

/// The published DEMO seed phrase. A demo user's signing key is the SHA-256 of this
/// phrase, a `/`, and the username (see [`demo_keypair`]). Public: never use it for
/// real data.
pub const DEMO_SEED_PHRASE: &str = "healthchain DEMO seed (public, not for real patients)";

/// Proof-of-work difficulty of the DEMO network: a block takes milliseconds to mine.
pub const DEMO_POW_BITS: u8 = 12;

/// Genesis time of the DEMO network: 2025-03-26T00:00:00Z, the original project's date.
pub const DEMO_GENESIS_TIME: Timestamp = Timestamp(1_742_947_200_000);

/// E-cash the reserve holds at genesis in the DEMO network: the whole supply.
pub const DEMO_RESERVE_FUNDS: u64 = 1_000_000;

/// A user of the DEMO network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoUser {
    /// Login name.
    pub username: &'static str,
    /// Name shown to people.
    pub display_name: &'static str,
    /// Role.
    pub role: Role,
}

/// The DEMO network's users, as in the original project.
pub const DEMO_USERS: [DemoUser; 3] = [
    DemoUser {
        username: "dr_alice",
        display_name: "Dr. Alice",
        role: Role::Doctor,
    },
    DemoUser {
        username: "lab_tech_bob",
        display_name: "Bob (Lab)",
        role: Role::LabTechnician,
    },
    DemoUser {
        username: "pharm_charlie",
        display_name: "Charlie (Pharmacy)",
        role: Role::Pharmacist,
    },
];

/// The reserve account: unspendable, derived from [`RESERVE_USERNAME`]. The same on
/// every network that uses this crate's conventions.
pub fn reserve_account() -> AccountId {
    AccountId::unspendable(RESERVE_USERNAME)
}

/// The roster entry of the reserve, so balances can be shown by username.
pub fn reserve_member() -> Member {
    Member {
        account: reserve_account(),
        username: RESERVE_USERNAME.to_string(),
        display_name: RESERVE_DISPLAY_NAME.to_string(),
        role: Role::System.label().to_string(),
        encryption: None,
    }
}

/// The DEMO signing key of `username`: SHA-256 of [`DEMO_SEED_PHRASE`], `/`, username.
/// Anyone can derive it: DEMO only.
pub fn demo_keypair(username: &str) -> Keypair {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(DEMO_SEED_PHRASE.as_bytes())
        .chain_update(b"/")
        .chain_update(username.as_bytes())
        .finalize()
        .into();
    Keypair::from_seed(seed)
}

/// The DEMO encryption key of `username`: the one
/// [`EncryptionKey::of_member`] derives from its [`demo_keypair`]. Anyone can derive
/// it: DEMO only.
pub fn demo_encryption_key(username: &str) -> EncryptionKey {
    EncryptionKey::of_member(&demo_keypair(username))
}

/// The passphrase of the key file a DEMO node writes for each patient it registers
/// (published, like the demo logins: DEMO only).
pub const DEMO_PATIENT_PASSPHRASE: &str = "patientpass";

/// The DEMO signing key of patient `patient`: [`demo_keypair`] of `patient/<id>`.
/// Anyone can derive it: DEMO only.
pub fn demo_patient_keypair(patient: &crate::PatientId) -> Keypair {
    demo_keypair(&format!("patient/{patient}"))
}

/// Builds a DEMO genesis; [`demo_genesis`] is the default one.
#[derive(Clone, Debug)]
pub struct DemoGenesisBuilder {
    pow_bits: u8,
    timestamp: Timestamp,
    reserve_funds: u64,
}

impl Default for DemoGenesisBuilder {
    fn default() -> Self {
        DemoGenesisBuilder {
            pow_bits: DEMO_POW_BITS,
            timestamp: DEMO_GENESIS_TIME,
            reserve_funds: DEMO_RESERVE_FUNDS,
        }
    }
}

impl DemoGenesisBuilder {
    /// The defaults: [`DEMO_POW_BITS`], [`DEMO_GENESIS_TIME`], [`DEMO_RESERVE_FUNDS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the proof-of-work difficulty (tests use 0 to 4).
    pub fn pow_bits(mut self, bits: u8) -> Self {
        self.pow_bits = bits;
        self
    }

    /// Sets the genesis time.
    pub fn timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Sets the reserve's initial funds (the whole supply).
    pub fn reserve_funds(mut self, funds: u64) -> Self {
        self.reserve_funds = funds;
        self
    }

    /// The genesis: the [`DEMO_USERS`] with their [`demo_keypair`]s and
    /// [`demo_encryption_key`]s, the reserve in the
    /// roster and holding the supply, default rewards and payment, and the care team
    /// ([`clinical_producers`]) as the only authorised block producers.
    pub fn build(self) -> Genesis {
        let mut roster: Vec<Member> = DEMO_USERS
            .iter()
            .map(|u| Member {
                account: demo_keypair(u.username).account(),
                username: u.username.to_string(),
                display_name: u.display_name.to_string(),
                role: u.role.label().to_string(),
                encryption: Some(MemberEncryption::bind(
                    &demo_keypair(u.username),
                    demo_encryption_key(u.username).public(),
                )),
            })
            .collect();
        roster.push(reserve_member());
        let parameters = BTreeMap::from([
            (
                PARAM_REWARD_LAB_RESULT.to_string(),
                DEFAULT_REWARD_LAB_RESULT,
            ),
            (PARAM_REWARD_FILL.to_string(), DEFAULT_REWARD_FILL),
            (PARAM_LAB_PAYMENT.to_string(), DEFAULT_LAB_PAYMENT),
        ]);
        Genesis {
            network: DEMO_NETWORK.to_string(),
            timestamp: self.timestamp,
            pow_bits: self.pow_bits,
            producers: Some(clinical_producers(&roster)),
            roster,
            balances: vec![(reserve_account(), Amount(self.reserve_funds))],
            reserve: reserve_account(),
            parameters,
        }
    }
}

/// The accounts of `roster` whose role is clinical ([`Role::is_clinical`]): the
/// default authorised block producers of a network.
pub fn clinical_producers(roster: &[Member]) -> Vec<AccountId> {
    roster
        .iter()
        .filter(|m| Role::from_label(&m.role).is_some_and(Role::is_clinical))
        .map(|m| m.account)
        .collect()
}

/// The DEMO genesis with default settings.
pub fn demo_genesis() -> Genesis {
    DemoGenesisBuilder::new().build()
}

/// Whether `genesis` is a DEMO network: its name is [`DEMO_NETWORK`] or any of its
/// members signs with a published [`demo_keypair`]. Front ends should say so loudly.
pub fn is_demo(genesis: &Genesis) -> bool {
    genesis.network == DEMO_NETWORK
        || genesis
            .roster
            .iter()
            .any(|m| demo_keypair(&m.username).account() == m.account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_genesis_is_valid_and_marked_demo() {
        let genesis = demo_genesis();
        assert_eq!(genesis.check(), Ok(()));
        assert!(is_demo(&genesis));
        assert_eq!(genesis.supply(), Ok(Amount(DEMO_RESERVE_FUNDS)));
        let reserve = genesis
            .member_by_username(RESERVE_USERNAME)
            .expect("the reserve is in the roster");
        assert_eq!(reserve.account, genesis.reserve);
    }

    #[test]
    fn only_the_care_team_produces_blocks_on_the_demo_network() {
        let genesis = demo_genesis();
        let producers = genesis.producers.expect("members-only production");
        let expected: Vec<AccountId> = DEMO_USERS
            .iter()
            .map(|u| demo_keypair(u.username).account())
            .collect();
        assert_eq!(producers, expected);
        assert!(!producers.contains(&genesis.reserve));
    }

    #[test]
    fn demo_keys_are_distinct_and_reproducible() {
        let alice = demo_keypair("dr_alice").account();
        assert_eq!(alice, demo_keypair("dr_alice").account());
        assert_ne!(alice, demo_keypair("lab_tech_bob").account());
    }

    #[test]
    fn a_network_with_its_own_keys_is_not_demo() {
        let mut genesis = demo_genesis();
        genesis.network = "clinic".into();
        for (i, m) in genesis.roster.iter_mut().enumerate() {
            if m.username != RESERVE_USERNAME {
                let seed = [u8::try_from(i).expect("three users") + 1; 32];
                m.account = Keypair::from_seed(seed).account();
            }
        }
        assert!(!is_demo(&genesis));
    }
}
