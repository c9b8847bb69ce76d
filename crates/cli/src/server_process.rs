//! The `voicemeet-server` child process, shared by `bench-server` and
//! `bench-setup`: find the binary, start it on loopback ports, read its
//! announce lines, sample its memory, and kill it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// A fresh server binds, generates its secrets and prints its URL well
/// within this.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Killing and reaping a process is immediate; longer means something odd.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the server's stderr kept to explain a failure.
const STDERR_TAIL_LINES: usize = 40;

/// Arguments that keep every socket on loopback and let the benchmark sign
/// up thousands of users.
const SERVER_ARGS: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--turn-listen",
    "127.0.0.1:0",
    "--signup-rate-limit",
    "off",
];

/// The server binary to run: `explicit` if given, else `voicemeet-server`
/// in the directory of the running executable, where cargo puts both
/// binaries (so a release CLI runs a release server). Fails with a hint if
/// there is no file there.
pub fn resolve_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match explicit {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .context("locating the current executable")?
            .with_file_name("voicemeet-server"),
    };
    if !bin.is_file() {
        bail!(
            "no server binary at {} (build it: cargo build --release -p voicemeet-server, \
             or pass --server-bin)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The two startup lines a server prints on stdout.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Announce {
    url: Option<String>,
    anon_key: Option<String>,
}

impl Announce {
    /// Takes in one stdout line; lines other than the two it needs are
    /// ignored.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end();
        if let Some(url) = line.strip_prefix("VOICEMEET_URL=") {
            self.url = Some(url.to_owned());
        } else if let Some(key) = line.strip_prefix("VOICEMEET_ANON_KEY=") {
            self.anon_key = Some(key.to_owned());
        }
    }

    /// The URL and anon key, once both lines were seen and non-empty.
    pub fn complete(&self) -> Option<(&str, &str)> {
        match (self.url.as_deref(), self.anon_key.as_deref()) {
            (Some(url), Some(key)) if !url.is_empty() && !key.is_empty() => Some((url, key)),
            _ => None,
        }
    }
}

/// The `host:port` of an `http://127.0.0.1:<port>` URL; anything else is
/// refused so no benchmark traffic ever leaves the machine.
pub fn loopback_authority(url: &str) -> anyhow::Result<&str> {
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .with_context(|| format!("server URL {url:?} is not plain http"))?;
    let port = authority
        .strip_prefix("127.0.0.1:")
        .with_context(|| format!("server URL {url:?} is not on 127.0.0.1"))?;
    port.parse::<u16>()
        .with_context(|| format!("server URL {url:?} has no valid port"))?;
    Ok(authority)
}

/// Resident memory in KiB from the text of `/proc/<pid>/status`
/// (`VmRSS:   12345 kB`).
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

/// A running server. It is killed when stopped, and on drop (an error or
/// panic elsewhere) through `kill_on_drop`.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// `127.0.0.1:<port>`.
    pub authority: String,
    /// The public API key.
    pub anon_key: String,
    stderr_tail: JoinHandle<VecDeque<String>>,
}

