//! How users prove who they are on a node: the demo network's published logins, or a
//! real network's key file. The REPL's `login` and the API's `POST /login` both go
//! through [`Logins::verify`].

use std::path::PathBuf;

use health_workflow::{Credentials, LoginError};
use ledger_core::Keypair;

use crate::keyfile;

/// How users prove who they are on this node.
#[derive(Clone)]
pub(crate) enum Logins {
    /// The demo network: the original project's logins, checked against argon2 hashes,
    /// signing with the published demo keys.
    Demo(Credentials),
    /// A real network: the node's user, whose key file's passphrase is the password.
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The user's key, decrypted at start-up.
        keys: Box<Keypair>,
    },
}

impl Logins {
    /// The signing key of `username` if `password` is theirs on this node: the demo
    /// credentials' argon2 hashes, or the node's key file, which `password` must
    /// decrypt. Wrong usernames and wrong passwords are refused alike.
    pub(crate) fn verify(
        &self,
        genesis: &ledger_core::Genesis,
        username: &str,
        password: &str,
    ) -> Result<Keypair, String> {
        const WRONG: &str = "wrong username or password";
        match self {
            Logins::Demo(credentials) => {
                let member =
                    credentials
                        .verify(genesis, username, password)
                        .map_err(|e| match e {
                            LoginError::WrongPassword { .. } | LoginError::UnknownUser { .. } => {
                                WRONG.to_string()
                            }
                            other => other.to_string(),
                        })?;
                Ok(health_workflow::demo_keypair(&member.username))
            }
            Logins::KeyFile { path, keys } => {
                let owner = genesis.member(&keys.account()).map(|m| m.username.as_str());
                if owner != Some(username) {
                    return Err(WRONG.to_string());
                }
                let opened = keyfile::read(path, password).map_err(|e| match e {
                    keyfile::KeyFileError::Decrypt => WRONG.to_string(),
                    other => other.to_string(),
                })?;
                if opened.account() != keys.account() {
                    return Err("the key file changed since the node started".to_string());
                }
                Ok(opened)
            }
        }
    }
}
