//! `voicemeet-cli bench-setup`: how long a stranger waits for the other's
//! voice. It starts the real `voicemeet-server` binary on loopback, then
//! for each round starts two fresh engine clients in this process (fresh
//! anonymous sign-ups, Realtime connections and peers), has both search at
//! the same moment, and times, at each side, the `search` call to the
//! first decoded audio frame from the other ([`ClientEvent::FirstAudio`]).
//! Both hang up and settle before the next round. Results go to stdout as
//! a table plus `BENCH name=value` lines; progress goes to stderr.
//!
//! Start at [`run`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use voicemeet_core::audio::{AudioSink, AudioSource, PacedIo, ToneSource};
use voicemeet_core::proto::call::CallState;
use voicemeet_core::proto::matchmaking::Role;
use voicemeet_core::{AudioIo, Client, ClientEvent};

use crate::args::{self, Args, Backend, OptionsError};
use crate::audio::Discard;
use crate::lines::{role_name, state_name};
use crate::report::{self, Metric};
use crate::server_process::{self, ServerProcess, format_tail};
use crate::session::{self, HANG_UP_TIMEOUT, is_settled};
use crate::signals::interrupted;
use crate::stats::{Summary, ms};

/// `bench-setup --help`.
pub const USAGE: &str = "\
voicemeet-cli bench-setup: time call setup, from tapping search to hearing the stranger.

Starts a voicemeet-server on 127.0.0.1, then for each round starts two fresh
clients in this process that search at the same moment, and times at EACH side
the search call to the first decoded audio frame from the other. Both hang up
and settle before the next round.

USAGE:
    voicemeet-cli bench-setup [OPTIONS]

OPTIONS:
    --server-bin PATH   voicemeet-server binary [default: next to this executable]
    --calls N           rounds (two samples each) [default: 50]
    -h, --help          print this help

Build in release for real numbers:
    cargo build --release -p voicemeet-server -p voicemeet-cli
    target/release/voicemeet-cli bench-setup
";

/// Default rounds: 100 samples, enough for a stable p95.
const DEFAULT_CALLS: u64 = 50;
/// A round's search-to-audio may take this long before it counts as
/// failed: the engine's own connect timeout (15 s) plus a margin.
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);
/// Goals on loopback.
const P50_TARGET_MS: f64 = 300.0;
const P95_TARGET_MS: f64 = 600.0;
/// The tone each client sends, so real audio flows both ways.
const TONE_HZ: f64 = 440.0;

/// One `bench-setup` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The server binary; `None` means next to the current executable.
    pub server_bin: Option<PathBuf>,
    /// Rounds to run.
    pub calls: u64,
}

/// What the command line asked for.
pub type Parsed = crate::args::Parsed<Options>;

impl Options {
    /// Parses the arguments after `bench-setup`.
    ///
    /// # Errors
    /// A command line that cannot be used.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, OptionsError> {
        let mut args = Args::new(args);
        let mut options = Self {
            server_bin: None,
            calls: DEFAULT_CALLS,
        };
        while let Some(flag) = args.next_flag() {
            let name = flag.name.clone();
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--server-bin" => options.server_bin = Some(PathBuf::from(args.value(flag)?)),
                "--calls" => {
                    let value = args.value(flag)?;
                    options.calls = args::count(&name, &value, 1, "a positive count")?;
                }
                _ => return Err(OptionsError::UnknownFlag(name)),
            }
        }
        Ok(Parsed::Run(options))
    }
}

/// A progress line on stderr, so stdout holds only results.
fn progress(args: std::fmt::Arguments<'_>) {
    eprintln!("bench-setup: {args}");
}

/// Runs the benchmark and prints the results.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let server_bin = server_process::resolve_bin(options.server_bin.as_deref())?;
    if cfg!(debug_assertions) {
        progress(format_args!(
            "this is a debug build of voicemeet-cli: use --release builds for real numbers"
        ));
    }
    session::runtime()?.block_on(async {
        // On Ctrl-C or SIGTERM the benchmark is dropped, and with it the
        // clients and the server child (killed on drop).
        tokio::select! {
            result = bench(&server_bin, options) => result,
            signal = interrupted() => {
                signal.context("listening for signals")?;
                bail!("interrupted; the server was stopped")
            }
        }
    })
}

/// Tone out, nothing kept: the benchmark only needs the first frame, which
/// the engine reports whatever the sink.
struct BenchAudio;

impl PacedIo for BenchAudio {
    fn source(&self) -> Box<dyn AudioSource> {
        Box::new(ToneSource::new(TONE_HZ))
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        Box::new(Discard)
    }
}

/// One side's timings, each from its own `search` call.
#[derive(Debug, Clone, Copy)]
struct Side {
    role: Role,
    matched: Duration,
    in_call: Duration,
    first_audio: Duration,
}

