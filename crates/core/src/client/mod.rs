//! The one handle the app (and the CLI) uses: [`Client`] plus one ordered
//! stream of [`ClientEvent`]s.
//!
//! `Client::start` spawns a single driver task that owns everything about
//! the call — the backend session, the Realtime socket, the room channel, the
//! reliable signalling session, the peer and the audio tasks — and runs the
//! pure [`voicemeet_proto::call::Call`] state machine over them. Commands go
//! in over a bounded channel; facts come out in order. Dropping the `Client`
//! ends the driver, which hangs up politely first.

mod driver;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use voicemeet_proto::call::{CallState, Command};
use voicemeet_proto::matchmaking::Role;

pub use crate::audio::AudioIo;
use crate::audio::{ReceiveStats, SendStats};
use crate::backend::{BackendClient, BackendConfig, MemoryStore, SessionStore};
use crate::error::Error;

/// Commands waiting for the driver. A person taps at most a few times a
/// second; 16 absorbs any burst without letting a stuck driver hide.
pub const COMMAND_CAPACITY: usize = 16;
/// Events waiting for the app. A call produces a handful of state changes;
/// 256 leaves room for a slow UI thread without dropping any.
pub const EVENT_CAPACITY: usize = 256;
/// How long the driver gives a polite goodbye (bye, leaving the room and
/// the queue) when the client is dropped before it stops anyway.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to build a [`Client`].
pub struct ClientConfig {
    /// The Supabase-shaped backend (hosted or the local one).
    pub backend: BackendConfig,
    /// Where the anonymous session is kept between runs.
    pub session_store: Arc<dyn SessionStore>,
    /// The call's audio.
    pub audio: Arc<dyn AudioIo>,
}

impl ClientConfig {
    /// A configuration with an in-memory session store.
    pub fn new(backend: BackendConfig, audio: Arc<dyn AudioIo>) -> Self {
        Self {
            backend,
            session_store: Arc::new(MemoryStore::new()),
            audio,
        }
    }
}

/// How the call in progress is doing, both ways: for the quality
/// indicator, logs and benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct CallQuality {
    /// What arrives: the jitter buffer's statistics and packet counts.
    pub received: ReceiveStats,
    /// What we send: the codec and redundancy settings in force, and the
    /// loss the other side reports.
    pub sent: SendStats,
}

/// How often [`ClientEvent::Quality`] comes during a call.
pub const QUALITY_INTERVAL: Duration = Duration::from_secs(1);

/// What the client reports, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The call moved to a new state (the UI shows this).
    StateChanged(CallState),
    /// The microphone was muted or unmuted.
    MuteChanged(bool),
    /// A stranger was found; our role in the negotiation.
    Matched {
        /// Offerer or answerer, as the matchmaker decided.
        role: Role,
    },
    /// The first decoded audio of this call from the stranger was played.
    FirstAudio,
    /// The call's audio devices could not start (no microphone, a busy
    /// device); the call goes on, and this says why it is silent.
    AudioUnavailable {
        /// What went wrong, for people.
        message: String,
    },
    /// How the call is doing, every [`QUALITY_INTERVAL`] while its audio
    /// runs.
    Quality(Box<CallQuality>),
}

/// The handle. Cheap to share by reference; dropping it ends the driver.
pub struct Client {
    commands: mpsc::Sender<Command>,
    _stop: DropGuard,
}

impl Client {
    /// Starts the driver task on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the backend configuration is unusable.
    pub fn start(config: ClientConfig) -> Result<(Self, mpsc::Receiver<ClientEvent>), Error> {
        let backend = BackendClient::with_store(config.backend.clone(), config.session_store)?;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events, event_rx) = mpsc::channel(EVENT_CAPACITY);
        let stop = CancellationToken::new();
        let driver = driver::Driver::new(
            backend,
            config.backend,
            config.audio,
            command_rx,
            events,
            stop.clone(),
        );
        tokio::spawn(driver.run());
        Ok((
            Self {
                commands,
                _stop: stop.drop_guard(),
            },
            event_rx,
        ))
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::ChannelClosed)
    }

    /// Look for a stranger: fetches credentials first, then queues.
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the driver has stopped.
    pub async fn search(&self) -> Result<(), Error> {
        self.send(Command::Search).await
    }

    /// Stop searching (ignored once in a call: use [`Client::hang_up`]).
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the driver has stopped.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.send(Command::Cancel).await
    }

    /// End this call and search again.
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the driver has stopped.
    pub async fn skip(&self) -> Result<(), Error> {
        self.send(Command::Skip).await
    }

    /// End the call (or the search).
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the driver has stopped.
    pub async fn hang_up(&self) -> Result<(), Error> {
        self.send(Command::HangUp).await
    }

    /// Mute or unmute the microphone; it stays so across calls.
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] if the driver has stopped.
    pub async fn set_muted(&self, muted: bool) -> Result<(), Error> {
        self.send(Command::SetMuted(muted)).await
    }
}
