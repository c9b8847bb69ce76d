//! The echo bot as a sound test: a caller sending a tone hears its own
//! tone back, about a second late, and the bot stops after `--calls 1`.

mod common;

use common::{Cli, STEP_TIMEOUT, assert_tone, mean_square, read_wav, scratch_dir, seconds};

const TONE_HZ: f64 = 440.0;
/// The caller hangs up this long after connecting.
const TALK_SECS: f64 = 4.0;
/// Mean square below which audio counts as silence (RMS 100, -50 dBFS).
const QUIET: f64 = 100.0 * 100.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hears_its_own_tone_back() {
    let server = common::start_server().await;
    let dir = scratch_dir("echo-bot");
    let wav = dir.join("caller.wav");
    let out = wav.to_string_lossy().into_owned();

    let mut bot = Cli::against("bot", &server, "echo-bot", &["--calls", "1"]);
    bot.expect_line("state: searching", STEP_TIMEOUT).await;
    let mut caller = Cli::against(
        "caller",
        &server,
        "call",
        &["--tone", "440", "--output", &out, "--duration", "4"],
    );
    caller.expect_line("state: in-call", STEP_TIMEOUT).await;
    caller
        .expect_line("state: ended (you-left)", STEP_TIMEOUT)
        .await;
    bot.expect_line("state: ended (stranger-left)", STEP_TIMEOUT)
        .await;
    let status = caller.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", caller.transcript());
    let status = bot.exit(STEP_TIMEOUT).await;
    assert!(status.success(), "{status}\n{}", bot.transcript());

    let heard = read_wav(&wav);
    // The bot holds what it hears for about a second: the start is quiet...
    let start = seconds(&heard, 0.0, 0.6);
    assert!(
        mean_square(start) < QUIET,
        "the echo came too early: mean square {:.0} in the first 0.6 s",
        mean_square(start)
    );
    // ...then the caller's own tone comes back.
    assert_tone(
        seconds(&heard, 1.5, TALK_SECS - 0.3),
        TONE_HZ,
        "the caller hears itself",
    );
}