async fn bench(server_bin: &Path, options: &Options) -> anyhow::Result<()> {
    let mut server = ServerProcess::start(server_bin).await?;
    progress(format_args!("server started at {}", server.url));
    let result = rounds(&mut server, options).await;
    let tail = server.stop().await;
    let (sides, failed) = result.map_err(|err| anyhow::anyhow!("{err:#}{}", format_tail(&tail)))?;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "\ncall setup benchmark ({build} build of voicemeet-cli; server {})\n",
        server_bin.display()
    );
    print!("{}", report::render(&metrics(&sides, failed)?));
    if failed > 0 {
        bail!("{failed} of {} rounds failed", options.calls);
    }
    Ok(())
}

/// Runs every round; returns the samples and how many rounds failed.
async fn rounds(server: &mut ServerProcess, options: &Options) -> anyhow::Result<(Vec<Side>, u64)> {
    let backend = Backend {
        url: server.url.clone(),
        anon_key: server.anon_key.clone(),
    };
    let audio: Arc<dyn AudioIo> = Arc::new(BenchAudio);
    let mut sides = Vec::new();
    let mut failed = 0;
    for index in 1..=options.calls {
        match round(&backend, &audio).await {
            Ok(pair) => {
                progress(format_args!(
                    "round {index}/{}: first audio after {:.1} ms ({}), {:.1} ms ({})",
                    options.calls,
                    ms(pair[0].first_audio),
                    role_name(pair[0].role),
                    ms(pair[1].first_audio),
                    role_name(pair[1].role),
                ));
                sides.extend(pair);
            }
            Err(err) => {
                failed += 1;
                progress(format_args!(
                    "round {index}/{} failed: {err:#}",
                    options.calls
                ));
            }
        }
        server.check_alive()?;
    }
    if sides.is_empty() {
        bail!("every round failed");
    }
    Ok((sides, failed))
}

/// One engine client and what it last reported.
struct Peer {
    name: &'static str,
    client: Client,
    events: mpsc::Receiver<ClientEvent>,
    state: CallState,
}

impl Peer {
    fn start(
        name: &'static str,
        backend: &Backend,
        audio: &Arc<dyn AudioIo>,
    ) -> anyhow::Result<Self> {
        let (client, events) = session::start(backend, audio.clone())?;
        Ok(Self {
            name,
            client,
            events,
            state: CallState::Idle,
        })
    }

    /// The next event, noting states; an error if the engine stopped.
    async fn next(&mut self) -> anyhow::Result<ClientEvent> {
        let event = self
            .events
            .recv()
            .await
            .with_context(|| format!("client {}: the engine stopped", self.name))?;
        if let ClientEvent::StateChanged(state) = event {
            self.state = state;
        }
        Ok(event)
    }

    /// Times this side from `searched` until its first audio; any end or
    /// failure on the way fails the round.
    async fn measure(&mut self, searched: Instant) -> anyhow::Result<Side> {
        let mut role = None;
        let mut matched = None;
        let mut in_call = None;
        loop {
            let event = self.next().await?;
            let now = Instant::now();
            match event {
                ClientEvent::Matched { role: r } => {
                    role = Some(r);
                    matched = Some(now - searched);
                }
                ClientEvent::StateChanged(CallState::InCall) => {
                    in_call.get_or_insert(now - searched);
                }
                ClientEvent::StateChanged(state) if is_settled(state) => {
                    bail!(
                        "client {} reached `{}` before any audio",
                        self.name,
                        state_name(state)
                    );
                }
                ClientEvent::FirstAudio => {
                    let context = || format!("client {}: audio before the call was up", self.name);
                    return Ok(Side {
                        role: role.with_context(context)?,
                        matched: matched.with_context(context)?,
                        in_call: in_call.with_context(context)?,
                        first_audio: now - searched,
                    });
                }
                _ => {}
            }
        }
    }

    /// Waits until the call has settled (ended, failed or idle).
    async fn settle(&mut self) -> anyhow::Result<()> {
        while !is_settled(self.state) {
            self.next().await?;
        }
        Ok(())
    }
}

async fn round(backend: &Backend, audio: &Arc<dyn AudioIo>) -> anyhow::Result<[Side; 2]> {
    let mut a = Peer::start("a", backend, audio)?;
    let mut b = Peer::start("b", backend, audio)?;
    let measured = async {
        // Both searches are queued to their engines within microseconds;
        // each side is timed from this instant.
        let searched = Instant::now();
        tokio::try_join!(a.client.search(), b.client.search()).context("search")?;
        timeout(ROUND_TIMEOUT, async {
            tokio::try_join!(a.measure(searched), b.measure(searched))
        })
        .await
        .with_context(|| format!("no audio at both sides within {ROUND_TIMEOUT:?}"))?
    }
    .await;
    let ended = match &measured {
        Ok(_) => hang_up(&mut a, &mut b).await,
        // Dropping the clients below hangs up whatever is left.
        Err(_) => Ok(()),
    };
    let (a_stopped, b_stopped) = tokio::join!(
        session::stop(a.client, a.events, |_| {}),
        session::stop(b.client, b.events, |_| {})
    );
    let (a_side, b_side) = measured?;
    ended?;
    if !(a_stopped && b_stopped) {
        bail!(
            "a client did not stop within {:?}",
            session::ENGINE_STOP_TIMEOUT
        );
    }
    Ok([a_side, b_side])
}

