//! `voicemeet-cli bench-latency`: how long a sound takes from the talker's
//! capture callback to the listener's playback callback, and what a call
//! costs in CPU.
//!
//! Two engine clients in this process call each other through a real
//! `voicemeet-server` and its TURN relay on loopback (no network jitter).
//! Their audio I/O stands in for sound cards: a thread runs a 10 ms
//! "capture callback" and a 10 ms "playback callback", logging when each
//! ran, through the same processing chains real devices use (echo
//! cancellation, noise suppression, gain control). The talker captures a
//! short chirp every half second; the listener's playback is searched for
//! each chirp by cross-correlation, and the time from the callback that
//! handed the chirp over to the one that played it is the pipeline's added
//! one-way latency: framing, Opus (with its look-ahead), the echo and noise
//! processing, RED, SRTP, the relay, the jitter buffer and the playout.
//! The devices' own buffers come on top: the 10 ms a microphone records
//! before its callback runs (also printed, as "recorded → played") and
//! the speaker's output latency. CPU is the process's user + system time
//! while the call runs, per client. The longest time the machine itself
//! paused is printed too: on a shared virtual machine the hypervisor stops
//! it now and then, and the jitter buffer takes each pause for jitter.
//!
//! Start at [`run`].

use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voicemeet_core::audio::{
    AudioIo, CallAudio, PULL_SAMPLES, ProcessingSettings, SAMPLE_RATE, chains,
};
use voicemeet_core::proto::jitter::JitterStats;
use voicemeet_core::{ClientEvent, Error};

use crate::args::{self, Args, Backend, OptionsError};
use crate::report::{self, Metric};
use crate::server_process::{self, ServerProcess, format_tail};
use crate::session;
use crate::signals::interrupted;
use crate::stall::{self, StallWatch, Stalls};
use crate::stats::{Summary, ms};

/// `bench-latency --help`.
pub const USAGE: &str = "\
voicemeet-cli bench-latency: one-way audio latency of the pipeline, and CPU per call.

Starts a voicemeet-server on 127.0.0.1, calls between two clients in this process
whose audio I/O runs 10 ms capture and playback callbacks on a timer, sends a chirp
every 500 ms one way and finds each in the other side's playback by
cross-correlation: the time from its capture callback to its playback callback.
Also reports the process's CPU time per client while the call runs.

USAGE:
    voicemeet-cli bench-latency [OPTIONS]

OPTIONS:
    --server-bin PATH   voicemeet-server binary [default: next to this executable]
    --seconds N         how long the call runs [default: 12]
    --no-processing     echo cancellation, noise suppression, gain control off
    -h, --help          print this help

Build in release for real numbers:
    cargo build --release -p voicemeet-server -p voicemeet-cli
    target/release/voicemeet-cli bench-latency
";

const DEFAULT_SECONDS: u64 = 12;
/// Loopback call setup takes milliseconds; this only turns a hang into an
/// error.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// A chirp every half second, the first after a second (the jitter buffer
/// has settled by then).
const CHIRP_EVERY: usize = SAMPLE_RATE as usize / 2;
const FIRST_CHIRP: usize = SAMPLE_RATE as usize;
/// 20 ms, 300 Hz to 3 kHz, Hann window: a sharp correlation peak that
/// survives a speech codec.
const CHIRP_SAMPLES: usize = 960;
/// How much audio each capture callback hands over: the simulated
/// microphone records this long before its callback runs.
const CAPTURE_PERIOD: Duration = Duration::from_millis(10);
/// Latencies searched: up to half a second after capture.
const SEARCH: Duration = Duration::from_millis(500);
/// Goals: the pipeline's added one-way latency, and CPU per client
/// (both directions).
const LATENCY_TARGET_MS: f64 = 50.0;
const CPU_TARGET_PERCENT: f64 = 3.0;

/// One `bench-latency` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The server binary; `None` means next to the current executable.
    pub server_bin: Option<PathBuf>,
    /// How long the call runs.
    pub seconds: u64,
    /// Echo cancellation, noise suppression and gain control on.
    pub processing: bool,
}

/// What the command line asked for.
pub type Parsed = crate::args::Parsed<Options>;