impl ServerProcess {
    /// Starts `bin` on ephemeral loopback ports and waits for its announce
    /// lines.
    pub async fn start(bin: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, &[]).await
    }

    /// [`start`](Self::start) with more arguments; later ones override
    /// the defaults (e.g. a fixed `--turn-listen`).
    pub async fn start_with(bin: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(SERVER_ARGS)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stderr = child.stderr.take().context("server stderr is piped")?;
        let stderr_tail = tokio::spawn(tail_task(stderr));
        let stdout = child.stdout.take().context("server stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();

        let mut announce = Announce::default();
        let read = async {
            while announce.complete().is_none() {
                match lines.next_line().await? {
                    Some(line) => announce.feed(&line),
                    None => return Ok::<bool, std::io::Error>(false),
                }
            }
            Ok(true)
        };
        let started = tokio::time::timeout(STARTUP_TIMEOUT, read).await;
        let (url, anon_key) = match (started, announce.complete()) {
            (Ok(Ok(true)), Some((url, key))) => (url.to_owned(), key.to_owned()),
            (outcome, _) => {
                let why = match outcome {
                    Err(_) => format!("no announce lines within {STARTUP_TIMEOUT:?}"),
                    Ok(Err(err)) => format!("reading its stdout: {err}"),
                    Ok(Ok(_)) => "it exited before announcing its URL".to_owned(),
                };
                let tail = stop(child, stderr_tail).await;
                bail!("server did not start: {why}{}", format_tail(&tail));
            }
        };
        let authority = loopback_authority(&url)?.to_owned();
        // Nothing else is expected on stdout; drain it so the pipe never
        // fills and blocks the server.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            url,
            authority,
            anon_key,
            stderr_tail,
        })
    }

    /// The server's resident memory, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vm_rss_kib(&status).with_context(|| format!("no VmRSS line in {path}"))
    }

    /// Fails if the server has exited (it must outlive every part).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait().context("polling the server")? {
            None => Ok(()),
            Some(status) => bail!("the server exited during the benchmark ({status})"),
        }
    }

    /// Kills the server and returns the last lines of its stderr.
    pub async fn stop(self) -> VecDeque<String> {
        stop(self.child, self.stderr_tail).await
    }
}

async fn stop(mut child: Child, stderr_tail: JoinHandle<VecDeque<String>>) -> VecDeque<String> {
    // Already gone is fine: kill then reap, bounded.
    let _ = tokio::time::timeout(STOP_TIMEOUT, child.kill()).await;
    match tokio::time::timeout(STOP_TIMEOUT, stderr_tail).await {
        Ok(Ok(tail)) => tail,
        _ => VecDeque::new(),
    }
}

/// The server's stderr lines, as "\n  server: ..." lines for an error.
pub fn format_tail(tail: &VecDeque<String>) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nlast server log lines:");
    for line in tail {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// Reads a stream to its end, keeping the last [`STDERR_TAIL_LINES`] lines.
async fn tail_task(stream: impl AsyncRead + Unpin) -> VecDeque<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    while let Ok(Some(line)) = lines.next_line().await {
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_needs_both_lines() {
        let mut announce = Announce::default();
        announce.feed("VoiceMeet local backend at http://127.0.0.1:40123 (TURN: ...)");
        announce.feed("JWT secret generated for this run: the anon key changes on restart");
        assert_eq!(announce.complete(), None);
        announce.feed("VOICEMEET_URL=http://127.0.0.1:40123\n");
        assert_eq!(announce.complete(), None);
        announce.feed("VOICEMEET_ANON_KEY=eyJhbGciOiJIUzI1NiJ9.e30.sig");
        assert_eq!(
            announce.complete(),
            Some(("http://127.0.0.1:40123", "eyJhbGciOiJIUzI1NiJ9.e30.sig"))
        );
    }

    #[test]
    fn announce_ignores_empty_values() {
        let mut announce = Announce::default();
        announce.feed("VOICEMEET_URL=");
        announce.feed("VOICEMEET_ANON_KEY=k");
        assert_eq!(announce.complete(), None);
    }

    #[test]
    fn only_loopback_urls_are_used() {
        assert_eq!(
            loopback_authority("http://127.0.0.1:54321").ok(),
            Some("127.0.0.1:54321")
        );
        assert_eq!(
            loopback_authority("http://127.0.0.1:54321/").ok(),
            Some("127.0.0.1:54321")
        );
        for bad in [
            "https://127.0.0.1:1",
            "http://10.0.0.5:54321",
            "http://127.0.0.1.evil:80",
            "http://127.0.0.1:",
            "http://127.0.0.1:99999",
        ] {
            assert!(loopback_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vm_rss_from_proc_status() {
        let status = "Name:\tvoicemeet-serv\nVmPeak:\t  900000 kB\nVmRSS:\t   53124 kB\nRssAnon:\t 40000 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(53_124));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }
}
