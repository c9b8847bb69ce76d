//! Random secrets and opaque tokens, from the thread-local CSPRNG (ChaCha,
//! seeded and periodically reseeded from the OS).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// Entropy of generated JWT and TURN secrets: 256 bits, because RFC 7518 §3.2
/// requires HS256 keys at least as long as the hash output.
pub const SECRET_BYTES: usize = 32;

/// Entropy of refresh tokens: 192 bits, unguessable and still short.
pub const REFRESH_TOKEN_BYTES: usize = 24;

/// `bytes` random bytes as unpadded base64url: safe in JSON, URLs and on a
/// command line (coturn's `--static-auth-secret`).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh secret for the JWT key or the TURN REST shared secret.
pub fn generate_secret() -> String {
    random_token(SECRET_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes of unpadded base64");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
