//! The anonymous auth session and where it is kept between runs.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use voicemeet_proto::Redacted;

use crate::error::StoreError;

/// An anonymous Supabase Auth session (GoTrue's `AccessTokenResponse`, the
/// parts we keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The JWT sent as `Authorization: Bearer` and as Realtime's
    /// `access_token`.
    pub access_token: Redacted<String>,
    /// The single-use token that buys the next session; using one twice
    /// revokes the whole session.
    pub refresh_token: Redacted<String>,
    /// When `access_token` expires, Unix seconds.
    pub expires_at: u64,
    /// The anonymous user's id (the JWT's `sub`).
    pub user_id: String,
}

impl Session {
    /// Whether the access token expires within `margin` of `now` (Unix
    /// seconds), or already has.
    pub fn expires_within(&self, margin: Duration, now: u64) -> bool {
        self.expires_at <= now.saturating_add(margin.as_secs())
    }
}

/// Where the session lives between runs: the OS keychain in the app,
/// [`MemoryStore`] in tests and the CLI.
///
/// Calls run on tokio's blocking pool, so an implementation may block
/// (keychains do) but should not take long.
pub trait SessionStore: Send + Sync + 'static {
    /// The stored session, if any.
    ///
    /// # Errors
    /// A [`StoreError`] if the store cannot be read. A session that does
    /// not parse should be reported as `Ok(None)`, so a fresh sign-in
    /// replaces it.
    fn load(&self) -> Result<Option<Session>, StoreError>;

    /// Replaces the stored session.
    ///
    /// # Errors
    /// A [`StoreError`] if the store cannot be written.
    fn save(&self, session: &Session) -> Result<(), StoreError>;

    /// Forgets the stored session.
    ///
    /// # Errors
    /// A [`StoreError`] if the store cannot be written.
    fn clear(&self) -> Result<(), StoreError>;
}

/// A [`SessionStore`] in memory: the session lasts as long as the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    // Each operation is one assignment, so a poisoned lock still guards a
    // whole value.
    session: Mutex<Option<Session>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `session`.
    pub fn with_session(session: Session) -> Self {
        Self {
            session: Mutex::new(Some(session)),
        }
    }
}

impl SessionStore for MemoryStore {
    fn load(&self) -> Result<Option<Session>, StoreError> {
        Ok(self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn save(&self, session: &Session) -> Result<(), StoreError> {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = Some(session.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at: u64) -> Session {
        Session {
            access_token: Redacted::new("eyJaccess".into()),
            refresh_token: Redacted::new("refresh-secret".into()),
            expires_at,
            user_id: "u1".into(),
        }
    }

    #[test]
    fn expiry_margin() {
        let s = session(1_000);
        assert!(!s.expires_within(Duration::from_secs(60), 900));
        assert!(s.expires_within(Duration::from_secs(60), 940));
        assert!(s.expires_within(Duration::ZERO, 1_000));
        assert!(s.expires_within(Duration::ZERO, 2_000));
    }

    #[test]
    fn debug_hides_tokens() {
        let printed = format!("{:?}", session(1));
        assert!(!printed.contains("eyJaccess"), "{printed}");
        assert!(!printed.contains("refresh-secret"), "{printed}");
    }

    #[test]
    fn memory_store_round_trip() -> Result<(), StoreError> {
        let store = MemoryStore::new();
        assert_eq!(store.load()?, None);
        store.save(&session(5))?;
        assert_eq!(store.load()?, Some(session(5)));
        store.clear()?;
        assert_eq!(store.load()?, None);
        Ok(())
    }
}
