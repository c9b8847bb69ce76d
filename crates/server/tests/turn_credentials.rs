//! `POST /functions/v1/turn-credentials`: Cloudflare's response shape, TURN
//! REST credentials that verify with the shared secret, and 401 for anything
//! but a live user's token.

mod common;

use base64::Engine as _;
use common::{TURN_SECRET, TestServer, json_of, test_config, unix_now};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;
use voicemeet_server::TurnMode;
use voicemeet_server::jwt::{Claims, JwtKey};
use voicemeet_server::turn_rest::rest_password;

/// base64(HMAC-SHA1(secret, username)), computed here independently of the
/// server's implementation.
fn hmac_sha1_b64(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[test]
fn password_matches_the_turn_rest_test_vector() {
    assert_eq!(
        hmac_sha1_b64("foobar", "1599491771"),
        "Tpz/nKkyvX/vMSLKvL4sbtBt8Vs="
    );
    assert_eq!(
        rest_password("foobar", "1599491771"),
        "Tpz/nKkyvX/vMSLKvL4sbtBt8Vs="
    );
}

#[tokio::test]
async fn credentials_have_cloudflares_shape_and_a_valid_hmac() {
    let t = TestServer::start(test_config()).await;
    let session = t.sign_up().await;
    let user_id = session["user"]["id"].as_str().expect("user id");
    let before = unix_now();
    let (status, body) = t
        .turn_credentials(session["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let servers = body["iceServers"].as_array().expect("iceServers array");
    assert_eq!(servers.len(), 1);
    let server = servers[0].as_object().expect("object");
    let mut keys: Vec<&str> = server.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["credential", "urls", "username"]);
    let relay = t.server.relay_addr.expect("embedded relay");
    assert_eq!(
        server["urls"],
        json!([format!("turn:127.0.0.1:{}?transport=udp", relay.port())])
    );

    let username = server["username"].as_str().expect("username");
    let (expiry, id) = username.split_once(':').expect("<expiry>:<id>");
    assert_eq!(id, user_id);
    let expiry: u64 = expiry.parse().expect("numeric expiry");
    assert!((before + 86_400..=unix_now() + 86_400).contains(&expiry));
    assert_eq!(server["credential"], hmac_sha1_b64(TURN_SECRET, username));
    t.stop().await;
}

#[tokio::test]
async fn a_shorter_ttl_can_be_requested() {
    let t = TestServer::start(test_config()).await;
    let session = t.sign_up().await;
    let token = session["access_token"].as_str().expect("token");
    let request = |body: Value| {
        t.post("/functions/v1/turn-credentials")
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let (status, body) = json_of(request(json!({"ttl": 600})).await.expect("request")).await;
    assert_eq!(status, StatusCode::CREATED);
    let username = body["iceServers"][0]["username"]
        .as_str()
        .expect("username");
    let expiry: u64 = username
        .split(':')
        .next()
        .and_then(|e| e.parse().ok())
        .expect("expiry");
    assert!(expiry <= unix_now() + 600 && expiry + 600 >= unix_now() + 590);

    for bad in [
        json!({"ttl": 0}),
        json!({"ttl": 172_801}),
        json!({"ttl": "long"}),
    ] {
        let (status, body) = json_of(request(bad.clone()).await.expect("request")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["code"], 400);
    }
    t.stop().await;
}

#[tokio::test]
async fn anything_but_a_live_users_token_gets_401() {
    let t = TestServer::start(test_config()).await;
    let session = t.sign_up().await;
    let key = JwtKey::new(common::JWT_SECRET);
    let claims = key
        .verify(session["access_token"].as_str().expect("token"), unix_now())
        .expect("valid token");

    let expired = key.sign(&Claims {
        exp: unix_now() - 1,
        ..claims.clone()
    });
    let forged = JwtKey::new("another-secret-another-secret-another-secret").sign(&claims);
    for bad in ["garbage", expired.as_str(), forged.as_str()] {
        assert_eq!(
            t.turn_credentials(bad).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"code": 401, "message": "Invalid JWT"})
            ),
            "{bad}"
        );
    }

    let (status, body) = t.turn_credentials(&t.server.anon_key).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the anon key is not a user"
    );
    assert_eq!(body["code"], 401);

    let response = t
        .post("/functions/v1/turn-credentials")
        .send()
        .await
        .expect("request");
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "Missing authorization header"})
        )
    );

    // The functions gateway wants the apikey too.
    let response = t
        .http
        .post(t.url("/functions/v1/turn-credentials"))
        .bearer_auth(session["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "No API key found in request");
    t.stop().await;
}

#[tokio::test]
async fn external_mode_hands_out_the_configured_urls() {
    let mut config = test_config();
    let urls = vec![
        "turn:192.0.2.10:3478?transport=udp".to_owned(),
        "turns:turn.example.test:5349?transport=tcp".to_owned(),
    ];
    config.turn.mode = TurnMode::External { urls: urls.clone() };
    let t = TestServer::start(config).await;
    assert_eq!(t.server.relay_addr, None);
    let session = t.sign_up().await;
    let (status, body) = t
        .turn_credentials(session["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["iceServers"][0]["urls"], json!(urls));
    let username = body["iceServers"][0]["username"]
        .as_str()
        .expect("username");
    assert_eq!(
        body["iceServers"][0]["credential"],
        hmac_sha1_b64(TURN_SECRET, username)
    );
    t.stop().await;
}
