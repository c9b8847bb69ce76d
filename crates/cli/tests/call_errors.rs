//! How `call` says no: a bad command line exits 64 naming the problem; a
//! call that fails prints `state: failed (<kind>)` and exits 1 with the
//! kind in its message.

mod common;

use std::time::Duration;

use common::{Cli, STEP_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_backend_is_a_usage_error() {
    let mut cli = Cli::spawn("no-backend", &["call", "--tone", "440"]);
    let status = cli.exit(STEP_TIMEOUT).await;
    assert_eq!(status.code(), Some(64), "{}", cli.transcript());
    assert!(cli.transcript().contains("--url"), "{}", cli.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_fails_with_its_kind() {
    // Nothing listens on port 1: the connection is refused at once.
    let mut cli = Cli::spawn(
        "unreachable",
        &["call", "--url", "http://127.0.0.1:1", "--anon-key", "k"],
    );
    cli.expect_line("state: failed (backend-unreachable)", STEP_TIMEOUT)
        .await;
    let status = cli.exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "{}", cli.transcript());
    assert!(
        cli.transcript()
            .contains("the call failed: backend-unreachable"),
        "{}",
        cli.transcript()
    );
}
