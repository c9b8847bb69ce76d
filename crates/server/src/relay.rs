//! The embedded TURN relay: the `turn` crate's server on one UDP socket,
//! checking TURN REST credentials with [`RestAuthHandler`]. Relayed
//! allocations bind ephemeral UDP ports on the listen IP and are announced
//! with the advertised IP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ::turn::relay::relay_static::RelayAddressGeneratorStatic;
use ::turn::server::Server as TurnServer;
use ::turn::server::config::{ConnConfig, ServerConfig};
use tokio::net::UdpSocket;
use webrtc_util::vnet::net::Net;

use crate::turn_rest::RestAuthHandler;

/// Channel bindings live this long without refresh. Zero selects the `turn`
/// crate's default (RFC 8656's 10 minutes).
const CHANNEL_BIND_TIMEOUT: Duration = Duration::ZERO;
/// `turn`'s `Server::close` returns before its read loop has dropped the
/// listen socket; we poll this often until it has, so the port is free when
/// [`EmbeddedRelay::close`] returns...
const SOCKET_RELEASE_POLL: Duration = Duration::from_millis(5);
/// ...for at most this long: the loop exits right after the close command,
/// so longer means it is wedged, and we stop waiting.
const SOCKET_RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the relay could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The UDP listen socket could not be bound (address in use, no such
    /// interface). Retryable once the port is free.
    #[error("cannot bind the TURN relay to {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `turn` crate refused the configuration or failed to close. Not
    /// retryable.
    #[error("TURN server: {0}")]
    Turn(#[from] ::turn::Error),
}

/// A running embedded relay. Stop it with [`EmbeddedRelay::close`]; dropping
/// it leaves the relay's tasks running until the runtime ends.
pub struct EmbeddedRelay {
    server: TurnServer,
    /// Our reference to the listen socket, to see when the server let go.
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
}

impl EmbeddedRelay {
    /// Binds `listen` and starts serving. `advertised_ip` goes into relayed
    /// addresses; `secret` checks credentials.
    pub async fn start(
        listen: SocketAddr,
        advertised_ip: IpAddr,
        realm: &str,
        secret: &str,
    ) -> Result<Self, RelayError> {
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| RelayError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| RelayError::Bind {
            addr: listen,
            source,
        })?;
        let socket = Arc::new(socket);
        let server = TurnServer::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: socket.clone(),
                relay_addr_generator: Box::new(RelayAddressGeneratorStatic {
                    relay_address: advertised_ip,
                    address: listen.ip().to_string(),
                    net: Arc::new(Net::new(None)),
                }),
            }],
            realm: realm.to_owned(),
            auth_handler: Arc::new(RestAuthHandler::new(secret)),
            channel_bind_timeout: CHANNEL_BIND_TIMEOUT,
            alloc_close_notify: None,
        })
        .await?;
        Ok(Self {
            server,
            socket,
            local_addr,
        })
    }

    /// The bound UDP address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every allocation and the listen socket, and waits (briefly)
    /// until the listen port is released.
    pub async fn close(self) -> Result<(), RelayError> {
        self.server.close().await?;
        let released = tokio::time::timeout(SOCKET_RELEASE_TIMEOUT, async {
            while Arc::strong_count(&self.socket) > 1 {
                tokio::time::sleep(SOCKET_RELEASE_POLL).await;
            }
        })
        .await;
        if released.is_err() {
            tracing::warn!("TURN relay socket still held after close");
        }
        Ok(())
    }
}
