//! Signing on the decision page: the password re-entered (a wrong one refused and counted), a
//! correction needing a reason, the decision leaving the worklist, the signature shown, and the
//! HL7 message naming the signer.

use crate::client::{Client, router};
use crate::common::{PASSWORD, Seed, TestDb, count, seed, user};
use axum::http::StatusCode;
use iari::domain::Role;

#[tokio::test]
async fn sign_with_the_password_then_the_row_leaves_the_worklist() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            flags: vec!["tie"],
            ..Seed::default()
        },
    )
    .await;
    let app = router(&db);
    user(&db.pool, "tech.s", Role::Technologist).await;
    let mut c = Client::new(&app);
    c.sign_in("tech.s").await;
    let list = c.page("/worklist").await;
    assert!(list.body.contains(&format!("data-decision-id=\"{id}\"")));
    let form = c.page(&format!("/decisions/{id}?grade=3%2B")).await;
    assert!(form.body.contains("data-test=\"sign-password\""));
    let csrf = form.csrf();
    let sign = format!("/decisions/{id}/sign");
    let fields = |pw: &'static str, reason: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("grade", "3+".to_string()),
            ("meaning", "corrected".to_string()),
            ("reason", reason.to_string()),
            ("comment", "rim visible".to_string()),
            ("password", pw.to_string()),
        ]
    };
    let wrong = fields("not the password", "visual_read");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = c.post(&sign, &wrong).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong password"), "{}", a.body);
    let failed: i32 =
        sqlx::query_scalar("SELECT failed_count FROM users WHERE username = 'tech.s'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(failed, 1, "counted toward the lock-out");
    let no_reason = fields(PASSWORD, "");
    let no_reason: Vec<(&str, &str)> = no_reason.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = c.post(&sign, &no_reason).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("needs a reason"), "{}", a.body);
    assert_eq!(count(&db.pool, "signatures").await, 0);

    let good = fields(PASSWORD, "visual_read");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = c.post(&sign, &good).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.location().starts_with(&format!("/worklist?signed={id}")));
    let list = c.page("/worklist").await;
    assert!(
        !list.body.contains(&format!("data-decision-id=\"{id}\"")),
        "off the worklist"
    );
    let page = c.page(&format!("/decisions/{id}")).await;
    assert!(page.body.contains("data-test=\"signature\""));
    assert!(page.body.contains("TECH.S Tester (tech.s, technologist)"));
    assert!(page.body.contains("Reason: visual_read"));
    // The final result for the LIS names the signer (OBX-16, OBR-32) when the sender builds it.
    let msg: i64 = sqlx::query_scalar(
        "SELECT id FROM hl7_messages WHERE decision_id = $1 AND review_id IS NOT NULL",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let reports = iari::deliver::report::load_many(&db.pool, &[msg])
        .await
        .unwrap();
    let report = reports[0].1.as_ref().unwrap();
    let settings = crate::client::settings(&db);
    let text = iari::deliver::hl7::build(report, &settings.lis, chrono::Utc::now());
    let obx = text.split('\r').find(|s| s.starts_with("OBX|1|")).unwrap();
    assert_eq!(
        obx.split('|').nth(16),
        Some("tech.s^Tester^TECH.S"),
        "{obx}"
    );
    let obr = text.split('\r').find(|s| s.starts_with("OBR|")).unwrap();
    assert_eq!(
        obr.split('|').nth(32),
        Some("tech.s&Tester&TECH.S"),
        "{obr}"
    );
    db.drop().await;
}

#[tokio::test]
async fn an_auditor_sees_signatures_and_cannot_sign() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            ..Seed::default()
        },
    )
    .await;
    let app = router(&db);
    user(&db.pool, "aud.s", Role::Auditor).await;
    let mut c = Client::new(&app);
    c.sign_in("aud.s").await;
    let page = c.page(&format!("/decisions/{id}")).await;
    assert!(!page.body.contains("data-test=\"sign-submit\""));
    let csrf = page.csrf();
    let a = c
        .post(
            &format!("/decisions/{id}/sign"),
            &[
                ("csrf", &csrf),
                ("grade", "2+"),
                ("meaning", "confirmed"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&db.pool, "signatures").await, 0);
    let a = c.page("/audit?plate=P1").await;
    assert!(a.body.contains("data-test=\"audit-row\""));
    let csv = c.get("/audit.csv?plate=P1").await;
    assert!(csv.body.starts_with("decision_id,"));
    assert_eq!(csv.body.lines().count(), 2, "{}", csv.body);
    db.drop().await;
}

/// Pages show times in the site's zone (`lis.timezone`) with its abbreviation.
#[tokio::test]
async fn times_are_shown_in_the_sites_time_zone() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let app = crate::client::router_with(&db, |s| {
        s.lis.timezone = chrono_tz::Tz::Europe__Berlin;
    });
    user(&db.pool, "tech.z", Role::Technologist).await;
    let mut c = Client::new(&app);
    c.sign_in("tech.z").await;
    let page = c.page(&format!("/decisions/{id}")).await;
    // The seed's capture time, 2026-11-26T09:59:00Z, is 10:59 in Berlin (CET, UTC+1).
    assert!(
        page.body
            .contains("<dt>Captured</dt><dd>2026-11-26 10:59:00 CET</dd>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(" UTC<"), "no time left in UTC");
    db.drop().await;
}
