//! Real allocations against the embedded relay with the `turn` crate's
//! client: minted credentials work (and relay data both ways); wrong,
//! expired or malformed ones are refused.

mod common;

use common::{TURN_SECRET, TestServer, allocate, assert_relays_both_ways, test_config, unix_now};
use voicemeet_server::turn_rest::{mint, rest_password};

async fn minted_credentials(t: &TestServer) -> (String, String) {
    let session = t.sign_up().await;
    let (status, body) = t
        .turn_credentials(session["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let server = &body["iceServers"][0];
    (
        server["username"].as_str().expect("username").to_owned(),
        server["credential"]
            .as_str()
            .expect("credential")
            .to_owned(),
    )
}

#[tokio::test]
async fn minted_credentials_allocate_a_working_relay() {
    let t = TestServer::start(test_config()).await;
    let relay = t.server.relay_addr.expect("embedded relay");
    let (username, credential) = minted_credentials(&t).await;

    let allocation = allocate(relay, &username, &credential)
        .await
        .expect("allocation with minted credentials");
    let relayed = allocation.relayed_addr();
    assert_eq!(relayed.ip().to_string(), "127.0.0.1", "the advertised IP");
    assert_ne!(relayed.port(), relay.port());
    assert_relays_both_ways(&allocation).await;
    allocation.close().await;
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let t = TestServer::start(test_config()).await;
    let relay = t.server.relay_addr.expect("embedded relay");
    let (username, _) = minted_credentials(&t).await;
    let wrong = rest_password("not-the-secret", &username);
    let err = allocate(relay, &username, &wrong)
        .await
        .err()
        .expect("refused");
    assert!(
        err.contains("error response"),
        "refused with an error response: {err}"
    );
    t.stop().await;
}

#[tokio::test]
async fn an_expired_username_is_refused() {
    let t = TestServer::start(test_config()).await;
    let relay = t.server.relay_addr.expect("embedded relay");
    let expired = mint(TURN_SECRET, "some-user", unix_now() - 1);
    let err = allocate(relay, &expired.username, &expired.credential)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("error response"), "{err}");

    // The same secret with a future expiry works, so the refusal was the
    // expiry alone.
    let fresh = mint(TURN_SECRET, "some-user", unix_now() + 60);
    let allocation = allocate(relay, &fresh.username, &fresh.credential)
        .await
        .expect("fresh credentials");
    allocation.close().await;
    t.stop().await;
}

#[tokio::test]
async fn a_malformed_username_is_refused() {
    let t = TestServer::start(test_config()).await;
    let relay = t.server.relay_addr.expect("embedded relay");
    for username in ["alice", "soon:alice", "1900000000:"] {
        let password = rest_password(TURN_SECRET, username);
        let err = allocate(relay, username, &password)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("error response"), "{username}: {err}");
    }
    t.stop().await;
}