impl Options {
    /// Parses the arguments after `bench-latency`.
    ///
    /// # Errors
    /// A command line that cannot be used.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, OptionsError> {
        let mut args = Args::new(args);
        let mut options = Self {
            server_bin: None,
            seconds: DEFAULT_SECONDS,
            processing: true,
        };
        while let Some(flag) = args.next_flag() {
            let name = flag.name.clone();
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--server-bin" => options.server_bin = Some(PathBuf::from(args.value(flag)?)),
                "--no-processing" => {
                    args.switch(flag)?;
                    options.processing = false;
                }
                "--seconds" => {
                    let value = args.value(flag)?;
                    options.seconds = args::count(&name, &value, 3, "at least 3 seconds")?;
                }
                _ => return Err(OptionsError::UnknownFlag(name)),
            }
        }
        Ok(Parsed::Run(options))
    }
}

/// Runs the benchmark and prints the results.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let server_bin = server_process::resolve_bin(options.server_bin.as_deref())?;
    if cfg!(debug_assertions) {
        eprintln!("bench-latency: a debug build; use --release builds for real numbers");
    }
    session::runtime()?.block_on(async {
        tokio::select! {
            result = bench(&server_bin, options) => result,
            signal = interrupted() => {
                signal.context("listening for signals")?;
                bail!("interrupted; the server was stopped")
            }
        }
    })
}

/// The chirp, at about -6 dBFS.
fn chirp() -> Vec<i16> {
    let (f0, f1) = (300.0, 3000.0);
    let duration = CHIRP_SAMPLES as f64 / f64::from(SAMPLE_RATE);
    (0..CHIRP_SAMPLES)
        .map(|n| {
            let t = n as f64 / f64::from(SAMPLE_RATE);
            let phase = TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * duration));
            let window = 0.5 - 0.5 * (TAU * n as f64 / (CHIRP_SAMPLES - 1) as f64).cos();
            (phase.sin() * window * 16_000.0) as i16
        })
        .collect()
}

/// When each 10 ms callback ran, and (for playback) what it played.
#[derive(Default)]
struct Log {
    times: Vec<Instant>,
    samples: Vec<i16>,
}

/// Timer-driven stand-ins for sound cards that log their callbacks.
#[derive(Clone)]
struct LoggingDevices {
    processing: ProcessingSettings,
    /// The talker captures chirps; the listener captures silence.
    talks: bool,
    capture: Arc<Mutex<Log>>,
    playback: Arc<Mutex<Log>>,
}

