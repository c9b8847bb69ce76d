//! `voicemeet-cli`: the headless VoiceMeet peer. Today it has one subcommand,
//! `bench-server`, which measures a real `voicemeet-server` process (see
//! [`bench_server`]); calls and the echo bot arrive with the call engine.

mod bench_server;

use std::process::ExitCode;

/// Exit status for a command line that cannot be used (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "\
voicemeet-cli: the headless VoiceMeet peer.

USAGE:
    voicemeet-cli bench-server [OPTIONS]   measure a local voicemeet-server (see bench-server --help)
    voicemeet-cli --version                print the version
";

fn main() -> ExitCode {
    let mut args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    match args.next().as_deref() {
        Some("--version" | "-V") => {
            println!("voicemeet-cli {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") | None => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("bench-server") => match bench_server::Options::parse(args) {
            Ok(bench_server::Parsed::Help) => {
                print!("{}", bench_server::USAGE);
                ExitCode::SUCCESS
            }
            Ok(bench_server::Parsed::Run(options)) => match bench_server::run(&options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("voicemeet-cli bench-server: {err:#}");
                    ExitCode::FAILURE
                }
            },
            Err(err) => {
                eprintln!("voicemeet-cli bench-server: {err}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Some(other) => {
            eprintln!("voicemeet-cli: unknown command {other:?}; try --help");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
