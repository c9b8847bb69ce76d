//! `voicemeet-cli echo-bot`: a sound-test stranger. It waits in the queue,
//! plays back what the caller says about a second later ([`echo`]), and
//! searches again after each call, so one person can try the product
//! alone. Events go to stdout as in `call` ([`crate::lines`]).
//!
//! Start at [`run`].

mod echo;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;
use voicemeet_core::ClientEvent;
use voicemeet_core::proto::call::{CallState, EndReason};

use crate::args::{self, Args, Backend, BackendArgs, OptionsError};
use crate::call::CallFailed;
use crate::lines::event_line;
use crate::session::{self, HANG_UP_TIMEOUT, is_settled, sleep_until_opt};
use crate::signals::Stop;
use echo::EchoIo;

/// `echo-bot --help`.
pub const USAGE: &str = "\
voicemeet-cli echo-bot: a sound-test peer that plays back what it hears, ~1 s later.

USAGE:
    voicemeet-cli echo-bot --url URL --anon-key KEY [OPTIONS]

OPTIONS:
    --url URL           backend URL [env: VOICEMEET_URL]
    --anon-key KEY      backend anon key [env: VOICEMEET_ANON_KEY]
    --calls N           stop after N calls that connected [default: never]
    --max-call SECS     hang up a call after SECS, so a forgotten caller does
                        not keep the bot [default: 120]
    -h, --help          print this help

After every call (and every search that ends without one) the bot searches
again. A failure that retrying can fix is retried with a growing pause
(1 s doubling to 30 s); one that it cannot (auth, internal) ends the bot
with status 1. Stdout has the same event lines as `call`. Ctrl-C or
SIGTERM hangs up politely and exits 0.
";

/// Default longest call.
const DEFAULT_MAX_CALL: Duration = Duration::from_secs(120);
/// First pause before searching again after a retryable failure...
const RETRY_MIN: Duration = Duration::from_secs(1);
/// ...doubling up to this, so a backend outage is not hammered.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// One `echo-bot` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where the backend is.
    pub backend: Backend,
    /// Stop after this many connected calls; `None` runs until stopped.
    pub calls: Option<u64>,
    /// Hang up a call after this long.
    pub max_call: Duration,
}

/// What the command line asked for.
pub type Parsed = crate::args::Parsed<Options>;

impl Options {
    /// Parses the arguments after `echo-bot`, reading the backend from
    /// `env` when no flag gives it.
    ///
    /// # Errors
    /// A command line that cannot be used.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Parsed, OptionsError> {
        let mut args = Args::new(args);
        let mut backend = BackendArgs::default();
        let mut calls = None;
        let mut max_call = DEFAULT_MAX_CALL;
        while let Some(flag) = args.next_flag() {
            let Some(flag) = backend.take(flag, &mut args)? else {
                continue;
            };
            let name = flag.name.clone();
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--calls" => {
                    let value = args.value(flag)?;
                    calls = Some(args::count(&name, &value, 1, "a positive count")?);
                }
                "--max-call" => max_call = args::seconds(&name, &args.value(flag)?)?,
                _ => return Err(OptionsError::UnknownFlag(name)),
            }
        }
        Ok(Parsed::Run(Self {
            backend: backend.resolve(env)?,
            calls,
            max_call,
        }))
    }
}

/// Runs the bot until `--calls` calls are done, it is stopped, or a
/// failure that retrying cannot fix.
pub fn run(options: &Options) -> anyhow::Result<()> {
    session::runtime()?.block_on(serve(options))
}

fn print_event(event: &ClientEvent) {
    if let Some(line) = event_line(event) {
        println!("{line}");
    }
}

