//! Shared helpers for the integration tests: a server on ephemeral loopback
//! ports, an HTTP client, and a TURN client that tries one allocation.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use voicemeet_server::proto::Redacted;
use voicemeet_server::{Config, RunningServer, Server};
use webrtc_util::Conn;

/// Known secrets, so tests can forge, expire and recompute things.
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123456789";
pub const TURN_SECRET: &str = "test-turn-secret";

/// The header auth-js always sends, selecting the newer error shape.
pub const API_VERSION: (&str, &str) = ("X-Supabase-Api-Version", "2024-01-01");

/// How long one TURN allocation attempt may take. Loopback answers in
/// milliseconds; the `turn` client would otherwise retransmit for ~25 s
/// before reporting silence.
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(3);

/// Ephemeral ports, known secrets, no sign-up limit.
pub fn test_config() -> Config {
    let mut config = Config::ephemeral();
    config.jwt_secret = Some(Redacted::new(JWT_SECRET.to_owned()));
    config.turn.secret = Some(Redacted::new(TURN_SECRET.to_owned()));
    config.signup_rate_limit = None;
    config
}

/// A running server plus a client for it.
pub struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let server = Server::start(config).await.expect("server starts");
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// A request carrying the anon key, as supabase-js sends it.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .header("apikey", &self.server.anon_key)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http
            .get(self.url(path))
            .header("apikey", &self.server.anon_key)
    }

    /// Anonymous sign-in, asserting success; returns the session JSON.
    pub async fn sign_up(&self) -> Value {
        let response = self
            .post("/auth/v1/signup")
            .header(API_VERSION.0, API_VERSION.1)
            .json(&json!({}))
            .send()
            .await
            .expect("signup request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("signup JSON")
    }

    /// `turn-credentials` for a bearer token, returning status and JSON.
    pub async fn turn_credentials(&self, bearer: &str) -> (StatusCode, Value) {
        let response = self
            .post("/functions/v1/turn-credentials")
            .bearer_auth(bearer)
            .send()
            .await
            .expect("turn-credentials request");
        json_of(response).await
    }

    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}

pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

/// The `x-sb-error-code` header of a response.
pub fn error_code_header(response: &Response) -> Option<String> {
    response
        .headers()
        .get("x-sb-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn unix_now() -> u64 {
    voicemeet_server::clock::unix_now()
}

/// A TURN client that has allocated a relay; close it when done.
pub struct Allocation {
    pub client: Client,
    pub relay: Box<dyn Conn + Send + Sync>,
}

impl Allocation {
    pub fn relayed_addr(&self) -> SocketAddr {
        self.relay.local_addr().expect("relayed address")
    }

    pub async fn close(self) {
        let _ = self.relay.close().await;
        let _ = self.client.close().await;
    }
}

/// Tries one allocation on `server` with these credentials. `Err` carries the
/// `turn` client's error text (an error response, or a timeout).
pub async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<Allocation, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let client = Client::new(ClientConfig {
        stun_serv_addr: String::new(),
        turn_serv_addr: server.to_string(),
        username: username.to_owned(),
        password: password.to_owned(),
        // Learned from the server's 401 challenge.
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(ALLOCATE_TIMEOUT, client.allocate()).await {
        Ok(Ok(relay)) => Ok(Allocation {
            client,
            relay: Box::new(relay),
        }),
        Ok(Err(err)) => {
            let _ = client.close().await;
            Err(err.to_string())
        }
        Err(_) => {
            let _ = client.close().await;
            Err("allocation timed out".to_owned())
        }
    }
}

/// Proves the relay forwards both ways: the allocation sends to a local
/// peer socket, and the peer answers to the relayed address.
pub async fn assert_relays_both_ways(allocation: &Allocation) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer socket");
    let peer_addr = peer.local_addr().expect("peer address");
    let relayed = allocation.relayed_addr();

    // The first send also creates the permission for the peer.
    allocation
        .relay
        .send_to(b"ping", peer_addr)
        .await
        .expect("send through the relay");
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(ALLOCATE_TIMEOUT, peer.recv_from(&mut buf))
        .await
        .expect("peer receives within the timeout")
        .expect("peer receive");
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, relayed, "the peer sees only the relay's address");

    peer.send_to(b"pong", relayed).await.expect("peer answers");
    let (n, from) = tokio::time::timeout(ALLOCATE_TIMEOUT, allocation.relay.recv_from(&mut buf))
        .await
        .expect("client receives within the timeout")
        .expect("client receive");
    assert_eq!(&buf[..n], b"pong");
    assert_eq!(from, peer_addr);
}
