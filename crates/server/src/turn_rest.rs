//! TURN REST credentials (draft-uberti-behave-turn-rest-00, as coturn's
//! `--use-auth-secret` implements it): the username is `<expiry>:<user id>`
//! (the id part optional), the password is
//! `base64(HMAC-SHA1(shared secret, username))`. Anyone holding the shared
//! secret can mint or check credentials without talking to the other side,
//! which is how this server, its embedded relay and an external coturn agree.
//!
//! [`RestAuthHandler`] plugs the check into the `turn` crate's server; its own
//! `LongTermAuthHandler` only accepts a bare timestamp as the username.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use voicemeet_proto::Redacted;

use crate::clock::unix_now;

/// Separates expiry and user id in a username (coturn's default
/// `rest-api-separator`).
pub const USERNAME_SEPARATOR: char = ':';

/// A minted credential, ready for an `iceServers` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry>:<user id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
    /// When the relay stops accepting it, Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredential")
            .field("username", &Redacted::new(&self.username))
            .field("credential", &Redacted::new(&self.credential))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a TURN username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnAuthError {
    /// The expiry part is not a decimal Unix time, or the id after the
    /// separator is empty. Not retryable.
    #[error("username is not `<expiry>[:<id>]`")]
    MalformedUsername,
    /// The expiry has passed. Retryable with fresh credentials.
    #[error("credential expired")]
    Expired {
        /// The username's expiry, Unix seconds.
        expired_at: u64,
    },
}

/// The TURN REST password for `username`.
pub fn rest_password(secret: &str, username: &str) -> String {
    // HMAC is defined for keys of any length; `new_from_slice` only fails for
    // fixed-key-size MACs.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Mints a credential for `user_id` valid until `expires_at` (Unix seconds).
pub fn mint(secret: &str, user_id: &str, expires_at: u64) -> TurnCredential {
    let username = format!("{expires_at}{USERNAME_SEPARATOR}{user_id}");
    let credential = rest_password(secret, &username);
    TurnCredential {
        username,
        credential,
        expires_at,
    }
}

/// Checks a username's form and expiry at `now` and returns the password the
/// client must have derived from it.
pub fn expected_password(secret: &str, username: &str, now: u64) -> Result<String, TurnAuthError> {
    let expiry = match username.split_once(USERNAME_SEPARATOR) {
        Some((_, "")) => return Err(TurnAuthError::MalformedUsername),
        Some((expiry, _id)) => expiry,
        None => username,
    };
    // `u64::from_str` accepts a leading '+'; coturn's REST usernames never
    // carry one, so demand plain digits.
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TurnAuthError::MalformedUsername);
    }
    let expires_at: u64 = expiry
        .parse()
        .map_err(|_| TurnAuthError::MalformedUsername)?;
    if expires_at <= now {
        return Err(TurnAuthError::Expired {
            expired_at: expires_at,
        });
    }
    Ok(rest_password(secret, username))
}

/// The embedded relay's [`AuthHandler`](::turn::auth::AuthHandler): accepts
/// unexpired TURN REST usernames and hands the `turn` crate the long-term key
/// `MD5(username:realm:password)` to check the request's MESSAGE-INTEGRITY
/// with. A refusal makes the relay answer the request with an error, so no
/// allocation, permission or channel is created.
pub struct RestAuthHandler {
    secret: Redacted<Arc<str>>,
}

impl RestAuthHandler {
    /// A handler checking credentials against `secret`.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Self {
            secret: Redacted::new(secret.into()),
        }
    }
}

impl ::turn::auth::AuthHandler for RestAuthHandler {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, ::turn::Error> {
        match expected_password(self.secret.expose(), username, unix_now()) {
            Ok(password) => Ok(::turn::auth::generate_auth_key(username, realm, &password)),
            Err(err) => {
                // The username names a user and the source is an IP: neither
                // is logged.
                tracing::debug!(reason = %err, "TURN request refused");
                Err(::turn::Error::Other(err.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ::turn::auth::AuthHandler as _;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn password_matches_the_published_test_vector() {
        // PROTOCOLS.md §3.4, from the `turn` crate's own tests.
        assert_eq!(
            rest_password("foobar", "1599491771"),
            "Tpz/nKkyvX/vMSLKvL4sbtBt8Vs="
        );
    }

    #[test]
    fn minted_credentials_check_out() {
        let cred = mint("s3cret", "user-1", NOW + 60);
        assert_eq!(cred.username, format!("{}:user-1", NOW + 60));
        assert_eq!(cred.credential, rest_password("s3cret", &cred.username));
        assert_eq!(
            expected_password("s3cret", &cred.username, NOW),
            Ok(cred.credential.clone())
        );
        assert_ne!(
            expected_password("other", &cred.username, NOW),
            Ok(cred.credential)
        );
    }

    #[test]
    fn timestamp_only_usernames_are_accepted_like_coturn() {
        let username = (NOW + 1).to_string();
        assert_eq!(
            expected_password("foobar", &username, NOW),
            Ok(rest_password("foobar", &username))
        );
    }

    #[test]
    fn expired_usernames_are_refused() {
        for expiry in [NOW, NOW - 1, 0] {
            assert_eq!(
                expected_password("s", &format!("{expiry}:u"), NOW),
                Err(TurnAuthError::Expired { expired_at: expiry })
            );
        }
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for username in [
            "",
            ":u",
            "abc:u",
            "+1900000000:u",
            "-1:u",
            "1900000000:",
            "1.5e9:u",
            "99999999999999999999999:u",
            "user",
        ] {
            assert_eq!(
                expected_password("s", username, NOW),
                Err(TurnAuthError::MalformedUsername),
                "{username:?}"
            );
        }
    }

    #[test]
    fn handler_returns_the_long_term_key() {
        let handler = RestAuthHandler::new("s3cret");
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("literal");
        let cred = mint("s3cret", "u", unix_now() + 600);
        let key = handler
            .auth_handle(&cred.username, "voicemeet", addr)
            .expect("fresh credential");
        assert_eq!(
            key,
            ::turn::auth::generate_auth_key(&cred.username, "voicemeet", &cred.credential)
        );
        let stale = mint("s3cret", "u", unix_now() - 1);
        assert!(
            handler
                .auth_handle(&stale.username, "voicemeet", addr)
                .is_err()
        );
        assert!(handler.auth_handle("nonsense", "voicemeet", addr).is_err());
    }

    #[test]
    fn debug_hides_the_credential() {
        let printed = format!("{:?}", mint("s", "someone", NOW));
        assert!(!printed.contains("someone"), "{printed}");
    }
}
