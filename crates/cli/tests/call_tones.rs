//! Two `voicemeet-cli call` processes, matched by the real backend, each
//! send a tone through the embedded TURN relay, and each hears the other's
//! tone: checked by frequency in the WAV files they write, not by bytes
//! arriving. The one whose duration runs out hangs up; the other learns
//! the stranger left. Both exit 0.

mod common;

use common::{Cli, STEP_TIMEOUT, assert_tone, read_wav, scratch_dir, seconds};

const ALICE_HZ: f64 = 440.0;
const BOB_HZ: f64 = 660.0;
/// Alice hangs up this long after connecting.
const TALK_SECS: f64 = 3.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cli_callers_hear_each_others_tone() {
    let server = common::start_server().await;
    let dir = scratch_dir("call-tones");
    let alice_wav = dir.join("alice.wav");
    let bob_wav = dir.join("bob.wav");
    let alice_out = alice_wav.to_string_lossy().into_owned();
    let bob_out = bob_wav.to_string_lossy().into_owned();

    // Alice gets the backend from flags, Bob from the environment.
    let mut alice = Cli::against(
        "alice",
        &server,
        "call",
        &["--tone", "440", "--output", &alice_out, "--duration", "3"],
    );
    alice.expect_line("state: searching", STEP_TIMEOUT).await;
    let mut bob = Cli::spawn_with_env(
        "bob",
        &[
            "call",
            "--tone",
            "660",
            "--output",
            &bob_out,
            "--duration",
            "20",
        ],
        &[
            ("VOICEMEET_URL", &server.url),
            ("VOICEMEET_ANON_KEY", &server.anon_key),
        ],
    );

    alice.expect_line("state: in-call", STEP_TIMEOUT).await;
    bob.expect_line("state: in-call", STEP_TIMEOUT).await;
    alice
        .expect_line("state: ended (you-left)", STEP_TIMEOUT)
        .await;
    bob.expect_line("state: ended (stranger-left)", STEP_TIMEOUT)
        .await;
    let alice_status = alice.exit(STEP_TIMEOUT).await;
    let bob_status = bob.exit(STEP_TIMEOUT).await;
    assert!(
        alice_status.success(),
        "{alice_status}\n{}",
        alice.transcript()
    );
    assert!(bob_status.success(), "{bob_status}\n{}", bob.transcript());

    let expected_order = [
        "state: preparing",
        "state: searching",
        "state: matched",
        "state: connecting",
        "state: in-call",
    ];
    let states: Vec<&str> = alice
        .lines()
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("state: "))
        .collect();
    assert_eq!(states[..expected_order.len()], expected_order, "{states:?}");

    // Skip the codec's first frames and the hang-up's last ones.
    let at_alice = read_wav(&alice_wav);
    let at_bob = read_wav(&bob_wav);
    let heard = |samples: &[i16]| seconds(samples, 0.5, TALK_SECS - 0.5).to_vec();
    assert_tone(&heard(&at_alice), BOB_HZ, "alice hears bob");
    assert_tone(&heard(&at_bob), ALICE_HZ, "bob hears alice");
}
