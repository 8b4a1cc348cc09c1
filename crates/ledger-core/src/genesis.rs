//! The genesis: the parameters and initial state that define a network.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::hash::{BlockHash, Hash};
use crate::keys::AccountId;
use crate::limits;
use crate::sealed::MemberEncryption;
use crate::units::{Amount, Timestamp};

/// A member of the network's roster: an account with an application-level role.
///
/// The ledger core treats `role` as an opaque label; the [`Policy`](crate::Policy)
/// gives it meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's signing account.
    pub account: AccountId,
    /// Short unique login name (`dr_alice`).
    pub username: String,
    /// Name shown to people (`Dr. Alice`).
    pub display_name: String,
    /// Application role label, interpreted by the policy.
    pub role: String,
    /// The member's encryption key, bound to its signing key, for the bodies sealed to
    /// it; `None` for an account that reads nothing (the reserve).
    pub encryption: Option<MemberEncryption>,
}

/// Everything that defines a network. Its hash, [`Genesis::hash`], names the network:
/// it is the parent of block 1 and is inside every transaction signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Human-readable network name.
    pub network: String,
    /// Time of the genesis; block 1 may not be older.
    pub timestamp: Timestamp,
    /// Proof-of-work difficulty: a block hash needs at least this many leading zero bits.
    pub pow_bits: u8,
    /// Accounts allowed to produce blocks. A block that a majority of them have built on
    /// is final (see [`Ledger::final_height`](crate::Ledger::final_height)). `None` is
    /// open mining: anyone with valid work may produce and nothing is ever final, which
    /// lets anyone with more hash power rewrite history; for teaching proof of work only.
    pub producers: Option<Vec<AccountId>>,
    /// The members and their roles.
    pub roster: Vec<Member>,
    /// Initial balances. Their sum is the fixed e-cash supply.
    pub balances: Vec<(AccountId, Amount)>,
    /// The reserve account that pays the policy's rewards; no one can sign for it.
    pub reserve: AccountId,
    /// Named numeric parameters for the policy (reward sizes and the like).
    pub parameters: BTreeMap<String, u64>,
}

/// Why a genesis is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The network name is empty or too long.
    #[error("network name must be 1 to {max} bytes, found {len}")]
    NetworkName {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The proof-of-work difficulty is above the supported maximum.
    #[error("proof-of-work of {bits} bits is above the maximum of {max}")]
    PowTooHard {
        /// Requested bits.
        bits: u8,
        /// The limit.
        max: u8,
    },
    /// Two roster entries share an account or username.
    #[error("roster entry '{username}' repeats an account or username")]
    DuplicateMember {
        /// The repeated entry.
        username: String,
    },
    /// A roster text field is empty or too long.
    #[error("roster entry '{username}' has an empty or over-long field")]
    MemberText {
        /// The entry.
        username: String,
    },
    /// A roster entry's encryption key is not bound to its account by its signature.
    #[error("the encryption key of roster entry '{username}' is not signed by its account")]
    EncryptionKeyBinding {
        /// The entry.
        username: String,
    },
    /// An account is listed twice in the initial balances.
    #[error("account {account} has two initial balances")]
    DuplicateBalance {
        /// The account.
        account: AccountId,
    },
    /// The initial balances add up to more than `u64::MAX`.
    #[error("initial balances overflow")]
    SupplyOverflow,
    /// The encoded genesis is above its size limit.
    #[error("genesis encodes to {size} bytes, above the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The genesis bytes could not be decoded.
    #[error("genesis cannot be decoded: {0}")]
    Decode(#[from] codec::DecodeError),
}

impl Genesis {
    /// The network's name: hash of the genesis encoding.
    pub fn hash(&self) -> BlockHash {
        BlockHash::from_hash(Hash::of(&codec::encode(self)))
    }

    /// The canonical encoding, for writing a genesis file.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes and checks a genesis.
    pub fn decode(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        let genesis: Genesis = codec::decode(bytes, limits::MAX_GENESIS_BYTES)?;
        genesis.check()?;
        Ok(genesis)
    }

    /// The roster entry for `account`, if any.
    pub fn member(&self, account: &AccountId) -> Option<&Member> {
        self.roster.iter().find(|m| &m.account == account)
    }

    /// The roster entry with login name `username`, if any.
    pub fn member_by_username(&self, username: &str) -> Option<&Member> {
        self.roster.iter().find(|m| m.username == username)
    }

    /// The named policy parameter, or `default` when the genesis does not set it.
    pub fn parameter(&self, name: &str, default: u64) -> u64 {
        self.parameters.get(name).copied().unwrap_or(default)
    }

    /// The total e-cash supply.
    pub fn supply(&self) -> Result<Amount, GenesisError> {
        self.balances
            .iter()
            .try_fold(Amount::ZERO, |sum, (_, a)| sum.checked_add(*a))
            .ok_or(GenesisError::SupplyOverflow)
    }

    /// Checks the genesis is internally consistent and within limits.
    pub fn check(&self) -> Result<(), GenesisError> {
        let size = codec::encoded_len(self);
        if size > limits::MAX_GENESIS_BYTES {
            return Err(GenesisError::TooLarge {
                size,
                max: limits::MAX_GENESIS_BYTES,
            });
        }
        if self.network.is_empty() || self.network.len() > limits::MAX_NETWORK_NAME {
            return Err(GenesisError::NetworkName {
                len: self.network.len(),
                max: limits::MAX_NETWORK_NAME,
            });
        }
        if self.pow_bits > limits::MAX_POW_BITS {
            return Err(GenesisError::PowTooHard {
                bits: self.pow_bits,
                max: limits::MAX_POW_BITS,
            });
        }
        let mut accounts = BTreeSet::new();
        let mut names = BTreeSet::new();
        for m in &self.roster {
            let text_ok = [&m.username, &m.display_name, &m.role]
                .iter()
                .all(|t| !t.is_empty() && t.len() <= limits::MAX_ROSTER_TEXT);
            if !text_ok {
                return Err(GenesisError::MemberText {
                    username: m.username.clone(),
                });
            }
            if !accounts.insert(m.account) || !names.insert(m.username.as_str()) {
                return Err(GenesisError::DuplicateMember {
                    username: m.username.clone(),
                });
            }
            if let Some(encryption) = &m.encryption
                && !encryption.is_bound_to(&m.account)
            {
                return Err(GenesisError::EncryptionKeyBinding {
                    username: m.username.clone(),
                });
            }
        }
        let mut funded = BTreeSet::new();
        for (account, _) in &self.balances {
            if !funded.insert(*account) {
                return Err(GenesisError::DuplicateBalance { account: *account });
            }
        }
        self.supply().map(|_| ())
    }
}
