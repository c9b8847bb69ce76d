//! HS256 JSON Web Tokens, as Supabase issues them: the anon key and user
//! access tokens are both signed with the project's JWT secret.
//!
//! [`JwtKey::verify`] is the one verification path for every module (auth,
//! functions, Realtime). Its errors print exactly the messages Supabase
//! Realtime sends, so a Realtime `phx_join` reply can use `to_string()`.
//!
//! Time is an argument (`now`, Unix seconds): nothing here reads the clock.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use voicemeet_proto::Redacted;

type HmacSha256 = Hmac<Sha256>;

/// The role of the anon key: callers that have not signed in.
pub const ROLE_ANON: &str = "anon";
/// The role of a signed-in user's access token.
pub const ROLE_AUTHENTICATED: &str = "authenticated";
/// The role of a service key (full access); accepted as an `apikey`.
pub const ROLE_SERVICE: &str = "service_role";
/// The `aud` claim of user access tokens, as GoTrue sets it.
pub const AUDIENCE_AUTHENTICATED: &str = "authenticated";

/// `iss` of the anon key.
pub const ANON_KEY_ISSUER: &str = "voicemeet-local";
/// `iat` of the anon key (2026-01-01T00:00:00Z). Fixed, with
/// [`ANON_KEY_EXPIRES_AT`], so that the anon key is a pure function of the JWT
/// secret: the same secret prints the same key on every start.
pub const ANON_KEY_ISSUED_AT: u64 = 1_767_225_600;
/// `exp` of the anon key (2100-01-01T00:00:00Z): API keys are long-lived;
/// Realtime still requires an `exp`.
pub const ANON_KEY_EXPIRES_AT: u64 = 4_102_444_800;

/// The only header we issue. Verification parses the header instead of
/// comparing bytes, so tokens from other HS256 issuers sharing the secret
/// (e.g. `supabase` CLI scripts) verify too.
const HS256_HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Why a token was refused. `Display` is Supabase Realtime's message for the
/// case, which clients match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three dot-separated base64url segments, or a header/payload that is
    /// not a JSON object of the expected types. Not retryable.
    #[error("The token provided is not a valid JWT")]
    Malformed,
    /// The header names an algorithm other than HS256 (including `none`), so
    /// the signature cannot be checked with our secret. Not retryable.
    #[error("Failed to validate JWT signature")]
    UnsupportedAlgorithm,
    /// The signature does not match: forged, or signed with another secret.
    /// Not retryable.
    #[error("Failed to validate JWT signature")]
    BadSignature,
    /// The payload lacks a string `role` or an integer `exp`, which Realtime
    /// requires. Not retryable.
    #[error("Fields `role` and `exp` are required in JWT")]
    MissingClaims,
    /// `exp` is not in the future. Retryable after refreshing the session.
    #[error("Token has expired")]
    Expired {
        /// The token's `exp`, Unix seconds.
        expired_at: u64,
    },
}

/// The claims we read and write. Anything else in a payload is kept in
/// [`Claims::extra`], so a verified token's full claim set is available (e.g.
/// for Realtime's `request.jwt.claims`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id. Absent in API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `anon`, `authenticated` or `service_role`.
    pub role: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer: `<url>/auth/v1` for user tokens, like GoTrue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: `authenticated` for user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The auth session this access token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `true` for anonymous users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_anonymous: Option<bool>,
    /// Every other claim, untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The claims of the anon key; see [`ANON_KEY_ISSUED_AT`].
    pub fn anon_key() -> Self {
        Self {
            sub: None,
            role: ROLE_ANON.to_owned(),
            exp: ANON_KEY_EXPIRES_AT,
            iat: Some(ANON_KEY_ISSUED_AT),
            iss: Some(ANON_KEY_ISSUER.to_owned()),
            aud: None,
            session_id: None,
            is_anonymous: None,
            extra: Map::new(),
        }
    }
}

/// The HS256 secret, able to sign and verify. Cheap to clone; `Debug` never
/// prints the secret.
#[derive(Clone)]
pub struct JwtKey {
    secret: Redacted<Arc<[u8]>>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("secret", &self.secret)
            .finish()
    }
}

