//! `voicemeet-cli call`: one headless stranger. It starts an engine
//! [`Client`](voicemeet_core::Client), searches, prints every event as a
//! [stdout line](crate::lines), keeps the call for `--duration` (skipping
//! strangers every `--skip-after` if asked), hangs up, and writes what it
//! heard to `--output`. Ctrl-C and SIGTERM hang up politely first.
//!
//! Start at [`run`].

mod options;

use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::time::Instant;
use voicemeet_core::ClientEvent;
use voicemeet_core::audio::{
    AudioSink, AudioSource, FileSource, PacedIo, SilenceSource, ToneSource,
};
use voicemeet_core::proto::call::{CallState, EndReason, ErrorKind};

pub use options::{Input, Options, Parsed, USAGE};

use crate::audio::{Discard, SharedWav, ThenSilence};
use crate::lines::{error_kind_name, event_line};
use crate::session::{self, HANG_UP_TIMEOUT, sleep_until_opt};
use crate::signals::Stop;

/// The call ended in `Failed`: the engine's verdict, for the exit message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFailed(pub ErrorKind);

impl fmt::Display for CallFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = if self.0.is_retryable() {
            "trying again may help"
        } else {
            "trying again will not help"
        };
        write!(
            f,
            "the call failed: {} ({}); {hint}",
            error_kind_name(self.0),
            self.0
        )
    }
}

impl std::error::Error for CallFailed {}

/// Where the sent audio comes from, loaded once per run.
enum Source {
    Tone(f64),
    File(FileSource),
    Silence,
}

/// The call's audio: the chosen source; what is heard goes to the shared
/// WAV file or nowhere.
struct CallAudio {
    source: Source,
    output: Option<SharedWav>,
}

impl PacedIo for CallAudio {
    fn source(&self) -> Box<dyn AudioSource> {
        match &self.source {
            Source::Tone(hz) => Box::new(ToneSource::new(*hz)),
            // Each call plays the file from its start.
            Source::File(file) => Box::new(ThenSilence::new(file.clone())),
            Source::Silence => Box::new(SilenceSource),
        }
    }

    fn sink(&self) -> Box<dyn AudioSink> {
        match &self.output {
            Some(wav) => Box::new(wav.clone()),
            None => Box::new(Discard),
        }
    }
}

/// Makes the call. `Err` carries [`CallFailed`] when the engine reported
/// `Failed`.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let source = match &options.input {
        Input::Tone(hz) => Source::Tone(*hz),
        Input::File(path) => Source::File(
            FileSource::open(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        Input::Silence => Source::Silence,
    };
    let output = match &options.output {
        Some(path) => {
            Some(SharedWav::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let audio = Arc::new(CallAudio {
        source,
        output: output.clone(),
    });
    let result = session::runtime()?.block_on(call(options, audio));
    if let (Some(wav), Some(path)) = (&output, &options.output) {
        // Written even after a failure: it may show what went wrong.
        let secs = wav
            .close()
            .with_context(|| format!("finishing {}", path.display()))?;
        eprintln!("call: wrote {secs:.2} s of audio to {}", path.display());
    }
    result
}

fn print_event(event: &ClientEvent) {
    if let Some(line) = event_line(event) {
        println!("{line}");
    }
}

async fn call(options: &Options, audio: Arc<CallAudio>) -> anyhow::Result<()> {
    // Listening before anything starts, so no signal is missed.
    let mut stop = Stop::listen().context("listening for signals")?;
    let (client, mut events) = session::start(&options.backend, audio)?;
    client.search().await.context("starting the search")?;
    // Armed when the first call connects.
    let mut hang_up_at: Option<Instant> = None;
    let mut connected_once = false;
    // Armed each time a call connects, with --skip-after.
    let mut skip_at: Option<Instant> = None;
    // Set when we hang up: the hang-up must settle by then.
    let mut settle_by: Option<Instant> = None;

    let outcome = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    break Err(anyhow::anyhow!("the call engine stopped unexpectedly"));
                };
                print_event(&event);
                let ClientEvent::StateChanged(state) = event else {
                    continue;
                };
                match state {
                    CallState::InCall => {
                        let now = Instant::now();
                        if !connected_once {
                            connected_once = true;
                            hang_up_at = options.duration.map(|d| now + d);
                        }
                        // Back from `Reconnecting` keeps the running timer.
                        if skip_at.is_none() {
                            skip_at = options.skip_after.map(|d| now + d);
                        }
                    }
                    CallState::Reconnecting => {}
                    // Skipping searches on by itself.
                    CallState::Ended { reason: EndReason::Skipped } => skip_at = None,
                    CallState::Ended { .. } => break Ok(()),
                    CallState::Failed { error } => break Err(CallFailed(error).into()),
                    // Only a hang-up during a search leads here.
                    CallState::Idle => break Ok(()),
                    CallState::Preparing
                    | CallState::Searching
                    | CallState::Matched
                    | CallState::Connecting => skip_at = None,
                }
            }
            () = sleep_until_opt(hang_up_at), if settle_by.is_none() => {
                settle_by = Some(Instant::now() + HANG_UP_TIMEOUT);
                if let Err(err) = client.hang_up().await {
                    break Err(anyhow::Error::from(err).context("hanging up"));
                }
            }
            () = sleep_until_opt(skip_at), if settle_by.is_none() => {
                skip_at = None;
                if let Err(err) = client.skip().await {
                    break Err(anyhow::Error::from(err).context("skipping"));
                }
            }
            signal = stop.requested(), if settle_by.is_none() => {
                if let Err(err) = signal {
                    break Err(anyhow::Error::from(err).context("listening for signals"));
                }
                eprintln!("call: interrupted; hanging up");
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
        eprintln!("call: the engine did not stop in time; its goodbye may be cut short");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_error_kind() {
        let text = CallFailed(ErrorKind::Relay).to_string();
        assert!(text.contains("relay"), "{text}");
        assert!(text.contains("trying again may help"), "{text}");
        let text = CallFailed(ErrorKind::Auth).to_string();
        assert!(
            text.contains("auth") && text.contains("will not help"),
            "{text}"
        );
    }
}
