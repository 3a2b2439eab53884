//! Retracting a result the LIS holds: only a supervisor or director, with the password and a
//! reason; the withdrawal goes to the outbox under the result's filler number with the signer's
//! words, the signature is in the chain and on the page, the decision is back on the worklist, a
//! second retraction is refused, and the next signed review reports it again as a correction.
//! The same through the API and `iari retract`.

use crate::client::{Client, router};
use crate::common::{PASSWORD, Seed, TestDb, count, reasons, run_cli_with, seed, settings, user};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use iari::audit::{SignRequest, sign_review, verify};
use iari::domain::{Grade, Role};
use serde_json::{Value, json};
use std::process::ExitCode;
use tower::ServiceExt;

/// `(result_status, filler_number, note)` of every outbox message of decision `id`, in order.
async fn messages(db: &TestDb, id: i64) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT result_status, filler_number, note FROM hl7_messages \
         WHERE decision_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn form<'a>(csrf: &'a str, reason: &'a str, password: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("csrf", csrf),
        ("reason", reason),
        ("comment", "photographed well B1 instead"),
        ("password", password),
    ]
}

#[tokio::test]
async fn a_supervisor_retracts_a_final_result_from_the_decision_page() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let app = router(&db);
    let retract = format!("/decisions/{id}/retract");

    // A technologist is offered no retraction and may not post one.
    user(&db.pool, "tech.r", Role::Technologist).await;
    let mut tech = Client::new(&app);
    tech.sign_in("tech.r").await;
    let page = tech.page(&format!("/decisions/{id}")).await;
    assert!(!page.body.contains("data-test=\"retract\""));
    let csrf = page.csrf();
    let a = tech.post(&retract, &form(&csrf, "other", PASSWORD)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    user(&db.pool, "sup.r", Role::Supervisor).await;
    let mut c = Client::new(&app);
    c.sign_in("sup.r").await;
    let page = c.page(&format!("/decisions/{id}")).await;
    assert!(page.body.contains("data-test=\"retract\""), "{}", page.body);
    let csrf = page.csrf();
    let a = c.post(&retract, &form(&csrf, "other", "not it")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong password"), "{}", a.body);
    let a = c.post(&retract, &form(&csrf, "", PASSWORD)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("needs a reason code"), "{}", a.body);
    assert_eq!(count(&db.pool, "signatures").await, 0);
    assert_eq!(messages(&db, id).await.len(), 1);

    let a = c
        .post(&retract, &form(&csrf, "image_artefact", PASSWORD))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), format!("/decisions/{id}?retracted=1"));
    let m = messages(&db, id).await;
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].0.as_str(), m[1].0.as_str()), ("F", "W"));
    assert_eq!(m[0].1, m[1].1, "the same filler number");
    assert_eq!(
        m[1].2.as_deref(),
        Some(
            "Result withdrawn by SUP.R Tester: Image artefact (bubble, debris, focus). \
             photographed well B1 instead"
        )
    );
    let page = c.page(&format!("/decisions/{id}")).await;
    assert!(
        page.body.contains("Withdrawn from the LIS"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Retracted"), "{}", page.body);
    assert!(
        !page.body.contains("data-test=\"retract\""),
        "nothing left to retract"
    );
    let list = c.page("/worklist").await;
    assert!(
        list.body.contains(&format!("data-decision-id=\"{id}\"")),
        "back on the worklist"
    );
    let v = verify(&db.pool).await.unwrap();
    assert_eq!(v.first_break, None);
    assert_eq!(v.signatures, 1);

    // Once withdrawn, twice is refused.
    let a = c.post(&retract, &form(&csrf, "other", PASSWORD)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("already withdrawn"), "{}", a.body);

    // Reported again: a correction, signed by a supervisor (a technologist signs only
    // preliminary results), off the worklist again.
    let tech = user(&db.pool, "tech.r2", Role::Technologist).await;
    let req = SignRequest {
        grade: Grade::P3,
        meaning: None,
        reason_code: Some("visual_read".into()),
        reason_text: None,
    };
    let refused = sign_review(&db.pool, &tech, id, &req, &reasons()).await;
    assert!(refused.is_err(), "{refused:?}");
    let sup = user(&db.pool, "sup.r2", Role::Supervisor).await;
    let o = sign_review(&db.pool, &sup, id, &req, &reasons())
        .await
        .unwrap();
    assert_eq!(o.result_status.map(|s| s.code()), Some("C"));
    let m = messages(&db, id).await;
    assert_eq!(
        m.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["F", "W", "C"]
    );
    let list = c.page("/worklist").await;
    assert!(!list.body.contains(&format!("data-decision-id=\"{id}\"")));
    db.drop().await;
}

async fn post_json(app: &axum::Router, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_api_and_the_command_line_retract_with_a_signature() {
    let db = TestDb::new().await;
    let app = iari::http::api::routes(db.pool.clone(), &settings().workstation);
    let a = seed(&db.pool, &Seed::default()).await;
    let b = seed(&db.pool, &Seed::default()).await;
    let token = |name: &'static str, role| {
        let pool = db.pool.clone();
        async move {
            user(&pool, name, role).await;
            iari::auth::tokens::issue(&pool, name, "test", "test")
                .await
                .unwrap()
        }
    };
    let tech = token("tech.api", Role::Technologist).await;
    let dir = token("dir.api", Role::Director).await;
    let uri = format!("/api/v1/decisions/{a}/retract");
    let body = |code: &str, pw: &str| json!({"reason": {"code": code}, "password": pw});
    let (s, _) = post_json(&app, &uri, &tech, body("other", PASSWORD)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post_json(&app, &uri, &dir, body("no_such_code", PASSWORD)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = post_json(&app, &uri, &dir, body("other", "wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = post_json(&app, &uri, &dir, body("other", PASSWORD)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["result_status"], "W");
    assert_eq!(v["meaning"], "retracted");
    assert_eq!(v["withdrawn_grade"], "2+");
    assert_eq!(messages(&db, a).await[1].0, "W");

    // `iari retract` asks for the signer like `iari review`.
    let b_s = b.to_string();
    let args = ["retract", b_s.as_str(), "--reason", "weak_reaction"];
    let wrong = run_cli_with(&db, &args, "dir.api\nnot it\n");
    assert_eq!(wrong, ExitCode::FAILURE);
    let ok = run_cli_with(&db, &args, &format!("dir.api\n{PASSWORD}\n"));
    assert_eq!(ok, ExitCode::SUCCESS);
    let m = messages(&db, b).await;
    assert_eq!(
        m.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["F", "W"]
    );
    assert_eq!(
        m[1].2.as_deref(),
        Some("Result withdrawn by DIR.API Tester: Weak or mixed-field reaction.")
    );
    let meanings: Vec<String> = sqlx::query_scalar("SELECT meaning FROM signatures ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(meanings, ["retracted", "retracted"]);
    db.drop().await;
}
