//! Plate QC on the workstation: a result its plate withholds (a failed control) or holds (the
//! controls not decided yet), and a control well's own decision, show why on the decision page,
//! offer no signature, and a signature posted anyway is refused and records nothing; the plate
//! page says the plate's state.

use crate::client::{Client, router};
use crate::common::{PASSWORD, Seed, TestDb, count, seed, user};
use axum::http::StatusCode;
use iari::domain::Role;

async fn plate(db: &TestDb, plate: &str, state: &str, detail: Option<&str>) {
    sqlx::query(
        "INSERT INTO plates (plate_id, qc_state, deadline, settled_at, detail) \
         VALUES ($1, $2, now() + interval '1 hour', \
                 CASE WHEN $2 = 'waiting' THEN NULL ELSE now() END, $3)",
    )
    .bind(plate)
    .bind(state)
    .bind(detail)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// Posts a confirmation of `grade` with the right password, as the decision page's form would.
async fn confirm(c: &mut Client, id: i64, grade: &str, csrf: &str) -> crate::client::Answer {
    let fields = [
        ("csrf", csrf),
        ("grade", grade),
        ("meaning", "confirmed"),
        ("reason", ""),
        ("comment", ""),
        ("password", PASSWORD),
    ];
    c.post(&format!("/decisions/{id}/sign"), &fields).await
}

/// Signs in as a new technologist `login` and opens decision `id`'s page proposing `grade`: the
/// page says `why` and offers no signature, and a confirmation posted anyway is refused with
/// `why` and records nothing. Returns the signed-in client.
async fn refused(db: &TestDb, id: i64, grade: &str, login: &str, why: &str) -> Client {
    user(&db.pool, login, Role::Technologist).await;
    let mut c = Client::new(&router(db));
    c.sign_in(login).await;
    let page = c
        .page(&format!(
            "/decisions/{id}?grade={}",
            grade.replace('+', "%2B")
        ))
        .await;
    assert!(page.body.contains("data-test=\"held\""), "{}", page.body);
    assert!(page.body.contains(why), "{}", page.body);
    assert!(
        !page.body.contains("data-test=\"sign-password\""),
        "no signature offered"
    );
    let a = confirm(&mut c, id, grade, &page.csrf()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains(why), "{}", a.body);
    assert_eq!(count(&db.pool, "signatures").await, 0);
    assert_eq!(count(&db.pool, "reviews").await, 0);
    c
}

#[tokio::test]
async fn a_result_withheld_by_a_failed_plate_cannot_be_signed() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            plate: "PLT-F".into(),
            needs_review: true,
            flags: vec!["disagree_adjacent"],
            ..Seed::default()
        },
    )
    .await;
    plate(
        &db,
        "PLT-F",
        "failed",
        Some("negative_control H11 read 2+, expected neg"),
    )
    .await;
    let mut c = refused(&db, id, "2+", "tech.q", "failed quality control").await;
    let p = c.page("/plates/PLT-F").await;
    assert!(p.body.contains("data-state=\"failed\""), "{}", p.body);
    assert!(
        p.body.contains("negative_control H11 read 2+"),
        "{}",
        p.body
    );
    db.drop().await;
}

#[tokio::test]
async fn a_result_held_for_its_controls_cannot_be_signed_yet() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            plate: "PLT-W".into(),
            needs_review: true,
            flags: vec!["tie"],
            ..Seed::default()
        },
    )
    .await;
    // Held: plate QC keeps the outbox empty until the controls are decided.
    sqlx::query("DELETE FROM hl7_messages WHERE decision_id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    plate(&db, "PLT-W", "waiting", None).await;
    let mut c = refused(&db, id, "3+", "tech.w", "waits for its controls").await;
    let p = c.page("/plates/PLT-W").await;
    assert!(p.body.contains("data-state=\"waiting\""), "{}", p.body);
    db.drop().await;
}

#[tokio::test]
async fn a_control_wells_decision_is_not_a_result_to_sign() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            plate: "PLT-C".into(),
            well: "H11".into(),
            grade: "neg",
            votes: ["neg"; 5],
            role: Some("negative_control"),
            ..Seed::default()
        },
    )
    .await;
    plate(&db, "PLT-C", "passed", None).await;
    refused(
        &db,
        id,
        "neg",
        "tech.c",
        "a control is never a patient result to sign",
    )
    .await;
    db.drop().await;
}
