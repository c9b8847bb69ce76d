//! A stranger who vanishes without a goodbye (SIGKILL: no bye, no leaving
//! the room or the queue) is reported as `ended (stranger-left)` within
//! five seconds. A product promise, so the bound is asserted.

mod common;

use std::time::Duration;

use common::{Cli, STEP_TIMEOUT};
use tokio::time::Instant;

/// The promise: the one left behind knows within this.
const NOTICE_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stranger_is_noticed_within_five_seconds() {
    let server = common::start_server().await;
    let mut doomed = Cli::against("doomed", &server, "call", &["--tone", "440"]);
    doomed.expect_line("state: searching", STEP_TIMEOUT).await;
    let mut survivor = Cli::against("survivor", &server, "call", &["--tone", "660"]);
    doomed.expect_line("audio: first-frame", STEP_TIMEOUT).await;
    survivor
        .expect_line("audio: first-frame", STEP_TIMEOUT)
        .await;

    let killed_at = Instant::now();
    doomed.kill_hard();
    let noticed = survivor
        .wait_line("state: ended (stranger-left)", NOTICE_BOUND)
        .await;
    let Some(noticed_at) = noticed else {
        panic!(
            "no `state: ended (stranger-left)` within {NOTICE_BOUND:?} of the kill\n{}",
            survivor.transcript()
        );
    };
    let took = noticed_at - killed_at;
    eprintln!("stranger-left noticed {took:?} after SIGKILL");
    assert!(took <= NOTICE_BOUND, "{took:?}");

    let status = survivor.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", survivor.transcript());
}
