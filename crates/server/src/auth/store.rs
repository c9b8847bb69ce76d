//! Users, sessions and refresh tokens, in memory (nothing survives a restart,
//! which suits a local backend). Pure: time is an argument.
//!
//! Refresh tokens are opaque, random and single-use. Each refresh revokes the
//! presented token and issues a new one in the same session. Presenting a
//! revoked token again means it leaked or a client raced itself, so, like
//! GoTrue with rotation on, the whole session is revoked: every token of it,
//! including the newest, stops working.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value};
use uuid::Uuid;
use voicemeet_proto::Redacted;

use crate::secrets::{REFRESH_TOKEN_BYTES, random_token};

/// Revoked refresh tokens are remembered this long so reuse is reported as
/// `refresh_token_already_used` (and revokes the session) rather than
/// `refresh_token_not_found`; after that they are forgotten to bound memory.
pub const REVOKED_TOKEN_RETENTION_SECS: u64 = 24 * 3600;

/// An anonymous user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// The user id (`sub` of its access tokens).
    pub id: Uuid,
    /// Sign-up time, Unix seconds.
    pub created_at: u64,
    /// Last change, Unix seconds.
    pub updated_at: u64,
    /// Last sign-in (sign-up, for anonymous users), Unix seconds.
    pub last_sign_in_at: u64,
    /// The `data` object given at sign-up.
    pub user_metadata: Map<String, Value>,
}

/// A session's newest credentials, to be turned into an access token
/// response.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The session's user.
    pub user: User,
    /// The session (`session_id` claim).
    pub session_id: Uuid,
    /// The only refresh token of the session that works now.
    pub refresh_token: Redacted<String>,
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// Never issued, or revoked long enough ago to be forgotten. Not
    /// retryable: sign in again.
    #[error("refresh token not found")]
    NotFound,
    /// Already exchanged once; its session is now revoked. Not retryable:
    /// sign in again.
    #[error("refresh token already used")]
    AlreadyUsed,
}

struct SessionEntry {
    user_id: Uuid,
    active_token: String,
}

struct TokenEntry {
    session_id: Uuid,
    revoked: bool,
}

/// All auth state. `Debug` prints counts only: the maps hold refresh tokens.
#[derive(Default)]
pub struct SessionStore {
    users: HashMap<Uuid, User>,
    sessions: HashMap<Uuid, SessionEntry>,
    tokens: HashMap<String, TokenEntry>,
    /// Revoked tokens in revocation order, for expiry after the retention.
    revoked: VecDeque<(u64, String)>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("users", &self.users.len())
            .field("sessions", &self.sessions.len())
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an anonymous user with a first session.
    pub fn sign_up_anonymous(&mut self, user_metadata: Map<String, Value>, now: u64) -> Issued {
        let user = User {
            id: Uuid::new_v4(),
            created_at: now,
            updated_at: now,
            last_sign_in_at: now,
            user_metadata,
        };
        self.users.insert(user.id, user.clone());
        let session_id = Uuid::new_v4();
        let refresh_token = self.issue_token(session_id);
        self.sessions.insert(
            session_id,
            SessionEntry {
                user_id: user.id,
                active_token: refresh_token.clone(),
            },
        );
        Issued {
            user,
            session_id,
            refresh_token: Redacted::new(refresh_token),
        }
    }

