//! The per-IP anonymous sign-up limit.

mod common;

use std::time::Duration;

use common::{API_VERSION, TestServer, error_code_header, json_of, test_config};
use reqwest::StatusCode;
use serde_json::json;
use voicemeet_server::RateLimit;

#[tokio::test]
async fn sign_ups_over_the_per_ip_limit_get_429() {
    let mut config = test_config();
    config.signup_rate_limit = Some(RateLimit {
        max: 3,
        per: Duration::from_secs(3600),
    });
    let t = TestServer::start(config).await;
    for _ in 0..3 {
        t.sign_up().await;
    }

    let response = t
        .post("/auth/v1/signup")
        .header(API_VERSION.0, API_VERSION.1)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        error_code_header(&response).as_deref(),
        Some("over_request_rate_limit")
    );
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"code": "over_request_rate_limit", "message": "Request rate limit reached"})
        )
    );

    // Clients without the version header get the legacy shape.
    let response = t
        .post("/auth/v1/signup")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], 429);
    assert_eq!(body["error_code"], "over_request_rate_limit");
    t.stop().await;
}

#[tokio::test]
async fn the_limit_is_configurable_for_tests() {
    // More than the default 30 per hour.
    let t = TestServer::start(test_config()).await;
    for _ in 0..40 {
        t.sign_up().await;
    }
    t.stop().await;
}
