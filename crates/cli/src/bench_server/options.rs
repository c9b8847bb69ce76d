//! The `bench-server` command line: `--flag value` or `--flag=value`.

use std::path::PathBuf;

use crate::args::{OptionsError, invalid};

/// `bench-server --help`.
pub const USAGE: &str = "\
voicemeet-cli bench-server: start a voicemeet-server on 127.0.0.1 and measure it.

Parts (all run by default; each gets a fresh server process):
    idle      N idle websockets, each joined to its own channel; server RSS per connection
    matches   M signed-up users listening on their inbox call join_queue at once; matches/s
    rtt       N users in N/2 two-person rooms; broadcast round trips (send -> partner echo)

USAGE:
    voicemeet-cli bench-server [OPTIONS]

OPTIONS:
    --server-bin PATH           voicemeet-server binary [default: next to this executable]
    --only LIST                 comma-separated parts to run: idle,matches,rtt [default: all]
    --connections N             idle websockets to hold [default: 10000]
    --connect-concurrency N     websocket handshakes in flight [default: 256]
    --users M                   users to match, even [default: 2000]
    --rpc-concurrency N         HTTP requests in flight (sign-ups, join_queue) [default: 64]
    --room-users N              connected users in the rtt part, even [default: 1000]
    --samples N                 round trips to time [default: 2000]
    --rtt-in-flight N           round trips in flight at once [default: 1]
    --rtt-load N                background broadcasts per second between the rooms [default: 0]
    -h, --help                  print this help

Build in release for real numbers:
    cargo build --release -p voicemeet-server -p voicemeet-cli
    target/release/voicemeet-cli bench-server

A quick smoke run: --connections 200 --users 200 --room-users 100
";

/// What the command line asked for.
pub type Parsed = crate::args::Parsed<Options>;

/// The benchmark parts, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Idle connections and memory.
    Idle,
    /// Matchmaking throughput.
    Matches,
    /// Broadcast round-trip latency.
    Rtt,
}

impl Part {
    const ALL: [Self; 3] = [Self::Idle, Self::Matches, Self::Rtt];

    /// The name used by `--only`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Matches => "matches",
            Self::Rtt => "rtt",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "idle" => Some(Self::Idle),
            "matches" => Some(Self::Matches),
            "rtt" => Some(Self::Rtt),
            _ => None,
        }
    }
}

/// Sizes and switches of one benchmark run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The server binary; `None` means next to the current executable.
    pub server_bin: Option<PathBuf>,
    /// Parts to run, in [`Part::ALL`] order, each at most once.
    pub parts: Vec<Part>,
    /// Idle websockets to hold.
    pub connections: usize,
    /// Websocket handshakes (and joins) in flight at once.
    pub connect_concurrency: usize,
    /// Users to match; even, so everyone gets a partner.
    pub users: usize,
    /// HTTP requests in flight at once.
    pub rpc_concurrency: usize,
    /// Users connected in the round-trip part; even (they come in pairs).
    pub room_users: usize,
    /// Round trips to time.
    pub samples: usize,
    /// Round trips in flight at once.
    pub rtt_in_flight: usize,
    /// Background broadcasts per second during the round-trip part.
    pub rtt_load: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_bin: None,
            parts: Part::ALL.to_vec(),
            connections: 10_000,
            connect_concurrency: 256,
            users: 2_000,
            rpc_concurrency: 64,
            room_users: 1_000,
            samples: 2_000,
            rtt_in_flight: 1,
            rtt_load: 0,
        }
    }
}