impl JwtKey {
    /// Wraps a secret. Supabase uses the secret's UTF-8 bytes as the HMAC key.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secret: Redacted::new(Arc::from(secret.as_ref())),
        }
    }

    /// Signs `claims` as a compact HS256 JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        // Serializing a struct of strings, integers and a JSON map cannot fail.
        let payload = serde_json::to_vec(claims).expect("claims always serialize to JSON");
        let mut token = String::new();
        URL_SAFE_NO_PAD.encode_string(HS256_HEADER_JSON, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self.mac(token.as_bytes()).finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    }

    /// Verifies `token` at time `now` (Unix seconds) and returns its claims.
    ///
    /// Checks, in Realtime's order: shape, algorithm, signature (constant
    /// time), then the required `role`/`exp` claims, then expiry.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };

        let header: Map<String, Value> = decode_json_object(header_b64)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(JwtError::UnsupportedAlgorithm);
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed)?;
        let signed_len = header_b64.len() + 1 + payload_b64.len();
        self.mac(&token.as_bytes()[..signed_len])
            .verify_slice(&signature)
            .map_err(|_| JwtError::BadSignature)?;

        let payload: Map<String, Value> = decode_json_object(payload_b64)?;
        let exp = match (payload.get("role"), payload.get("exp")) {
            (Some(Value::String(_)), Some(exp)) => exp.as_u64().ok_or(JwtError::MissingClaims)?,
            _ => return Err(JwtError::MissingClaims),
        };
        if exp <= now {
            return Err(JwtError::Expired { expired_at: exp });
        }
        serde_json::from_value(Value::Object(payload)).map_err(|_| JwtError::Malformed)
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC is defined for keys of any length; `new_from_slice` only fails
        // for fixed-key-size MACs.
        let mut mac = HmacSha256::new_from_slice(self.secret.expose())
            .expect("HMAC takes keys of any length");
        mac.update(data);
        mac
    }
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> JwtKey {
        JwtKey::new("super-secret-jwt-token-with-at-least-32-characters-long")
    }

    fn user_claims(exp: u64) -> Claims {
        let mut extra = Map::new();
        extra.insert("aal".into(), Value::from("aal1"));
        Claims {
            sub: Some("8d6b2c1e-0000-4000-8000-000000000001".into()),
            role: ROLE_AUTHENTICATED.into(),
            exp,
            iat: Some(NOW),
            iss: Some("http://127.0.0.1:54321/auth/v1".into()),
            aud: Some(AUDIENCE_AUTHENTICATED.into()),
            session_id: Some("8d6b2c1e-0000-4000-8000-000000000002".into()),
            is_anonymous: Some(true),
            extra,
        }
    }

    /// Builds a token with arbitrary header and payload JSON, signed with `key`.
    fn raw_token(key: &JwtKey, header: &str, payload: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = key.mac(signing_input.as_bytes()).finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn round_trip_keeps_every_claim() {
        let claims = user_claims(NOW + 3600);
        let token = key().sign(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(key().verify(&token, NOW), Ok(claims));
    }

    #[test]
    fn known_answer_matches_an_independent_hs256_implementation() {
        // The header/payload/secret of jwt.io's HS256 example; the signature
        // was computed with `openssl dgst -sha256 -hmac`.
        let key = JwtKey::new("your-256-bit-secret");
        let token = raw_token(
            &key,
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
        );
        assert_eq!(
            token.rsplit('.').next(),
            Some("SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
        );
    }

    #[test]
    fn expired_token_is_refused_with_its_expiry() {
        let token = key().sign(&user_claims(NOW));
        assert_eq!(
            key().verify(&token, NOW),
            Err(JwtError::Expired { expired_at: NOW })
        );
        assert_eq!(
            key().verify(&token, NOW - 1).map(|c| c.exp),
            Ok(NOW),
            "valid until the second of exp"
        );
        assert_eq!(
            JwtError::Expired { expired_at: NOW }.to_string(),
            "Token has expired"
        );
    }

    #[test]
    fn forged_signature_is_refused() {
        let token = JwtKey::new("another-secret-another-secret-another-secret")
            .sign(&user_claims(NOW + 60));
        assert_eq!(key().verify(&token, NOW), Err(JwtError::BadSignature));

        // Same signature, payload swapped for one claiming another role.
        let good = key().sign(&user_claims(NOW + 60));
        let mut forged_claims = user_claims(NOW + 60);
        forged_claims.role = ROLE_SERVICE.into();
        let forged_payload = key().sign(&forged_claims);
        let parts: Vec<&str> = good.split('.').collect();
        let forged_parts: Vec<&str> = forged_payload.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
        assert_eq!(key().verify(&tampered, NOW), Err(JwtError::BadSignature));
        assert_eq!(
            JwtError::BadSignature.to_string(),
            "Failed to validate JWT signature"
        );
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"role":"service_role","exp":4102444800}"#);
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(
            key().verify(&none, NOW),
            Err(JwtError::UnsupportedAlgorithm)
        );
        let hs512 = raw_token(
            &key(),
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"role":"anon","exp":4102444800}"#,
        );
        assert_eq!(
            key().verify(&hs512, NOW),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = key().sign(&user_claims(NOW + 60));
        for bad in [
            "",
            "not-a-jwt",
            "a.b",
            "a.b.c.d",
            "!!!.???.***",
            &format!("{good}.extra"),
            &format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("not json")),
        ] {
            assert_eq!(key().verify(bad, NOW), Err(JwtError::Malformed), "{bad:?}");
        }
        let array_payload = raw_token(&key(), HS256_HEADER_JSON, "[1,2]");
        assert_eq!(key().verify(&array_payload, NOW), Err(JwtError::Malformed));
        assert_eq!(
            JwtError::Malformed.to_string(),
            "The token provided is not a valid JWT"
        );
    }

    #[test]
    fn role_and_integer_exp_are_required() {
        for payload in [
            r#"{"sub":"x","exp":4102444800}"#,
            r#"{"sub":"x","role":"authenticated"}"#,
            r#"{"role":"authenticated","exp":"4102444800"}"#,
            r#"{"role":"authenticated","exp":4102444800.5}"#,
            r#"{"role":7,"exp":4102444800}"#,
        ] {
            let token = raw_token(&key(), HS256_HEADER_JSON, payload);
            assert_eq!(
                key().verify(&token, NOW),
                Err(JwtError::MissingClaims),
                "{payload}"
            );
        }
        assert_eq!(
            JwtError::MissingClaims.to_string(),
            "Fields `role` and `exp` are required in JWT"
        );
    }

    #[test]
    fn anon_key_is_a_pure_function_of_the_secret() {
        let a = key().sign(&Claims::anon_key());
        assert_eq!(a, key().sign(&Claims::anon_key()));
        let claims = key().verify(&a, NOW).expect("anon key verifies");
        assert_eq!(claims.role, ROLE_ANON);
        assert_eq!(claims.sub, None);
        assert_ne!(a, JwtKey::new("x".repeat(40)).sign(&Claims::anon_key()));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let printed = format!("{:?}", key());
        assert!(!printed.contains("super-secret"), "{printed}");
    }
}
