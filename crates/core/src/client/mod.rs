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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use voicemeet_proto::call::{CallState, Command};
use voicemeet_proto::matchmaking::Role;

use crate::audio::{AudioSink, AudioSource};
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

/// Where a call's audio comes from and goes to. Called once per call.
pub trait AudioIo: Send + Sync + 'static {
    /// The microphone (or a tone, a file, silence).
    fn source(&self) -> Box<dyn AudioSource>;
    /// The speaker (or a file, memory).
    fn sink(&self) -> Box<dyn AudioSink>;
}

impl AudioSource for Box<dyn AudioSource> {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        (**self).read_frame(frame)
    }
}

impl AudioSink for Box<dyn AudioSink> {
    fn write_frame(&mut self, samples: &[i16]) -> Result<(), Error> {
        (**self).write_frame(samples)
    }

    fn finish(&mut self) -> Result<(), Error> {
        (**self).finish()
    }
}

/// A source that sends silence while muted: mute stops sending speech, not
/// just the level meter.
struct MutableSource {
    inner: Box<dyn AudioSource>,
    muted: Arc<AtomicBool>,
}

impl AudioSource for MutableSource {
    fn read_frame(&mut self, frame: &mut [i16]) -> bool {
        let more = self.inner.read_frame(frame);
        if self.muted.load(Ordering::Relaxed) {
            frame.fill(0);
        }
        more
    }
}

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

/// What the client reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The first decoded audio frame of this call arrived from the stranger.
    FirstAudio,
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
