//! Speech through the whole stack under packet loss, scored with PESQ-WB:
//! `voicemeet-cli bench-audio --check` fails unless every goal is met
//! (clean within 0.2 of plain libopus and ≤ 60 kbps per direction; ≥ 3.3
//! at 10 % random loss; ≥ 2.9 at 20 % random and at 10 % bursty loss).

mod common;

use std::path::Path;
use std::process::Command;

use common::{CLI, scratch_dir};

#[test]
fn speech_under_loss_meets_the_pesq_goals() {
    let server_bin = Path::new(CLI).with_file_name("voicemeet-server");
    assert!(
        server_bin.is_file(),
        "no {} (build the workspace first; scripts/test does)",
        server_bin.display()
    );
    let dir = scratch_dir("audio-quality");
    let output = Command::new(CLI)
        .args(["bench-audio", "--check", "--server-bin"])
        .arg(&server_bin)
        .arg("--out-dir")
        .arg(&dir)
        .output()
        .expect("voicemeet-cli runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "bench-audio --check failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for key in [
        "pesq_clean=",
        "pesq_random10=",
        "pesq_random20=",
        "pesq_bursty10=",
        "kbps_clean=",
    ] {
        assert!(stdout.contains(key), "no {key} line in:\n{stdout}");
    }
}
