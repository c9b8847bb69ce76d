//! Running one engine [`Client`] from a command: the async runtime, the
//! client, and the polite end every command shares (hang up, let the
//! engine say goodbye, then stop).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use voicemeet_core::backend::BackendConfig;
use voicemeet_core::proto::call::CallState;
use voicemeet_core::{AudioIo, Client, ClientConfig, ClientEvent};

use crate::args::Backend;

/// How long a hang-up may take to reach `Ended` (or `Idle`, from a
/// search). The engine decides it in one step; the rest is a backend
/// round trip on a slow day.
pub const HANG_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the engine may take to stop once the client is dropped: its
/// goodbye has three steps of at most `GOODBYE_TIMEOUT` each (drain the
/// hang-up, close the peer, finish leaving jobs), plus a margin.
pub const ENGINE_STOP_TIMEOUT: Duration =
    Duration::from_secs(3 * voicemeet_core::client::GOODBYE_TIMEOUT.as_secs() + 1);

/// The multi-threaded runtime each command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Starts an engine client for `backend` playing through `audio`.
///
/// # Errors
/// A backend URL the engine cannot use.
pub fn start(
    backend: &Backend,
    audio: Arc<dyn AudioIo>,
) -> anyhow::Result<(Client, mpsc::Receiver<ClientEvent>)> {
    let config = ClientConfig::new(
        BackendConfig::new(backend.url.clone(), backend.anon_key.clone()),
        audio,
    );
    Client::start(config).context("starting the call engine")
}

/// Whether a state is one a hang-up ends in.
pub const fn is_settled(state: CallState) -> bool {
    match state {
        CallState::Idle | CallState::Ended { .. } | CallState::Failed { .. } => true,
        CallState::Preparing
        | CallState::Searching
        | CallState::Matched
        | CallState::Connecting
        | CallState::InCall
        | CallState::Reconnecting => false,
    }
}

/// Drops the client and waits, within [`ENGINE_STOP_TIMEOUT`], for the
/// engine to finish its goodbye (its event stream closes when its driver
/// and audio tasks are gone), showing any last events. Returns whether it
/// finished in time.
pub async fn stop(
    client: Client,
    mut events: mpsc::Receiver<ClientEvent>,
    mut on_event: impl FnMut(&ClientEvent),
) -> bool {
    drop(client);
    let deadline = Instant::now() + ENGINE_STOP_TIMEOUT;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => on_event(&event),
                None => return true,
            },
            () = sleep_until(deadline) => return false,
        }
    }
}

/// Sleeps until `at`, or forever without one: a timer that may be unset,
/// for `select!`.
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits until the engine reports the call is up; an error if the call
/// settles first or the engine stops.
pub async fn until_in_call(events: &mut mpsc::Receiver<ClientEvent>) -> anyhow::Result<()> {
    loop {
        match events.recv().await {
            Some(ClientEvent::StateChanged(CallState::InCall)) => return Ok(()),
            Some(ClientEvent::StateChanged(state)) if is_settled(state) => {
                anyhow::bail!("the call ended before it began: {state:?}")
            }
            Some(_) => {}
            None => anyhow::bail!("the engine stopped"),
        }
    }
}

/// Two engine clients that search at once, once both are in the call
/// (within `within`): the benchmarks' two strangers.
pub type Pair = [(Client, mpsc::Receiver<ClientEvent>); 2];

/// Starts two clients, has both search, and waits until both are in the
/// call.
///
/// # Errors
/// A client that cannot start or search, a call that ends before it
/// begins, or no call within `within`.
pub async fn connect_pair(
    backend: &Backend,
    audio: [Arc<dyn AudioIo>; 2],
    within: Duration,
) -> anyhow::Result<Pair> {
    let [a_audio, b_audio] = audio;
    let (a, mut a_events) = start(backend, a_audio)?;
    let (b, mut b_events) = start(backend, b_audio)?;
    a.search().await?;
    b.search().await?;
    tokio::time::timeout(within, async {
        tokio::try_join!(until_in_call(&mut a_events), until_in_call(&mut b_events))
    })
    .await
    .context("no call within the setup timeout")??;
    Ok([(a, a_events), (b, b_events)])
}

/// Both hang up, then both engines are stopped (within
/// [`ENGINE_STOP_TIMEOUT`]); what goes wrong on the way no longer matters.
pub async fn hang_up_pair(pair: Pair) {
    let [(a, a_events), (b, b_events)] = pair;
    let _ = a.hang_up().await;
    let _ = b.hang_up().await;
    let _ = tokio::join!(stop(a, a_events, |_| {}), stop(b, b_events, |_| {}));
}
