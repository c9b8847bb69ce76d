//! `voicemeet-cli`: the headless VoiceMeet peer.
//!
//! - [`call`]: one stranger that searches, talks (a tone, a WAV file or
//!   silence), records what it hears and hangs up; its stdout is a stable
//!   line protocol ([`lines`]).
//! - [`echo_bot`]: a sound-test stranger that plays back what it hears.
//! - [`bench_setup`]: times search-to-first-audio between two in-process
//!   clients against a real `voicemeet-server`.
//! - [`bench_server`]: measures a real `voicemeet-server` process under
//!   load.
//! - [`bench_audio`]: scores call quality under packet loss with PESQ-WB,
//!   through the whole stack.
//! - [`bench_latency`]: the audio pipeline's one-way latency and CPU per
//!   call.
//!
//! The calls run the engine (`voicemeet_core::Client`) through
//! [`session`]; the benchmarks share [`server_process`], [`stats`] and
//! [`report`].

mod args;
mod audio;
mod bench_audio;
mod bench_latency;
mod bench_server;
mod bench_setup;
mod call;
mod echo_bot;
mod lines;
mod report;
mod server_process;
mod session;
mod signals;
mod stall;
mod stats;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::args::OptionsError;

/// Exit status for a command line that cannot be used (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// Log filter when `RUST_LOG` is unset: the engine's warnings. webrtc-rs
/// warns about routine events (a candidate closed at hang-up, a ping
/// before any pair exists), so its crates show errors only.
const DEFAULT_LOG_FILTER: &str = "warn,webrtc=error,webrtc_ice=error,webrtc_dtls=error,\
                                  webrtc_srtp=error,webrtc_sctp=error,webrtc_mdns=error,\
                                  webrtc_data=error,interceptor=error,turn=error";

const USAGE: &str = "\
voicemeet-cli: the headless VoiceMeet peer.

USAGE:
    voicemeet-cli call [OPTIONS]           search, talk, hang up (see call --help)
    voicemeet-cli echo-bot [OPTIONS]       a sound-test peer that plays back what it hears
    voicemeet-cli bench-setup [OPTIONS]    time search-to-first-audio against a local server
    voicemeet-cli bench-server [OPTIONS]   measure a local voicemeet-server (see bench-server --help)
    voicemeet-cli bench-audio [OPTIONS]    call quality under packet loss (PESQ-WB)
    voicemeet-cli bench-latency [OPTIONS]  one-way audio latency and CPU per call
    voicemeet-cli --version                print the version

Logs go to stderr; RUST_LOG sets their filter (default: warn).
";

fn main() -> ExitCode {
    let mut args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    let command = args.next();
    match command.as_deref() {
        Some("--version" | "-V") => {
            println!("voicemeet-cli {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") | None => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("call") => {
            let env = |var: &str| std::env::var(var).ok();
            dispatch(
                "call",
                call::Options::parse(args, env),
                |parsed| match parsed {
                    call::Parsed::Help => None,
                    call::Parsed::Run(options) => Some(call::run(&options)),
                },
                call::USAGE,
            )
        }
        Some("echo-bot") => {
            let env = |var: &str| std::env::var(var).ok();
            dispatch(
                "echo-bot",
                echo_bot::Options::parse(args, env),
                |parsed| match parsed {
                    echo_bot::Parsed::Help => None,
                    echo_bot::Parsed::Run(options) => Some(echo_bot::run(&options)),
                },
                echo_bot::USAGE,
            )
        }
        Some("bench-setup") => dispatch(
            "bench-setup",
            bench_setup::Options::parse(args),
            |parsed| match parsed {
                bench_setup::Parsed::Help => None,
                bench_setup::Parsed::Run(options) => Some(bench_setup::run(&options)),
            },
            bench_setup::USAGE,
        ),
        Some("bench-server") => dispatch(
            "bench-server",
            bench_server::Options::parse(args),
            |parsed| match parsed {
                bench_server::Parsed::Help => None,
                bench_server::Parsed::Run(options) => Some(bench_server::run(&options)),
            },
            bench_server::USAGE,
        ),
        Some("bench-audio") => dispatch(
            "bench-audio",
            bench_audio::Options::parse(args),
            |parsed| match parsed {
                bench_audio::Parsed::Help => None,
                bench_audio::Parsed::Run(options) => Some(bench_audio::run(&options)),
            },
            bench_audio::USAGE,
        ),
        Some("bench-latency") => dispatch(
            "bench-latency",
            bench_latency::Options::parse(args),
            |parsed| match parsed {
                bench_latency::Parsed::Help => None,
                bench_latency::Parsed::Run(options) => Some(bench_latency::run(&options)),
            },
            bench_latency::USAGE,
        ),
        Some(other) => {
            eprintln!("voicemeet-cli: unknown command {other:?}; try --help");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Runs a parsed subcommand: `run` returns `None` for `--help` (then
/// `usage` is printed), or the command's result. Errors are printed with
/// their causes, prefixed by the command's name.
fn dispatch<P>(
    name: &str,
    parsed: Result<P, OptionsError>,
    run: impl FnOnce(P) -> Option<anyhow::Result<()>>,
    usage: &str,
) -> ExitCode {
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("voicemeet-cli {name}: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging();
    match run(parsed) {
        None => {
            print!("{usage}");
            ExitCode::SUCCESS
        }
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(err)) => {
            eprintln!("voicemeet-cli {name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Engine logs to stderr, so stdout keeps only results and event lines.
fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Fails only if a subscriber is already set, which nothing else does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
