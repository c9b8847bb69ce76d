//! Starting and stopping the whole backend: [`Server::start`] binds the HTTP
//! listener and (optionally) the embedded relay, then serves until
//! [`RunningServer::shutdown`] (or the shutdown token) ends it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{Config, ConfigError, TurnMode};
use crate::functions::TurnState;
use crate::jwt::{Claims, JwtKey};
use crate::relay::{EmbeddedRelay, RelayError};
use crate::secrets::generate_secret;
use crate::state::{AppState, SharedState};

/// After shutdown starts, in-flight HTTP requests get this long to finish
/// before their connections are dropped. Requests here are short; long-lived
/// websockets are expected to close on [`AppState::shutdown`] well before.
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Closing the relay tears down allocations in-process; anything longer
/// means it is stuck.
pub const RELAY_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the server could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid. Not retryable: fix it.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The HTTP address could not be bound (in use, or not local).
    /// Retryable once the port is free.
    #[error("cannot listen on {addr}: {source}")]
    BindHttp {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The embedded relay failed to start or stop.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The HTTP server stopped with an I/O error.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// A part did not stop within its timeout and was abandoned.
    #[error("{0} did not stop in time")]
    ShutdownTimedOut(&'static str),
    /// A server task panicked: a bug.
    #[error("{0} task panicked")]
    TaskPanicked(&'static str),
}

/// Entry point; see [`Server::start`].
#[derive(Debug)]
pub struct Server;

/// A started server: where it listens, its anon key, and how to stop it.
/// Dropping it starts shutdown too (without waiting).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTP address (real port when configured with port 0).
    pub http_addr: SocketAddr,
    /// Base URL for clients (`SUPABASE_URL`): `http://<addr>`, with an
    /// unspecified listen IP replaced by loopback.
    pub url: String,
    /// The anon key (`apikey`), a JWT signed with the server's secret.
    pub anon_key: String,
    /// Whether the JWT secret was generated for this run (so the anon key
    /// will differ next run).
    pub jwt_secret_generated: bool,
    /// The embedded relay's bound UDP address; `None` in external TURN mode.
    pub relay_addr: Option<SocketAddr>,
    /// The TURN URLs put in credentials.
    pub turn_urls: Vec<String>,
    /// The shared state (e.g. for tests to mint tokens with `state.jwt`).
    pub state: SharedState,
    shutdown: CancellationToken,
    _cancel_on_drop: DropGuard,
    http_task: JoinHandle<std::io::Result<()>>,
    relay_task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl Server {
    /// Validates `config`, resolves secrets (generating missing ones), binds
    /// the HTTP listener and the embedded relay, and starts serving.
    pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
        config.validate()?;

        let jwt_secret_generated = config.jwt_secret.is_none();
        let jwt = JwtKey::new(match &config.jwt_secret {
            Some(secret) => secret.expose().clone(),
            None => generate_secret(),
        });
        let anon_key = jwt.sign(&Claims::anon_key());
        let turn_secret = match &config.turn.secret {
            Some(secret) => secret.expose().clone(),
            None => generate_secret(),
        };

        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| ServerError::BindHttp {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| ServerError::BindHttp {
                addr: config.http_addr,
                source,
            })?;
        let url = format!("http://{}", client_reachable(http_addr));

        let (relay, turn_urls) = match &config.turn.mode {
            TurnMode::Embedded {
                listen,
                advertised_ip,
                advertised_port,
            } => {
                let advertised = advertised_ip.unwrap_or(listen.ip());
                let relay =
                    EmbeddedRelay::start(*listen, advertised, &config.turn.realm, &turn_secret)
                        .await?;
                let port = advertised_port.unwrap_or(relay.local_addr().port());
                let url = format!("turn:{}?transport=udp", SocketAddr::new(advertised, port));
                (Some(relay), vec![url])
            }
            TurnMode::External { urls } => (None, urls.clone()),
        };
        let relay_addr = relay.as_ref().map(EmbeddedRelay::local_addr);

        let shutdown = CancellationToken::new();
        let state = Arc::new(AppState::new(
            &config,
            jwt,
            url.clone(),
            TurnState::new(turn_secret, turn_urls.clone(), config.turn.credential_ttl),
            shutdown.child_token(),
        ));

        // Ends with the state's shutdown token.
        tokio::spawn(crate::matchmaking::expiry_task(state.clone()));

        let app = crate::http::router(state.clone());
        // Realtime pushes small frames that must not wait for Nagle's timer.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%err, "TCP_NODELAY not set");
            }
        });
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let http_task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let result = serve.await;
                // If serving ends on its own, take everything else down too,
                // so the process does not linger half-alive.
                shutdown.cancel();
                result
            }
        });

        let relay_task = relay.map(|relay| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                relay.close().await
            })
        });

        tracing::info!(
            %url,
            relay = relay_addr.is_some(),
            "VoiceMeet local backend started"
        );
        Ok(RunningServer {
            http_addr,
            url,
            anon_key,
            jwt_secret_generated,
            relay_addr,
            turn_urls,
            state,
            _cancel_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            http_task,
            relay_task,
        })
    }
}

impl RunningServer {
    /// A token that stops the server when cancelled, and is cancelled when
    /// the server stops on its own (e.g. the HTTP server failed).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to
    /// [`HTTP_DRAIN_TIMEOUT`]), closes the relay, and waits for all of it.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let Self {
            shutdown,
            http_task,
            relay_task,
            ..
        } = self;
        shutdown.cancel();

        let http = join_within(http_task, HTTP_DRAIN_TIMEOUT, "HTTP server").await;
        let relay = match relay_task {
            Some(task) => join_within(task, RELAY_CLOSE_TIMEOUT, "TURN relay").await,
            None => Ok(Ok(())),
        };
        http?.map_err(ServerError::Serve)?;
        relay??;
        tracing::info!("VoiceMeet local backend stopped");
        Ok(())
    }
}

async fn join_within<T>(
    mut task: JoinHandle<T>,
    timeout: Duration,
    what: &'static str,
) -> Result<T, ServerError> {
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ServerError::TaskPanicked(what)),
        Err(_) => {
            task.abort();
            tracing::warn!(part = what, "shutdown timed out; aborted");
            Err(ServerError::ShutdownTimedOut(what))
        }
    }
}

/// The address clients should dial for a listener bound to `addr`.
fn client_reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}