/// `a` hangs up; both must reach a settled state.
async fn hang_up(a: &mut Peer, b: &mut Peer) -> anyhow::Result<()> {
    a.client.hang_up().await.context("hang up")?;
    timeout(HANG_UP_TIMEOUT, async {
        tokio::try_join!(a.settle(), b.settle())
    })
    .await
    .with_context(|| format!("the hang-up did not settle within {HANG_UP_TIMEOUT:?}"))??;
    Ok(())
}

fn summary(samples: impl Iterator<Item = Duration>) -> anyhow::Result<Summary> {
    Summary::of(samples.collect()).context("no samples")
}

/// The results: search-to-first-audio over all samples and per role, the
/// steps before it, and the rounds.
fn metrics(sides: &[Side], failed: u64) -> anyhow::Result<Vec<Metric>> {
    let all = summary(sides.iter().map(|s| s.first_audio))?;
    let mut out = vec![
        Metric::new(
            "setup_samples",
            "samples (2 per round)",
            sides.len() as f64,
            0,
            "",
        ),
        Metric::new(
            "setup_p50_ms",
            "search -> first audio p50",
            ms(all.p50),
            1,
            "ms",
        )
        .at_most(P50_TARGET_MS),
        Metric::new(
            "setup_p95_ms",
            "search -> first audio p95",
            ms(all.p95),
            1,
            "ms",
        )
        .at_most(P95_TARGET_MS),
        Metric::new(
            "setup_max_ms",
            "search -> first audio max",
            ms(all.max),
            1,
            "ms",
        ),
    ];
    for role in [Role::Offerer, Role::Answerer] {
        let name = role_name(role);
        let mine: Vec<Duration> = sides
            .iter()
            .filter(|s| s.role == role)
            .map(|s| s.first_audio)
            .collect();
        let Some(side) = Summary::of(mine) else {
            continue;
        };
        for (stat, value) in [("p50", side.p50), ("p95", side.p95), ("max", side.max)] {
            out.push(Metric::new(
                format!("setup_{name}_{stat}_ms"),
                format!("{name}: search -> first audio {stat}"),
                ms(value),
                1,
                "ms",
            ));
        }
    }
    let matched = summary(sides.iter().map(|s| s.matched))?;
    let in_call = summary(sides.iter().map(|s| s.in_call))?;
    out.push(Metric::new(
        "setup_matched_p50_ms",
        "search -> matched p50",
        ms(matched.p50),
        1,
        "ms",
    ));
    out.push(Metric::new(
        "setup_in_call_p50_ms",
        "search -> in-call p50",
        ms(in_call.p50),
        1,
        "ms",
    ));
    out.push(
        Metric::new("setup_rounds_failed", "rounds failed", failed as f64, 0, "").at_most(0.0),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let parse = |list: &[&str]| Options::parse(list.iter().map(|s| (*s).to_owned()));
        assert_eq!(
            parse(&[]),
            Ok(Parsed::Run(Options {
                server_bin: None,
                calls: DEFAULT_CALLS
            }))
        );
        assert_eq!(
            parse(&["--calls=3", "--server-bin", "/s"]),
            Ok(Parsed::Run(Options {
                server_bin: Some("/s".into()),
                calls: 3
            }))
        );
        assert!(parse(&["--calls", "0"]).is_err());
        assert_eq!(parse(&["-h"]), Ok(Parsed::Help));
    }

    #[test]
    fn metrics_cover_all_samples_and_each_role() {
        let side = |role, first_audio_ms| Side {
            role,
            matched: Duration::from_millis(20),
            in_call: Duration::from_millis(100),
            first_audio: Duration::from_millis(first_audio_ms),
        };
        let sides = [
            side(Role::Offerer, 200),
            side(Role::Answerer, 250),
            side(Role::Offerer, 210),
            side(Role::Answerer, 900),
        ];
        let metrics = metrics(&sides, 0).expect("metrics");
        let get = |key: &str| {
            metrics
                .iter()
                .find(|m| m.key == key)
                .unwrap_or_else(|| panic!("no {key}"))
        };
        assert_eq!(get("setup_samples").value, 4.0);
        assert_eq!(get("setup_p50_ms").value, 210.0);
        assert_eq!(get("setup_p95_ms").value, 900.0);
        assert!(!get("setup_p95_ms").target.as_ref().expect("target").met);
        assert_eq!(get("setup_offerer_max_ms").value, 210.0);
        assert_eq!(get("setup_answerer_p50_ms").value, 250.0);
        assert_eq!(get("setup_in_call_p50_ms").value, 100.0);
        assert!(
            get("setup_rounds_failed")
                .target
                .as_ref()
                .expect("target")
                .met
        );
    }
}