impl Options {
    /// Parses the arguments after `bench-server`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, OptionsError> {
        let mut options = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Parsed::Help);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let value = match inline {
                Some(value) => value,
                None if is_known(&flag) => args
                    .next()
                    .ok_or_else(|| OptionsError::MissingValue(flag.clone()))?,
                None => return Err(OptionsError::UnknownFlag(flag)),
            };
            let count = |min: usize, expected: &'static str| -> Result<usize, OptionsError> {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| invalid(&flag, &value, expected))
            };
            match flag.as_str() {
                "--server-bin" => options.server_bin = Some(PathBuf::from(&value)),
                "--only" => options.parts = parse_parts(&flag, &value)?,
                "--connections" => options.connections = count(1, "a positive count")?,
                "--connect-concurrency" => {
                    options.connect_concurrency = count(1, "a positive count")?;
                }
                "--users" => options.users = even(count(2, "an even count >= 2")?, &flag, &value)?,
                "--rpc-concurrency" => options.rpc_concurrency = count(1, "a positive count")?,
                "--room-users" => {
                    options.room_users = even(count(2, "an even count >= 2")?, &flag, &value)?;
                }
                "--samples" => options.samples = count(1, "a positive count")?,
                "--rtt-in-flight" => options.rtt_in_flight = count(1, "a positive count")?,
                "--rtt-load" => options.rtt_load = count(0, "a count per second")?,
                _ => return Err(OptionsError::UnknownFlag(flag)),
            }
        }
        Ok(Parsed::Run(options))
    }
}

const FLAGS: [&str; 10] = [
    "--server-bin",
    "--only",
    "--connections",
    "--connect-concurrency",
    "--users",
    "--rpc-concurrency",
    "--room-users",
    "--samples",
    "--rtt-in-flight",
    "--rtt-load",
];

fn is_known(flag: &str) -> bool {
    FLAGS.contains(&flag)
}

fn even(n: usize, flag: &str, value: &str) -> Result<usize, OptionsError> {
    if n.is_multiple_of(2) {
        Ok(n)
    } else {
        Err(invalid(flag, value, "an even count >= 2"))
    }
}

fn parse_parts(flag: &str, value: &str) -> Result<Vec<Part>, OptionsError> {
    let mut wanted = Vec::new();
    for name in value.split(',').map(str::trim) {
        let part =
            Part::parse(name).ok_or_else(|| invalid(flag, value, "a list of idle,matches,rtt"))?;
        wanted.push(part);
    }
    // Always run in the documented order, each part once.
    Ok(Part::ALL
        .into_iter()
        .filter(|p| wanted.contains(p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, OptionsError> {
        Options::parse(args.iter().map(|s| (*s).to_owned()))
    }

    fn run(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Parsed::Run(options)) => options,
            other => panic!("expected options for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_is_the_full_benchmark() {
        assert_eq!(run(&[]), Options::default());
        assert_eq!(Options::default().parts, Part::ALL.to_vec());
    }

    #[test]
    fn smoke_sizes_in_both_spellings() {
        let options = run(&[
            "--connections",
            "200",
            "--users=200",
            "--room-users",
            "100",
            "--server-bin=/x/voicemeet-server",
        ]);
        assert_eq!(options.connections, 200);
        assert_eq!(options.users, 200);
        assert_eq!(options.room_users, 100);
        assert_eq!(
            options.server_bin,
            Some(PathBuf::from("/x/voicemeet-server"))
        );
    }

    #[test]
    fn only_picks_parts_in_order_once() {
        let options = run(&["--only", "rtt,idle,rtt"]);
        assert_eq!(options.parts, vec![Part::Idle, Part::Rtt]);
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert_eq!(
            parse(&["--frobnicate"]),
            Err(OptionsError::UnknownFlag("--frobnicate".into()))
        );
        assert_eq!(
            parse(&["--users"]),
            Err(OptionsError::MissingValue("--users".into()))
        );
        for bad in [
            &["--users", "3"][..],
            &["--room-users", "0"],
            &["--connections", "0"],
            &["--samples", "-1"],
            &["--only", "idle,nap"],
        ] {
            assert!(
                matches!(parse(bad), Err(OptionsError::InvalidValue { .. })),
                "{bad:?}"
            );
        }
    }
}
