//! The decisions API: bearer roles (401/403/200), filters and paging over HTTP, the review
//! endpoint, and the list filters the OpenAPI document names (its schemas: `openapi.rs`).

use crate::common::{PASSWORD, Seed, TestDb, count, seed, settings, user};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use iari::domain::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) fn app(db: &TestDb) -> axum::Router {
    iari::http::api::routes(db.pool.clone(), &settings().workstation)
}

/// A user with `role` and an API token of theirs.
pub(crate) async fn token(db: &TestDb, name: &str, role: Role) -> String {
    user(&db.pool, name, role).await;
    iari::auth::tokens::issue(&db.pool, name, "test", "test")
        .await
        .unwrap()
}

pub(crate) async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tokens_and_roles() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            ..Seed::default()
        },
    )
    .await;
    let app = app(&db);
    let tech = token(&db, "tech.api", Role::Technologist).await;
    let auditor = token(&db, "audit.api", Role::Auditor).await;
    let admin = token(&db, "admin.api", Role::Admin).await;
    let one = format!("/api/v1/decisions/{id}");
    let rev = format!("/api/v1/decisions/{id}/review");
    let body = json!({"grade": "2+", "meaning": "confirmed", "password": PASSWORD});
    let unknown = format!("{tech}x");
    for (method, uri) in [
        ("GET", "/api/v1/decisions"),
        ("GET", one.as_str()),
        ("POST", rev.as_str()),
    ] {
        for t in [None, Some("wrong"), Some(""), Some(unknown.as_str())] {
            let (s, v) = call(&app, method, uri, t, Some(body.clone())).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri} {t:?}");
            assert!(v["error"].is_string());
        }
        let (s, _) = call(&app, method, uri, Some(&admin), Some(body.clone())).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "the admin sees no results: {method} {uri}"
        );
    }
    let (s, _) = call(&app, "POST", &rev, Some(&auditor), Some(body.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an auditor signs nothing");
    assert_eq!(count(&db.pool, "reviews").await, 0);
    for t in [&auditor, &tech] {
        let (s, v) = call(&app, "GET", "/api/v1/decisions", Some(t), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["items"][0]["id"], id);
        let (s, v) = call(&app, "GET", &one, Some(t), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["decision"]["models"].as_array().unwrap().len(), 5);
    }
    let wrong_pw = json!({"grade": "2+", "meaning": "confirmed", "password": "not my password"});
    let (s, v) = call(&app, "POST", &rev, Some(&tech), Some(wrong_pw)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let failed: i32 =
        sqlx::query_scalar("SELECT failed_count FROM users WHERE username = 'tech.api'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(failed, 1, "counted toward the lock-out");
    let (s, v) = call(&app, "POST", &rev, Some(&tech), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["result_status"], "F");
    assert_eq!(v["meaning"], "confirmed");
    assert_eq!(count(&db.pool, "signatures").await, 1);
    // A disabled user's token stops working.
    iari::auth::users::set_disabled(&db.pool, "tech.api", true, "test")
        .await
        .unwrap();
    let (s, _) = call(&app, "GET", "/api/v1/decisions", Some(&tech), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    db.drop().await;
}

#[tokio::test]
async fn filters_paging_and_errors_over_http() {
    let db = TestDb::new().await;
    // Decided on 2026-11-26, the day the date filters below name; each its own capture.
    let on_the_day = || Seed {
        decided_at: Some("2026-11-26T10:00:00Z".parse().unwrap()),
        ..Seed::default()
    };
    let a = seed(
        &db.pool,
        &Seed {
            grade: "1+",
            ..on_the_day()
        },
    )
    .await;
    let b = seed(&db.pool, &on_the_day()).await;
    let c = seed(&db.pool, &on_the_day()).await;
    let app = app(&db);
    let read = token(&db, "reader", Role::Auditor).await;
    let sup = token(&db, "sup", Role::Supervisor).await;
    let t = Some(read.as_str());
    let (s, v) = call(&app, "GET", "/api/v1/decisions?grade=1%2B", t, None).await;
    assert_eq!(
        (
            s,
            v["items"].as_array().unwrap().len(),
            v["items"][0]["id"].as_i64()
        ),
        (StatusCode::OK, 1, Some(a))
    );
    let flagged =
        "/api/v1/decisions?flagged=false&delivery=pending&since=2026-11-26&until=2026-11-26";
    let (s, v) = call(&app, "GET", flagged, t, None).await;
    assert_eq!(
        (s, v["items"].as_array().unwrap().len()),
        (StatusCode::OK, 3),
        "{v}"
    );
    let (_, v) = call(&app, "GET", "/api/v1/decisions?flagged=true", t, None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    let (_, v) = call(&app, "GET", "/api/v1/decisions?limit=2", t, None).await;
    assert_eq!(v["next_after"], b);
    let (_, v) = call(
        &app,
        "GET",
        &format!("/api/v1/decisions?limit=2&after={b}"),
        t,
        None,
    )
    .await;
    assert_eq!(
        (v["items"][0]["id"].as_i64(), &v["next_after"]),
        (Some(c), &Value::Null)
    );
    let hostile = "/api/v1/decisions?accession=%27%3B%20DROP%20TABLE%20decisions%3B%20--";
    let (s, v) = call(&app, "GET", hostile, t, None).await;
    assert_eq!(
        (s, v["items"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    assert_eq!(count(&db.pool, "decisions").await, 3);
    for uri in [
        "/api/v1/decisions?grade=9%2B",
        "/api/v1/decisions?limit=x",
        "/api/v1/decisions?bogus=1",
        "/api/v1/decisions/abc",
    ] {
        let (s, v) = call(&app, "GET", uri, t, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert!(v["error"].is_string());
    }
    let (s, _) = call(&app, "GET", "/api/v1/decisions/424242", t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = Some(sup.as_str());
    let (s, v) = call(
        &app,
        "POST",
        &format!("/api/v1/decisions/{a}/review"),
        r,
        Some(json!({"grade": "2+", "meaning": "corrected", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("reason"), "{v}");
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/decisions/{a}/review"),
        r,
        Some(json!({"grade": "2+", "by": "x", "meaning": "confirmed", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the old `by` field is refused");
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/decisions/424242/review",
        r,
        Some(json!({"grade": "2+", "meaning": "confirmed", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    db.drop().await;
}

#[tokio::test]
async fn the_openapi_document_names_every_list_filter() {
    let db = TestDb::new().await;
    let (s, v) = call(&app(&db), "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    // Every list filter the handler accepts is documented.
    let params: Vec<&str> = v["paths"]["/api/v1/decisions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for f in [
        "capture",
        "accession",
        "plate",
        "well",
        "grade",
        "flagged",
        "delivery",
        "model_version",
        "since",
        "until",
        "limit",
        "after",
    ] {
        assert!(params.contains(&f), "{f}");
    }
    db.drop().await;
}

/// A token shorter than the issued shape never authenticates, even when its hash is in
/// `api_tokens` (a row imported or written by hand): guessing is bounded by the token's length.
#[tokio::test]
async fn short_tokens_are_refused_even_when_stored() {
    use sha2::{Digest, Sha256};
    let db = TestDb::new().await;
    let app = app(&db);
    let issued = token(&db, "tech.short", Role::Technologist).await;
    assert!(issued.len() >= iari::auth::tokens::MIN_LEN);
    let short = "iari_0123456789abcdef";
    sqlx::query(
        "INSERT INTO api_tokens (user_id, token_hash, label) \
         SELECT id, $1, 'imported' FROM users WHERE username = 'tech.short'",
    )
    .bind(Sha256::digest(short.as_bytes()).to_vec())
    .execute(&db.pool)
    .await
    .unwrap();
    let (s, _) = call(&app, "GET", "/api/v1/decisions", Some(&issued), None).await;
    assert_eq!(s, StatusCode::OK, "the issued token works");
    let (s, v) = call(&app, "GET", "/api/v1/decisions", Some(short), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a stored short token: {v}");
    db.drop().await;
}