impl LoggingDevices {
    fn new(talks: bool, processing: ProcessingSettings) -> Self {
        Self {
            processing,
            talks,
            capture: Arc::default(),
            playback: Arc::default(),
        }
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AudioIo for LoggingDevices {
    fn start(&self, call: CallAudio) -> Result<(), Error> {
        let devices = self.clone();
        // Its own thread, like a sound card's, off the async runtime.
        std::thread::Builder::new()
            .name("bench-devices".to_owned())
            .spawn(move || devices_thread(&devices, call))
            .map_err(|err| Error::Audio {
                what: "bench device thread",
                detail: err.to_string(),
            })?;
        Ok(())
    }
}

/// The callbacks, every 10 ms, through the same processing chains real
/// devices use (echo cancellation, noise suppression and gain control on).
fn devices_thread(devices: &LoggingDevices, call: CallAudio) {
    let CallAudio {
        capture,
        playout,
        cancel,
    } = call;
    let (mut capture, mut render, _control) = chains(capture, playout, devices.processing);
    let chirp = chirp();
    let period = Duration::from_millis(10);
    let mut captured = vec![0i16; PULL_SAMPLES];
    let mut played = vec![0i16; PULL_SAMPLES];
    let mut position = 0usize;
    let mut next = std::time::Instant::now();
    while !cancel.is_cancelled() {
        let now = std::time::Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        next += period;
        let now = Instant::now();
        captured.fill(0);
        if devices.talks {
            for (n, sample) in captured.iter_mut().enumerate() {
                let at = position + n;
                if at >= FIRST_CHIRP {
                    let into = (at - FIRST_CHIRP) % CHIRP_EVERY;
                    if into < CHIRP_SAMPLES {
                        *sample = chirp[into];
                    }
                }
            }
        }
        position += PULL_SAMPLES;
        capture.on_frame(&captured);
        lock(&devices.capture).times.push(now);
        render.fill(&mut played);
        let mut log = lock(&devices.playback);
        log.times.push(now);
        log.samples.extend_from_slice(&played);
    }
}

/// When sample `index` of a log crossed its callback: the callback's time
/// plus the sample's place in the callback's 10 ms chunk, the same way for
/// capture and playback, so a device loop that played each captured chunk
/// in the same callback would measure zero. Whatever a sound card buffers
/// on either side of its callbacks is the device's, not the pipeline's: a
/// captured chunk was recorded during the [`CAPTURE_PERIOD`] before its
/// callback, a played one sounds after the output's own latency.
fn sample_time(times: &[Instant], index: usize) -> Option<Instant> {
    let offset = (index % PULL_SAMPLES) as f64 / f64::from(SAMPLE_RATE);
    let at = *times.get(index / PULL_SAMPLES)?;
    Some(at + Duration::from_secs_f64(offset))
}

/// For each chirp the talker captured, the time until the listener played
/// it (the best-correlating position within [`SEARCH`]).
fn latencies(talker: &Log, listener: &Log) -> Vec<Duration> {
    let chirp = chirp();
    let captured_samples = talker.times.len() * PULL_SAMPLES;
    let mut found = Vec::new();
    let mut start = FIRST_CHIRP;
    while start + CHIRP_SAMPLES <= captured_samples {
        let Some(captured_at) = sample_time(&talker.times, start) else {
            break;
        };
        // Playback chunks whose times fall in the search window.
        let first = listener.times.partition_point(|t| *t < captured_at);
        let last = listener
            .times
            .partition_point(|t| *t < captured_at + SEARCH);
        let (from, to) = (first * PULL_SAMPLES, last * PULL_SAMPLES);
        let mut best: Option<(f64, usize)> = None;
        for index in from..to.min(listener.samples.len().saturating_sub(CHIRP_SAMPLES)) {
            let window = &listener.samples[index..index + CHIRP_SAMPLES];
            let dot: f64 = window
                .iter()
                .zip(&chirp)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            if best.is_none_or(|(value, _)| dot > value) {
                best = Some((dot, index));
            }
        }
        if let Some((value, index)) = best
            && value > 0.0
            && let Some(played_at) = sample_time(&listener.times, index)
        {
            found.push(played_at.saturating_duration_since(captured_at));
        }
        start += CHIRP_EVERY;
    }
    found
}

/// The process's user + system CPU time so far.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    stall::cpu_time(&stat).context("no CPU times in /proc/self/stat")
}

async fn bench(server_bin: &Path, options: &Options) -> anyhow::Result<()> {
    let server = ServerProcess::start(server_bin).await?;
    let backend = Backend {
        url: server.url.clone(),
        anon_key: server.anon_key.clone(),
    };
    let result = measure(&backend, options).await;
    let tail = server.stop().await;
    let Measured {
        latency,
        cpu_percent,
        jitter,
        stalls,
    } = result.map_err(|err| anyhow::anyhow!("{err:#}{}", format_tail(&tail)))?;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("\naudio latency and CPU benchmark ({build} build, loopback, no jitter)\n");
    let mut metrics = vec![
        Metric::new(
            "latency_p50_ms",
            "capture → playback callback, p50",
            ms(latency.p50),
            1,
            "ms",
        )
        .at_most(LATENCY_TARGET_MS),
        Metric::new(
            "latency_max_ms",
            "capture → playback callback, max",
            ms(latency.max),
            1,
            "ms",
        ),
        Metric::new(
            "recorded_to_played_p50_ms",
            "sound recorded → played (+ 10 ms capture period), p50",
            ms(latency.p50 + CAPTURE_PERIOD),
            1,
            "ms",
        ),
        Metric::new(
            "latency_chirps",
            "chirps found",
            latency.count as f64,
            0,
            "",
        ),
        Metric::new(
            "cpu_per_client_percent",
            "CPU per client (both directions), of one core",
            cpu_percent,
            2,
            "%",
        )
        .at_most(CPU_TARGET_PERCENT),
    ];
    if let Some(jitter) = jitter {
        metrics.extend([
            Metric::new(
                "jitter_buffer_delay_ms",
                "of which the listener's jitter buffer",
                jitter.delay_ms,
                1,
                "ms",
            ),
            Metric::new(
                "jitter_buffer_target_ms",
                "its target",
                jitter.target_delay_ms,
                1,
                "ms",
            ),
            Metric::new(
                "jitter_buffer_stretched_ms",
                "audio it stretched (accelerate + expand)",
                jitter.accelerated_ms + jitter.expanded_ms,
                1,
                "ms",
            ),
        ]);
    }
    print!("{}", report::render(&metrics));
    println!("\n{stalls} during the call");
    Ok(())
}

async fn measure(backend: &Backend, options: &Options) -> anyhow::Result<Measured> {
    let processing = if options.processing {
        ProcessingSettings::ALL_ON
    } else {
        ProcessingSettings::ALL_OFF
    };
    let talker = LoggingDevices::new(true, processing);
    let listener = LoggingDevices::new(false, processing);
    let [(a, a_events), (b, b_events)] = session::connect_pair(
        backend,
        [Arc::new(talker.clone()), Arc::new(listener.clone())],
        SETUP_TIMEOUT,
    )
    .await?;
    let watch = StallWatch::start();
    let cpu_before = cpu_time()?;
    let wall = Instant::now();
    let stop = CancellationToken::new();
    // Keeps each side's latest quality report: the listener's says where
    // the jitter buffer's share of the latency stands.
    let drain = |mut events: tokio::sync::mpsc::Receiver<ClientEvent>, stop: CancellationToken| {
        tokio::spawn(async move {
            let mut quality = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return (events, quality),
                    event = events.recv() => match event {
                        Some(ClientEvent::Quality(latest)) => quality = Some(latest),
                        Some(_) => {}
                        None => return (events, quality),
                    },
                }
            }
        })
    };
    let a_drain = drain(a_events, stop.clone());
    let b_drain = drain(b_events, stop.clone());
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let cpu = cpu_time()? - cpu_before;
    let elapsed = wall.elapsed();
    let stalls = watch.stop();
    // The watch is the benchmark's, not the call's.
    let cpu = cpu.saturating_sub(stalls.own_cpu);
    stop.cancel();
    let ((a_events, _), (b_events, heard)) = (a_drain.await?, b_drain.await?);
    session::hang_up_pair([(a, a_events), (b, b_events)]).await;
    let found = latencies(&lock(&talker.capture), &lock(&listener.playback));
    let summary = Summary::of(found).context("no chirp was heard")?;
    let cpu_percent = cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0 / 2.0;
    Ok(Measured {
        latency: summary,
        cpu_percent,
        jitter: heard.map(|quality| quality.received.jitter),
        stalls,
    })
}

