//! Node-local logins: usernames and argon2 password hashes.
//!
//! Logins are not on the chain: each node holds the credentials of the people who use
//! it. Only argon2 hashes in PHC string form (`$argon2id$v=19$...`) are ever stored;
//! a login checks the password against the hash and then finds the user in the
//! genesis roster, which says what they may do.

use std::collections::BTreeMap;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use ledger_core::{Genesis, Member};

/// Argon2id hash of the DEMO login of `dr_alice` (the original project's password).
pub const DEMO_HASH_DR_ALICE: &str = "$argon2id$v=19$m=19456,t=2,p=1$ik2HZTG5IEVfB/lxv2CUKg$kNXXFEnfTqOKajyiGL64/qVjl3qDFP1XDyi2c9R6mmY";
/// Argon2id hash of the DEMO login of `lab_tech_bob` (the original project's password).
pub const DEMO_HASH_LAB_TECH_BOB: &str = "$argon2id$v=19$m=19456,t=2,p=1$7kp8Dcgqz72wvz5o8DXLEg$df9j/l9GsLragtrMisV/Lp9qrKXwiRhzaeoJeUvtfg0";
/// Argon2id hash of the DEMO login of `pharm_charlie` (the original project's password).
pub const DEMO_HASH_PHARM_CHARLIE: &str = "$argon2id$v=19$m=19456,t=2,p=1$wQ5qwC5iJ7QupYCOneLr7Q$XdAEpN6V3LJN07R1GTlH9FWPRjm/kYou70LaYTL/Nys";

/// Why a set of credentials cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// A username appears twice.
    #[error("user '{username}' has two password hashes")]
    DuplicateUser {
        /// The username.
        username: String,
    },
    /// A stored hash is not a PHC string this crate can check.
    #[error("the password hash of '{username}' is not a usable argon2 phc string: {reason}")]
    BadHash {
        /// The username.
        username: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Hashing a new password failed.
    #[error("cannot hash the password: {reason}")]
    Hashing {
        /// The hashing library's reason.
        reason: String,
    },
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// No credentials for this username on this node.
    #[error("unknown user '{username}'")]
    UnknownUser {
        /// The username tried.
        username: String,
    },
    /// The password does not match.
    #[error("wrong password for '{username}'")]
    WrongPassword {
        /// The username.
        username: String,
    },
    /// The password matched but the user is not in this network's roster.
    #[error("user '{username}' is not a member of this network")]
    NotAMember {
        /// The username.
        username: String,
    },
    /// The stored hash could not be evaluated (bad parameters, out of memory).
    #[error("the password hash of '{username}' cannot be checked: {reason}")]
    Unusable {
        /// The username.
        username: String,
        /// The hashing library's reason.
        reason: String,
    },
}

/// Hashes `password` with Argon2id (default parameters) and `salt`, giving the PHC
/// string to store in [`Credentials`]. The caller draws the salt: 16 random bytes,
/// different for every password.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> Result<String, CredentialsError> {
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CredentialsError::Hashing {
            reason: e.to_string(),
        })
}

/// Usernames and their argon2 password hashes (PHC strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    hashes: BTreeMap<String, String>,
}

impl Credentials {
    /// Credentials from `(username, PHC hash)` pairs; each hash is parsed up front.
    pub fn new<U, H>(pairs: impl IntoIterator<Item = (U, H)>) -> Result<Self, CredentialsError>
    where
        U: Into<String>,
        H: Into<String>,
    {
        let mut hashes = BTreeMap::new();
        for (username, hash) in pairs {
            let (username, hash) = (username.into(), hash.into());
            if let Err(e) = PasswordHash::new(&hash) {
                return Err(CredentialsError::BadHash {
                    username,
                    reason: e.to_string(),
                });
            }
            if hashes.contains_key(&username) {
                return Err(CredentialsError::DuplicateUser { username });
            }
            hashes.insert(username, hash);
        }
        Ok(Credentials { hashes })
    }

