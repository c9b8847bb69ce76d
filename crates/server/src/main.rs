//! `voicemeet-server`: runs the local backend until Ctrl-C or SIGTERM.
//!
//! Prints one human line, then `VOICEMEET_URL=...` and
//! `VOICEMEET_ANON_KEY=...` on stdout for scripts and tests to parse. Logs go
//! to stderr (`RUST_LOG` overrides the default filter).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use voicemeet_server::config::{CliCommand, USAGE};
use voicemeet_server::{Config, RunningServer, Server};

/// The `turn` crate logs peer addresses at info and error level; they are
/// IPs of people, so its logs are off unless `RUST_LOG` asks for them.
const DEFAULT_LOG_FILTER: &str = "info,turn=off,webrtc_util=off";

/// Exit status for a command line that cannot be used (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    let command = match Config::from_args(args, |name| std::env::var(name).ok()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("voicemeet-server: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        CliCommand::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        CliCommand::Version => {
            println!("voicemeet-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        CliCommand::Run(config) => match run(*config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("voicemeet-server: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::start(config).await.context("starting the server")?;
    announce(&server).context("writing the startup lines")?;

    let stopped = server.shutdown_token();
    tokio::select! {
        signal = shutdown_signal() => {
            signal.context("listening for shutdown signals")?;
            tracing::info!("shutdown requested");
        }
        () = stopped.cancelled() => tracing::warn!("server stopped on its own"),
    }
    server.shutdown().await.context("shutting down")?;
    Ok(())
}

/// The startup lines. The anon key is printed on purpose: it is the public
/// API key clients need (like Supabase's), never a user's token.
fn announce(server: &RunningServer) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let relay = match server.relay_addr {
        Some(_) => "embedded relay",
        None => "external relay",
    };
    writeln!(
        out,
        "VoiceMeet local backend at {} (TURN: {} via {relay})",
        server.url,
        server.turn_urls.join(", ")
    )?;
    if server.jwt_secret_generated {
        writeln!(
            out,
            "JWT secret generated for this run: the anon key changes on restart \
             (set VOICEMEET_JWT_SECRET to keep it)"
        )?;
    }
    writeln!(out, "VOICEMEET_URL={}", server.url)?;
    writeln!(out, "VOICEMEET_ANON_KEY={}", server.anon_key)?;
    out.flush()
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