async fn serve(options: &Options) -> anyhow::Result<()> {
    // Listening before anything starts, so no signal is missed.
    let mut stop = Stop::listen().context("listening for signals")?;
    let (client, mut events) = session::start(&options.backend, Arc::new(EchoIo::new()))?;
    client.search().await.context("starting the search")?;
    let mut state = CallState::Idle;
    let mut calls_done: u64 = 0;
    // The current match reached `InCall`.
    let mut connected = false;
    let mut hang_up_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff = RETRY_MIN;
    // Set when stopping: the hang-up must settle by then.
    let mut settle_by: Option<Instant> = None;

    let outcome = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    break Err(anyhow::anyhow!("the call engine stopped unexpectedly"));
                };
                print_event(&event);
                let ClientEvent::StateChanged(new_state) = event else {
                    continue;
                };
                state = new_state;
                match state {
                    CallState::InCall => {
                        if !connected {
                            connected = true;
                            hang_up_at = Some(Instant::now() + options.max_call);
                            backoff = RETRY_MIN;
                        }
                    }
                    // The engine searches on by itself after a skip (the
                    // bot never skips, but the stranger's skip is theirs).
                    CallState::Reconnecting
                    | CallState::Ended { reason: EndReason::Skipped } => {}
                    CallState::Ended { .. } => {
                        hang_up_at = None;
                        if std::mem::take(&mut connected) {
                            calls_done += 1;
                            eprintln!("echo-bot: call {calls_done} done");
                        }
                        if settle_by.is_some() || options.calls.is_some_and(|n| calls_done >= n) {
                            break Ok(());
                        }
                        if let Err(err) = client.search().await {
                            break Err(anyhow::Error::from(err).context("searching again"));
                        }
                    }
                    CallState::Failed { error } => {
                        hang_up_at = None;
                        connected = false;
                        if settle_by.is_some() {
                            break Ok(());
                        }
                        if !error.is_retryable() {
                            break Err(CallFailed(error).into());
                        }
                        eprintln!("echo-bot: {}; searching again in {backoff:?}", CallFailed(error));
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                    CallState::Idle => {
                        if settle_by.is_some() {
                            break Ok(());
                        }
                    }
                    CallState::Preparing
                    | CallState::Searching
                    | CallState::Matched
                    | CallState::Connecting => {}
                }
            }
            () = sleep_until_opt(hang_up_at), if settle_by.is_none() => {
                hang_up_at = None;
                eprintln!("echo-bot: the call reached {:?}; hanging up", options.max_call);
                if let Err(err) = client.hang_up().await {
                    break Err(anyhow::Error::from(err).context("hanging up"));
                }
            }
            () = sleep_until_opt(retry_at), if settle_by.is_none() => {
                retry_at = None;
                if let Err(err) = client.search().await {
                    break Err(anyhow::Error::from(err).context("searching again"));
                }
            }
            signal = stop.requested(), if settle_by.is_none() => {
                if let Err(err) = signal {
                    break Err(anyhow::Error::from(err).context("listening for signals"));
                }
                eprintln!("echo-bot: interrupted; hanging up");
                if is_settled(state) {
                    // Waiting to retry: nothing to hang up.
                    break Ok(());
                }
                settle_by = Some(Instant::now() + HANG_UP_TIMEOUT);
                if let Err(err) = client.hang_up().await {
                    break Err(anyhow::Error::from(err).context("hanging up"));
                }
            }
            () = sleep_until_opt(settle_by) => {
                break Err(anyhow::anyhow!(
                    "the hang-up did not finish within {HANG_UP_TIMEOUT:?}"
                ));
            }
        }
    };
    if !session::stop(client, events, print_event).await {
        eprintln!("echo-bot: the engine did not stop in time; its goodbye may be cut short");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Parsed, OptionsError> {
        Options::parse(list.iter().map(|s| (*s).to_owned()), |_| None)
    }

    #[test]
    fn flags_and_defaults() {
        let parsed = parse(&["--url", "http://x", "--anon-key=k"]);
        let Ok(Parsed::Run(options)) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(options.calls, None);
        assert_eq!(options.max_call, DEFAULT_MAX_CALL);
        let parsed = parse(&["--url=u", "--anon-key=k", "--calls", "3", "--max-call=5"]);
        let Ok(Parsed::Run(options)) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(options.calls, Some(3));
        assert_eq!(options.max_call, Duration::from_secs(5));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
        assert!(matches!(
            parse(&["--url=u", "--anon-key=k", "--calls", "0"]),
            Err(OptionsError::InvalidValue { .. })
        ));
        assert!(matches!(parse(&[]), Err(OptionsError::Missing { .. })));
        assert_eq!(
            parse(&["--url=u", "--anon-key=k", "--loop"]),
            Err(OptionsError::UnknownFlag("--loop".into()))
        );
    }
}
