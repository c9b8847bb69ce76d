//! SIGTERM mid-call hangs up politely: the interrupted side ends as
//! `you-left` and exits 0, and the other side hears that the stranger
//! left.

mod common;

use common::{Cli, STEP_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hangs_up_politely() {
    let server = common::start_server().await;
    let mut leaver = Cli::against("leaver", &server, "call", &["--silence"]);
    leaver.expect_line("state: searching", STEP_TIMEOUT).await;
    let mut stayer = Cli::against("stayer", &server, "call", &["--tone", "660"]);
    leaver.expect_line("state: in-call", STEP_TIMEOUT).await;
    stayer.expect_line("state: in-call", STEP_TIMEOUT).await;

    leaver.terminate();
    leaver
        .expect_line("state: ended (you-left)", STEP_TIMEOUT)
        .await;
    stayer
        .expect_line("state: ended (stranger-left)", STEP_TIMEOUT)
        .await;
    let status = leaver.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", leaver.transcript());
    let status = stayer.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", stayer.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_searching_leaves_the_queue() {
    let server = common::start_server().await;
    let mut alone = Cli::against("alone", &server, "call", &[]);
    alone.expect_line("state: searching", STEP_TIMEOUT).await;
    alone.terminate();
    alone.expect_line("state: idle", STEP_TIMEOUT).await;
    let status = alone.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", alone.transcript());
}
