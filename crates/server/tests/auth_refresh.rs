//! Refresh tokens over real HTTP: single use, rotating, and reuse revokes the
//! session.

mod common;

use common::{API_VERSION, TestServer, error_code_header, json_of, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn refresh(t: &TestServer, refresh_token: &Value) -> reqwest::Response {
    t.post("/auth/v1/token?grant_type=refresh_token")
        .header(API_VERSION.0, API_VERSION.1)
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .expect("refresh request")
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let t = TestServer::start(test_config()).await;
    let first = t.sign_up().await;
    let (status, second) = json_of(refresh(&t, &first["refresh_token"]).await).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert!(second["access_token"].is_string());
    assert_eq!(second["token_type"], "bearer");
    assert_eq!(second["user"]["id"], first["user"]["id"]);

    let (status, third) = json_of(refresh(&t, &second["refresh_token"]).await).await;
    assert_eq!(status, StatusCode::OK, "{third}");

    let response = t
        .get("/auth/v1/user")
        .bearer_auth(third["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn reuse_is_refused_and_revokes_the_session() {
    let t = TestServer::start(test_config()).await;
    let first = t.sign_up().await;
    let (_, second) = json_of(refresh(&t, &first["refresh_token"]).await).await;

    let response = refresh(&t, &first["refresh_token"]).await;
    assert_eq!(
        error_code_header(&response).as_deref(),
        Some("refresh_token_already_used")
    );
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::BAD_REQUEST,
            json!({
                "code": "refresh_token_already_used",
                "message": "Invalid Refresh Token: Already Used"
            })
        )
    );

    // The whole session is gone: its newest refresh token and its access
    // tokens stop working too.
    let (status, body) = json_of(refresh(&t, &second["refresh_token"]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "refresh_token_already_used");
    let access_token = second["access_token"].as_str().expect("token");
    let response = t
        .get("/auth/v1/user")
        .header(API_VERSION.0, API_VERSION.1)
        .bearer_auth(access_token)
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "session_not_found");
    let (status, _) = t.turn_credentials(access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn unknown_refresh_tokens_are_not_found() {
    let t = TestServer::start(test_config()).await;
    // Legacy shape: no version header.
    let response = t
        .post("/auth/v1/token?grant_type=refresh_token")
        .json(&json!({ "refresh_token": "never-issued" }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::BAD_REQUEST,
            json!({
                "code": 400,
                "error_code": "refresh_token_not_found",
                "msg": "Invalid Refresh Token: Refresh Token Not Found"
            })
        )
    );
    t.stop().await;
}

#[tokio::test]
async fn refresh_needs_the_grant_type_and_a_json_body() {
    let t = TestServer::start(test_config()).await;
    let session = t.sign_up().await;
    for path in ["/auth/v1/token", "/auth/v1/token?grant_type=password"] {
        let response = t
            .post(path)
            .header(API_VERSION.0, API_VERSION.1)
            .json(&json!({ "refresh_token": session["refresh_token"] }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let response = t
        .post("/auth/v1/token?grant_type=refresh_token")
        .header(API_VERSION.0, API_VERSION.1)
        .body("{")
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_json");

    // The refresh token was not consumed by the failed attempts.
    let (status, _) = json_of(refresh(&t, &session["refresh_token"]).await).await;
    assert_eq!(status, StatusCode::OK);
    t.stop().await;
}
