//! Time helpers shared by the engine's tasks.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Seconds since the Unix epoch, the unit of token and credential expiry.
/// A clock set before 1970 reads as 0: everything then looks expired.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps until `at`, or forever when there is no deadline: a `select!` arm
/// for an optional timer.
pub(crate) async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
