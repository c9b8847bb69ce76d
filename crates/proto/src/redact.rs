//! Values that identify people (IP addresses, SDP, ICE candidates, tokens)
//! are wrapped in [`Redacted`] so that `Debug` and `Display` never print them.

use std::fmt;

/// A value that must never appear in logs. Formatting prints `{REDACTED}`;
/// the value itself is reachable only through [`Redacted::expose`], which makes
/// every deliberate use greppable.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a sensitive value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the sensitive value, for sending it where it belongs.
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the sensitive value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{REDACTED}")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{REDACTED}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug only
    struct Offer {
        call: u32,
        sdp: Redacted<String>,
    }

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Redacted::new("candidate:1 1 udp 1 192.168.1.20 5000 typ host".to_string());
        assert_eq!(format!("{secret}"), "{REDACTED}");
        assert_eq!(format!("{secret:?}"), "{REDACTED}");
        assert_eq!(format!("{secret:#?}"), "{REDACTED}");
        let offer = Offer {
            call: 7,
            sdp: Redacted::new("v=0 c=IN IP4 10.0.0.5".into()),
        };
        let printed = format!("{offer:?}");
        assert!(printed.contains("call: 7"), "{printed}");
        assert!(!printed.contains("10.0.0.5"), "{printed}");
    }

    #[test]
    fn the_value_is_still_there_for_its_real_use() {
        let token = Redacted::new(String::from("eyJhbGciOi"));
        assert_eq!(token.expose(), "eyJhbGciOi");
        assert_eq!(token.into_inner(), "eyJhbGciOi");
    }
}