    /// Exchanges a refresh token for the session's next one.
    pub fn refresh(&mut self, token: &str, now: u64) -> Result<Issued, RefreshError> {
        self.forget_old_revocations(now);
        let entry = self.tokens.get(token).ok_or(RefreshError::NotFound)?;
        let session_id = entry.session_id;
        if entry.revoked {
            self.revoke_session(session_id, now);
            return Err(RefreshError::AlreadyUsed);
        }
        let Some(session) = self.sessions.get(&session_id) else {
            // Unreachable while the invariant "a session's tokens are revoked
            // when it ends" holds; refuse rather than panic.
            return Err(RefreshError::NotFound);
        };
        let Some(user) = self.users.get(&session.user_id).cloned() else {
            return Err(RefreshError::NotFound);
        };

        self.revoke_token(token.to_owned(), now);
        let next = self.issue_token(session_id);
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.active_token = next.clone();
        }
        Ok(Issued {
            user,
            session_id,
            refresh_token: Redacted::new(next),
        })
    }

    /// The user with this id.
    pub fn user(&self, id: &Uuid) -> Option<&User> {
        self.users.get(id)
    }

    /// Whether the session exists and has not been revoked.
    pub fn is_session_active(&self, session_id: &Uuid) -> bool {
        self.sessions.contains_key(session_id)
    }

    /// Number of users, for diagnostics.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn issue_token(&mut self, session_id: Uuid) -> String {
        let token = random_token(REFRESH_TOKEN_BYTES);
        self.tokens.insert(
            token.clone(),
            TokenEntry {
                session_id,
                revoked: false,
            },
        );
        token
    }

    fn revoke_token(&mut self, token: String, now: u64) {
        if let Some(entry) = self.tokens.get_mut(&token)
            && !entry.revoked
        {
            entry.revoked = true;
            self.revoked.push_back((now, token));
        }
    }

    fn revoke_session(&mut self, session_id: Uuid, now: u64) {
        if let Some(session) = self.sessions.remove(&session_id) {
            self.revoke_token(session.active_token, now);
        }
    }

    fn forget_old_revocations(&mut self, now: u64) {
        while let Some((revoked_at, _)) = self.revoked.front() {
            if now.saturating_sub(*revoked_at) < REVOKED_TOKEN_RETENTION_SECS {
                break;
            }
            if let Some((_, token)) = self.revoked.pop_front() {
                self.tokens.remove(&token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn token(issued: &Issued) -> String {
        issued.refresh_token.expose().clone()
    }

    #[test]
    fn sign_up_creates_a_user_and_an_active_session() {
        let mut store = SessionStore::new();
        let mut data = Map::new();
        data.insert("nick".into(), Value::from("x"));
        let issued = store.sign_up_anonymous(data.clone(), T0);
        assert_eq!(store.user(&issued.user.id), Some(&issued.user));
        assert_eq!(issued.user.user_metadata, data);
        assert_eq!(issued.user.created_at, T0);
        assert!(store.is_session_active(&issued.session_id));
        assert_eq!(token(&issued).len(), 32, "24 random bytes, base64url");
        let other = store.sign_up_anonymous(Map::new(), T0);
        assert_ne!(other.user.id, issued.user.id);
        assert_ne!(token(&other), token(&issued));
    }

    #[test]
    fn refresh_rotates_within_the_session() {
        let mut store = SessionStore::new();
        let first = store.sign_up_anonymous(Map::new(), T0);
        let second = store.refresh(&token(&first), T0 + 10).expect("fresh token");
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(second.user.id, first.user.id);
        assert_ne!(token(&second), token(&first));
        let third = store
            .refresh(&token(&second), T0 + 20)
            .expect("rotated token");
        assert_eq!(third.session_id, first.session_id);
    }

    #[test]
    fn reuse_is_refused_and_revokes_the_whole_session() {
        let mut store = SessionStore::new();
        let first = store.sign_up_anonymous(Map::new(), T0);
        let second = store.refresh(&token(&first), T0).expect("fresh token");
        assert_eq!(
            store.refresh(&token(&first), T0).err(),
            Some(RefreshError::AlreadyUsed)
        );
        assert!(!store.is_session_active(&first.session_id));
        assert_eq!(
            store.refresh(&token(&second), T0).err(),
            Some(RefreshError::AlreadyUsed),
            "the newest token of a revoked session is dead too"
        );
        assert!(store.user(&first.user.id).is_some(), "the user remains");
    }

    #[test]
    fn unknown_tokens_are_not_found() {
        let mut store = SessionStore::new();
        store.sign_up_anonymous(Map::new(), T0);
        assert_eq!(store.refresh("", T0).err(), Some(RefreshError::NotFound));
        assert_eq!(
            store.refresh("never-issued", T0).err(),
            Some(RefreshError::NotFound)
        );
    }

    #[test]
    fn revoked_tokens_are_forgotten_after_the_retention() {
        let mut store = SessionStore::new();
        let first = store.sign_up_anonymous(Map::new(), T0);
        let second = store.refresh(&token(&first), T0).expect("fresh token");
        let later = T0 + REVOKED_TOKEN_RETENTION_SECS;
        assert_eq!(
            store.refresh(&token(&first), later).err(),
            Some(RefreshError::NotFound)
        );
        assert!(store.is_session_active(&second.session_id));
        assert!(store.refresh(&token(&second), later).is_ok());
        assert_eq!(store.revoked.len(), 1, "only the just-used token is kept");
    }
}
