//! Who is asking: a member logs in (`POST /login`) with the username and password it
//! uses at the REPL and gets a bearer token; clinical records
//! (`GET /patients/{id}/records`) are served only with a valid token, each section in
//! the clear only where that member may read it (it is sealed to them and this node's
//! vault holds it). There is no anonymous access to sealed data.
//!
//! Tokens are 32 random bytes, kept only in this node's memory: they end after
//! [`SESSION_TTL`] or when the node stops, and at most [`MAX_SESSIONS`] exist at once
//! (the oldest goes first). Passwords are checked with argon2 on the blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use health_workflow::Role;
use health_workflow::seal::EncryptionKey;
use ledger_core::{AccountId, Genesis};
use rand::Rng;

use super::ApiError;
use crate::repl::Logins;

/// How long a login token lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
/// Most login tokens at once.
pub(crate) const MAX_SESSIONS: usize = 64;

/// A logged-in member reading through the API.
pub(crate) struct Viewer {
    /// The username.
    pub(crate) username: String,
    /// The member's signing account.
    pub(crate) account: AccountId,
    /// Its role.
    pub(crate) role: Role,
    /// Its encryption key, which opens what is sealed to it.
    pub(crate) key: EncryptionKey,
    /// Its signing key, which signs the records of what it reads.
    pub(crate) keys: ledger_core::Keypair,
}

/// The node's logins and the tokens handed out.
pub(crate) struct Sessions {
    logins: Logins,
    genesis: Genesis,
    tokens: Mutex<HashMap<String, (Arc<Viewer>, Instant)>>,
}

impl Sessions {
    pub(crate) fn new(logins: Logins, genesis: Genesis) -> Self {
        Sessions {
            logins,
            genesis,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `username` and `password` (argon2: call it off the async runtime) and
    /// hands out a token.
    pub(crate) fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(String, Arc<Viewer>), ApiError> {
        let keys = self
            .logins
            .verify(&self.genesis, username, password)
            .map_err(ApiError::Unauthorized)?;
        let member = self
            .genesis
            .member(&keys.account())
            .ok_or_else(|| ApiError::Unauthorized("not a member of this network".into()))?;
        let role = Role::from_label(&member.role).ok_or_else(|| {
            ApiError::Unauthorized(format!("role '{}' reads nothing", member.role))
        })?;
        let viewer = Arc::new(Viewer {
            username: member.username.clone(),
            account: keys.account(),
            role,
            key: EncryptionKey::of_member(&keys),
            keys,
        });
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, (_, expires)| *expires > now);
        while tokens.len() >= MAX_SESSIONS {
            let oldest = tokens
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => {
                    tokens.remove(&t);
                }
                None => break,
            }
        }
        tokens.insert(token.clone(), (Arc::clone(&viewer), now + SESSION_TTL));
        Ok((token, viewer))
    }

    /// The member a request's `Authorization: Bearer <token>` names: `None` without
    /// the header, a refusal for a token that is unknown, expired or malformed.
    pub(crate) fn viewer(&self, headers: &HeaderMap) -> Result<Option<Arc<Viewer>>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("expected 'Authorization: Bearer <token>'".into())
            })?;
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match tokens.get(token.trim()) {
            Some((viewer, expires)) if *expires > Instant::now() => Ok(Some(Arc::clone(viewer))),
            _ => Err(ApiError::Unauthorized(
                "unknown or expired token: log in again".into(),
            )),
        }
    }
}