/// What one bench call measured.
struct Measured {
    latency: Summary,
    cpu_percent: f64,
    /// The listener's jitter buffer at its last report.
    jitter: Option<JitterStats>,
    /// How long the machine paused during the call: a pause reaches the
    /// jitter buffer as a spike and raises its target for a while.
    stalls: Stalls,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A playback log that is the capture log shifted by `delay`.
    fn logs(delay_samples: usize) -> (Log, Log) {
        let start = Instant::now();
        let chunks = 300;
        let times: Vec<Instant> = (0..chunks)
            .map(|i| start + Duration::from_millis(10 * i as u64))
            .collect();
        let chirp = chirp();
        let mut signal = vec![0i16; chunks * PULL_SAMPLES];
        let mut at = FIRST_CHIRP;
        while at + CHIRP_SAMPLES <= signal.len() {
            signal[at..at + CHIRP_SAMPLES].copy_from_slice(&chirp);
            at += CHIRP_EVERY;
        }
        let mut played = vec![0i16; delay_samples];
        played.extend_from_slice(&signal);
        played.truncate(signal.len());
        (
            Log {
                times: times.clone(),
                samples: signal,
            },
            Log {
                times,
                samples: played,
            },
        )
    }

    #[test]
    fn latency_is_found_by_correlation() {
        // Played 1,440 samples (30 ms) later in the stream, by callbacks
        // that run at the same times as the capture ones.
        let (talker, listener) = logs(1440);
        let found = latencies(&talker, &listener);
        assert!(found.len() >= 4, "{found:?}");
        for latency in found {
            let ms = latency.as_secs_f64() * 1000.0;
            assert!((ms - 30.0).abs() < 0.1, "{ms} ms");
        }
        // A loop that plays what it captures in the same callback adds
        // nothing.
        let (talker, listener) = logs(0);
        for latency in latencies(&talker, &listener) {
            assert!(latency < Duration::from_micros(100), "{latency:?}");
        }
    }
}
