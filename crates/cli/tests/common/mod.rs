//! Shared helpers for the end-to-end tests: the real local backend started
//! in-process on loopback, `voicemeet-cli` child processes whose stdout
//! lines can be awaited, and audio checks on the WAV files they write.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use voicemeet_core::audio::{
    AudioSource as _, FRAME_SAMPLES, FileSource, SAMPLE_RATE, dominant_frequency,
    tone_energy_fraction,
};
use voicemeet_server::{Config, RunningServer, Server};

/// The binary under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_voicemeet-cli");

/// Bound for a step that takes milliseconds on loopback (sign-in, match,
/// connect); only turns a hang into a failure.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Stdout lines queued for the test; a run prints a few dozen.
const LINE_CAPACITY: usize = 256;
/// Stderr lines kept to explain a failure.
const STDERR_LINES: usize = 60;

/// The local backend on ephemeral loopback ports, without a sign-up limit.
pub async fn start_server() -> RunningServer {
    let mut config = Config::ephemeral();
    config.signup_rate_limit = None;
    Server::start(config).await.expect("the server starts")
}

/// A fresh directory for one test's files.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A running `voicemeet-cli`, killed on drop.
pub struct Cli {
    pub name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<JoinHandle<()>>,
}

impl Cli {
    /// Starts `voicemeet-cli ARGS` with no `VOICEMEET_*` variables
    /// inherited.
    pub fn spawn(name: &'static str, args: &[&str]) -> Self {
        Self::spawn_with_env(name, args, &[])
    }

    /// Same, with the given environment variables set.
    pub fn spawn_with_env(name: &'static str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(CLI);
        command
            .args(args)
            .env_remove("VOICEMEET_URL")
            .env_remove("VOICEMEET_ANON_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("voicemeet-cli starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel(LINE_CAPACITY);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(keep_tail(stderr, tail.clone()));
        Self {
            name,
            child,
            lines,
            seen: Vec::new(),
            stderr: tail,
            stderr_task: Some(stderr_task),
        }
    }

    /// Starts `voicemeet-cli COMMAND --url .. --anon-key .. ARGS` against
    /// `server`.
    pub fn against(
        name: &'static str,
        server: &RunningServer,
        command: &str,
        args: &[&str],
    ) -> Self {
        let mut all = vec![
            command,
            "--url",
            &server.url,
            "--anon-key",
            &server.anon_key,
        ];
        all.extend_from_slice(args);
        Self::spawn(name, &all)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// What it printed so far, and its stderr tail, for failure messages.
    pub fn transcript(&self) -> String {
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.seen.join("\n"),
            self.name,
            stderr.iter().cloned().collect::<Vec<_>>().join("\n")
        )
    }

    /// Waits up to `limit` for exactly `line` on stdout; returns when it
    /// came. Panics with the transcript otherwise.
    pub async fn expect_line(&mut self, line: &str, limit: Duration) -> Instant {
        match self.wait_line(line, limit).await {
            Some(at) => at,
            None => panic!(
                "{} did not print {line:?} within {limit:?}\n{}",
                self.name,
                self.transcript()
            ),
        }
    }

    /// Waits up to `limit` for `line`; `None` if it did not come (or the
    /// process closed stdout first).
    pub async fn wait_line(&mut self, line: &str, limit: Duration) -> Option<Instant> {
        if self.seen.iter().any(|l| l == line) {
            return Some(Instant::now());
        }
        let found = timeout(limit, async {
            while let Some(next) = self.lines.recv().await {
                let hit = next == line;
                self.seen.push(next);
                if hit {
                    return Some(Instant::now());
                }
            }
            None
        })
        .await;
        found.ok().flatten()
    }

    /// Waits up to `limit` for the process to exit, reading the rest of
    /// its stdout.
    pub async fn exit(&mut self, limit: Duration) -> ExitStatus {
        let status = match timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("waiting for voicemeet-cli"),
            Err(_) => panic!(
                "{} did not exit within {limit:?}\n{}",
                self.name,
                self.transcript()
            ),
        };
        // Both pipes are closed now; collect what is left of them.
        while let Ok(Some(line)) = timeout(Duration::from_secs(1), self.lines.recv()).await {
            self.seen.push(line);
        }
        if let Some(task) = self.stderr_task.take() {
            let _ = timeout(Duration::from_secs(1), task).await;
        }
        status
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// SIGKILL: no goodbye of any kind.
    pub fn kill_hard(&mut self) {
        self.child.start_kill().expect("SIGKILL sent");
    }

    /// SIGTERM, which asks for a polite hang-up.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }
}

async fn keep_tail(stream: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// The samples of a WAV file the CLI wrote.
pub fn read_wav(path: &Path) -> Vec<i16> {
    let mut source = FileSource::open(path)
        .unwrap_or_else(|err| panic!("{} is a valid WAV: {err}", path.display()));
    let mut samples = Vec::new();
    let mut frame = [0i16; FRAME_SAMPLES];
    while source.read_frame(&mut frame) {
        samples.extend_from_slice(&frame);
    }
    samples
}

/// Samples `from..to` seconds into `samples` (clamped).
pub fn seconds(samples: &[i16], from: f64, to: f64) -> &[i16] {
    let at = |secs: f64| ((secs * f64::from(SAMPLE_RATE)) as usize).min(samples.len());
    &samples[at(from)..at(to).max(at(from))]
}

/// Judging windows: half a second, long enough to tell tones apart
/// cleanly, short enough that one glitch spoils only one window.
const WINDOW: usize = SAMPLE_RATE as usize / 2;

/// Asserts that `samples` (at least one window) are a tone of `hz`: in
/// every half-second window the strongest frequency is within 5 Hz of it,
/// and in the median window it holds over 80% of the energy. Judged per
/// window so one concealed packet (a phase jump) cannot fail a whole
/// call's worth of audio, while a wrong or missing tone always does.
pub fn assert_tone(samples: &[i16], hz: f64, what: &str) {
    assert!(
        samples.len() >= WINDOW,
        "{what}: only {} samples",
        samples.len()
    );
    let mut fractions = Vec::new();
    for window in samples.chunks_exact(WINDOW) {
        let found = dominant_frequency(window, SAMPLE_RATE);
        assert!(
            found.is_some_and(|f| (f - hz).abs() <= 5.0),
            "{what}: expected {hz} Hz, strongest is {found:?} in window {}",
            fractions.len()
        );
        fractions.push(tone_energy_fraction(window, SAMPLE_RATE, hz));
    }
    let mut sorted = fractions.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!(
        median > 0.8,
        "{what}: {hz} Hz holds too little of the energy: {fractions:.3?}"
    );
}

/// Mean square of `samples`, 0 for none.
pub fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
}
