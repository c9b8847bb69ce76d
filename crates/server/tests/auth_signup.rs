//! Anonymous sign-up and `GET /auth/v1/user` over real HTTP, in GoTrue's
//! shapes, behind the gateway's `apikey` check.

mod common;

use common::{API_VERSION, TestServer, error_code_header, json_of, test_config, unix_now};
use reqwest::StatusCode;
use serde_json::{Value, json};
use voicemeet_server::jwt::JwtKey;

#[tokio::test]
async fn anonymous_sign_up_returns_a_gotrue_session() {
    let t = TestServer::start(test_config()).await;
    let before = unix_now();
    // The body supabase-js sends for signInAnonymously({ options: { data } }).
    let response = t
        .post("/auth/v1/signup")
        .bearer_auth(&t.server.anon_key)
        .header(API_VERSION.0, API_VERSION.1)
        .json(&json!({"data": {"nick": "otter"}, "gotrue_meta_security": {}}))
        .send()
        .await
        .expect("request");
    let (status, session) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{session}");

    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    let expires_at = session["expires_at"].as_u64().expect("expires_at");
    assert!((before + 3600..=unix_now() + 3600).contains(&expires_at));
    assert!(
        session["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 16)
    );

    let user = &session["user"];
    let id = user["id"].as_str().expect("user id");
    assert_eq!(id.len(), 36, "a UUID");
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["email"], "");
    assert_eq!(user["phone"], "");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "anonymous", "providers": ["anonymous"]})
    );
    assert_eq!(user["user_metadata"], json!({"nick": "otter"}));
    assert_eq!(user["identities"], json!([]));
    assert_eq!(user["is_anonymous"], true);
    for field in ["created_at", "updated_at"] {
        let ts = user[field].as_str().expect(field);
        assert!(ts.ends_with('Z') && ts.len() == 20, "{field}: {ts}");
    }

    let access_token = session["access_token"].as_str().expect("access token");
    let claims = JwtKey::new(common::JWT_SECRET)
        .verify(access_token, unix_now())
        .expect("access token verifies with the server secret");
    assert_eq!(claims.sub.as_deref(), Some(id));
    assert_eq!(claims.role, "authenticated");
    assert_eq!(claims.aud.as_deref(), Some("authenticated"));
    assert_eq!(claims.exp, expires_at);
    assert_eq!(claims.is_anonymous, Some(true));
    assert!(claims.session_id.is_some());
    assert_eq!(claims.iss, Some(format!("{}/auth/v1", t.server.url)));
    t.stop().await;
}

#[tokio::test]
async fn every_sign_up_is_a_new_user() {
    let t = TestServer::start(test_config()).await;
    let a = t.sign_up().await;
    let b = t.sign_up().await;
    assert_ne!(a["user"]["id"], b["user"]["id"]);
    assert_ne!(a["refresh_token"], b["refresh_token"]);
    t.stop().await;
}

#[tokio::test]
async fn the_gateway_refuses_missing_and_invalid_api_keys() {
    let t = TestServer::start(test_config()).await;
    let signup = t.url("/auth/v1/signup");

    let response = t
        .http
        .post(&signup)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({
                "message": "No API key found in request",
                "hint": "No `apikey` request header or url param was found."
            })
        )
    );

    let session = t.sign_up().await;
    let forged = JwtKey::new("another-secret-another-secret-another-secret")
        .sign(&voicemeet_server::jwt::Claims::anon_key());
    for bad_key in [
        "nonsense",
        forged.as_str(),
        // A user's access token is not an API key.
        session["access_token"].as_str().expect("token"),
    ] {
        let response = t
            .http
            .post(&signup)
            .header("apikey", bad_key)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["message"], "Invalid API key");
    }

    // Like the hosted gateway, the key may also be a query parameter.
    let response = t
        .http
        .post(format!("{signup}?apikey={}", t.server.anon_key))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn the_body_must_be_json_in_both_error_shapes() {
    let t = TestServer::start(test_config()).await;

    // auth-js's header: {"code":"<error_code>","message":..}
    let response = t
        .post("/auth/v1/signup")
        .header(API_VERSION.0, API_VERSION.1)
        .send()
        .await
        .expect("request");
    assert_eq!(error_code_header(&response).as_deref(), Some("bad_json"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Could not parse request body as JSON")),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");

    // No header: {"code":<status>,"error_code":..,"msg":..}
    let response = t
        .post("/auth/v1/signup")
        .body("not json")
        .send()
        .await
        .expect("request");
    assert_eq!(error_code_header(&response).as_deref(), Some("bad_json"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    assert_eq!(body["error_code"], "bad_json");
    assert!(body["msg"].is_string(), "{body}");
    t.stop().await;
}

#[tokio::test]
async fn only_anonymous_sign_up_exists() {
    let t = TestServer::start(test_config()).await;
    for (body, code) in [
        (
            json!({"email": "a@example.test", "password": "pw123456"}),
            "email_provider_disabled",
        ),
        (
            json!({"phone": "+15555550100", "password": "pw123456"}),
            "phone_provider_disabled",
        ),
    ] {
        let response = t
            .post("/auth/v1/signup")
            .header(API_VERSION.0, API_VERSION.1)
            .json(&body)
            .send()
            .await
            .expect("request");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], code);
    }
    // Empty strings count as absent, as in GoTrue.
    let response = t
        .post("/auth/v1/signup")
        .json(&json!({"email": "", "phone": ""}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn get_user_returns_the_signed_in_user() {
    let t = TestServer::start(test_config()).await;
    let session = t.sign_up().await;
    let access_token = session["access_token"].as_str().expect("token");

    let response = t
        .get("/auth/v1/user")
        .bearer_auth(access_token)
        .send()
        .await
        .expect("request");
    let (status, user) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user, session["user"]);

    let response = t
        .get("/auth/v1/user")
        .header(API_VERSION.0, API_VERSION.1)
        .send()
        .await
        .expect("request");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "no_authorization");

    let anon_key = t.server.anon_key.clone();
    for bad in ["garbage", anon_key.as_str()] {
        let response = t
            .get("/auth/v1/user")
            .header(API_VERSION.0, API_VERSION.1)
            .bearer_auth(bad)
            .send()
            .await
            .expect("request");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "bad_jwt");
    }
    t.stop().await;
}

#[tokio::test]
async fn the_anon_key_depends_only_on_the_secret() {
    let a = TestServer::start(test_config()).await;
    let b = TestServer::start(test_config()).await;
    assert_eq!(a.server.anon_key, b.server.anon_key);
    assert!(!a.server.jwt_secret_generated);
    let mut random = test_config();
    random.jwt_secret = None;
    let c = TestServer::start(random).await;
    assert!(c.server.jwt_secret_generated);
    assert_ne!(c.server.anon_key, a.server.anon_key);
    let claims: Value = {
        let payload = a.server.anon_key.split('.').nth(1).expect("payload");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    assert_eq!(claims["role"], "anon");
    for t in [a, b, c] {
        t.stop().await;
    }
}
