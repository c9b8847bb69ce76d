//! `voicemeet-cli`: the headless VoiceMeet peer. Subcommands (call, echo-bot,
//! benchmarks) arrive with the call engine; today it reports its version.

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version") | Some("-V") | None => {
            println!("voicemeet-cli {}", env!("CARGO_PKG_VERSION"));
        }
        Some(other) => {
            eprintln!("voicemeet-cli: unknown command {other:?}; try --version");
            std::process::exit(2);
        }
    }
}