    /// The DEMO logins of the original project: `dr_alice`, `lab_tech_bob` and
    /// `pharm_charlie` with their well-known passwords (stored here only as hashes).
    pub fn demo() -> Self {
        Credentials::new([
            ("dr_alice", DEMO_HASH_DR_ALICE),
            ("lab_tech_bob", DEMO_HASH_LAB_TECH_BOB),
            ("pharm_charlie", DEMO_HASH_PHARM_CHARLIE),
        ])
        .expect("the demo hashes are valid phc strings, checked by a unit test")
    }

    /// The usernames, sorted.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// Checks `password` for `username` and returns the user's roster entry in
    /// `genesis`. Takes as long as one argon2 evaluation (tens of milliseconds).
    pub fn verify<'g>(
        &self,
        genesis: &'g Genesis,
        username: &str,
        password: &str,
    ) -> Result<&'g Member, LoginError> {
        let stored = self
            .hashes
            .get(username)
            .ok_or_else(|| LoginError::UnknownUser {
                username: username.to_string(),
            })?;
        let unusable = |reason: String| LoginError::Unusable {
            username: username.to_string(),
            reason,
        };
        let hash = PasswordHash::new(stored).map_err(|e| unusable(e.to_string()))?;
        match Argon2::default().verify_password(password.as_bytes(), &hash) {
            Ok(()) => {}
            Err(argon2::password_hash::Error::PasswordInvalid) => {
                return Err(LoginError::WrongPassword {
                    username: username.to_string(),
                });
            }
            Err(e) => return Err(unusable(e.to_string())),
        }
        genesis
            .member_by_username(username)
            .ok_or_else(|| LoginError::NotAMember {
                username: username.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_genesis;

    #[test]
    fn demo_logins_work_and_fail_distinctly() {
        let creds = Credentials::demo();
        let genesis = demo_genesis();
        let alice = creds
            .verify(&genesis, "dr_alice", "password123")
            .expect("demo login");
        assert_eq!(alice.display_name, "Dr. Alice");
        assert!(creds.verify(&genesis, "lab_tech_bob", "labpass").is_ok());
        assert!(creds.verify(&genesis, "pharm_charlie", "pharmpass").is_ok());
        assert_eq!(
            creds.verify(&genesis, "dr_alice", "labpass"),
            Err(LoginError::WrongPassword {
                username: "dr_alice".into()
            })
        );
        assert_eq!(
            creds.verify(&genesis, "mallory", "x"),
            Err(LoginError::UnknownUser {
                username: "mallory".into()
            })
        );
    }

    #[test]
    fn a_login_outside_the_roster_is_refused() {
        let creds = Credentials::new([("dr_bob", DEMO_HASH_DR_ALICE)]).expect("valid hash");
        assert_eq!(
            creds.verify(&demo_genesis(), "dr_bob", "password123"),
            Err(LoginError::NotAMember {
                username: "dr_bob".into()
            })
        );
    }

    #[test]
    fn a_deployment_hashes_its_own_passwords() {
        let hash = hash_password("s3cret", &[9; 16]).expect("valid salt");
        assert!(hash.starts_with("$argon2id$"));
        let creds = Credentials::new([("dr_alice", hash)]).expect("valid hash");
        let genesis = demo_genesis();
        assert!(creds.verify(&genesis, "dr_alice", "s3cret").is_ok());
        assert!(matches!(
            creds.verify(&genesis, "dr_alice", "password123"),
            Err(LoginError::WrongPassword { .. })
        ));
    }

    #[test]
    fn bad_and_duplicate_hashes_are_refused() {
        assert!(matches!(
            Credentials::new([("a", "password123")]),
            Err(CredentialsError::BadHash { .. })
        ));
        assert!(matches!(
            Credentials::new([("a", DEMO_HASH_DR_ALICE), ("a", DEMO_HASH_LAB_TECH_BOB)]),
            Err(CredentialsError::DuplicateUser { .. })
        ));
    }
}
