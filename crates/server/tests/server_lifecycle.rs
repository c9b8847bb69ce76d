//! Starting on ephemeral ports and shutting down cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, test_config};
use voicemeet_server::{Config, ConfigError, Server, ServerError};

/// An idle server stops within milliseconds; allow for a loaded machine.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn shutdown_releases_both_ports() {
    let t = TestServer::start(test_config()).await;
    let http = t.server.http_addr;
    let relay = t.server.relay_addr.expect("embedded relay");
    assert_ne!(http.port(), 0);
    assert_ne!(relay.port(), 0);
    assert_eq!(t.server.url, format!("http://{http}"));
    t.stop().await;

    // Both ports can be bound again right away.
    let mut config = test_config();
    config.http_addr = http;
    config.turn.mode = voicemeet_server::TurnMode::Embedded {
        listen: relay,
        advertised_ip: None,
        advertised_port: None,
    };
    let again = TestServer::start(config).await;
    assert_eq!(again.server.http_addr, http);
    again.stop().await;
}

#[tokio::test]
async fn the_shutdown_token_stops_the_server() {
    let t = TestServer::start(test_config()).await;
    let url = t.url("/auth/v1/signup");
    t.server.shutdown_token().cancel();
    // Stopping is asynchronous; poll until nothing listens any more.
    let deadline = Instant::now() + STOP_TIMEOUT;
    while reqwest::Client::new()
        .post(&url)
        .body("{}")
        .send()
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "still serving after {STOP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.stop().await;
}

#[tokio::test]
async fn invalid_configs_and_busy_ports_are_reported() {
    let mut config = Config::ephemeral();
    config.signup_rate_limit = Some(voicemeet_server::RateLimit {
        max: 0,
        per: Duration::from_secs(1),
    });
    assert!(matches!(
        Server::start(config).await,
        Err(ServerError::Config(ConfigError::BadRateLimit))
    ));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut config = Config::ephemeral();
    config.http_addr = busy.local_addr().expect("addr");
    assert!(matches!(
        Server::start(config).await,
        Err(ServerError::BindHttp { .. })
    ));
}
