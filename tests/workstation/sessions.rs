//! Sign-in and sessions: lock-out after 5 wrong passwords, idle and absolute timeouts, sign-out,
//! a disabled account's session ending, one-time passwords replaced at first sign-in, and each
//! of these in the sign-in log (which is part of the audit chain).

use crate::client::{Client, router};
use crate::common::{PASSWORD, TestDb, user};
use axum::http::StatusCode;
use iari::domain::Role;
use sqlx::PgPool;

async fn kinds(pool: &PgPool, username: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM auth_events WHERE username = $1 ORDER BY id")
        .bind(username)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account() {
    let db = TestDb::new().await;
    let app = router(&db);
    user(&db.pool, "tech.l", Role::Technologist).await;
    let mut c = Client::new(&app);
    for i in 1..=5 {
        let a = c.sign_in_with("tech.l", "wrong password here").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(a.body.contains("Wrong user name or password"));
    }
    let a = c.sign_in_with("tech.l", PASSWORD).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "locked: the right password is refused too"
    );
    assert!(a.body.contains("locked"), "{}", a.body);
    let k = kinds(&db.pool, "tech.l").await;
    assert_eq!(
        k.iter().filter(|k| *k == "sign_in_failed").count(),
        6,
        "{k:?}"
    );
    assert_eq!(k.iter().filter(|k| *k == "locked").count(), 1, "{k:?}");
    // An unknown name is refused the same way, and logged under the name typed.
    let a = c.sign_in_with("nobody.here", PASSWORD).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(kinds(&db.pool, "nobody.here").await, ["sign_in_failed"]);
    // The lock ends when its time is up (moved into the past here) or a password is reset.
    sqlx::query(
        "UPDATE users SET locked_until = now() - interval '1 second' WHERE username = 'tech.l'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    c.sign_in("tech.l").await;
    assert_eq!(c.page("/worklist").await.status, StatusCode::OK);
    let r = iari::audit::verify(&db.pool).await.unwrap();
    assert!(r.first_break.is_none(), "{:?}", r.first_break);
    assert!(r.auth_events >= 9, "the sign-in log is in the chain");
    db.drop().await;
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_or_too_old() {
    let db = TestDb::new().await;
    let app = router(&db);
    user(&db.pool, "tech.i", Role::Technologist).await;
    let mut c = Client::new(&app);
    c.sign_in("tech.i").await;
    assert_eq!(c.get("/worklist").await.status, StatusCode::OK);
    // Background refreshes do not keep a session alive: last_seen stays put.
    let seen = |pool: PgPool| async move {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT last_seen_at FROM sessions WHERE ended_at IS NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = seen(db.pool.clone()).await;
    let req = axum::http::Request::get("/worklist/rows")
        .header(
            "cookie",
            format!("iari_session={}", c.cookies["iari_session"]),
        )
        .header("x-iari-background", "1")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(seen(db.pool.clone()).await, before);
    // 15 minutes without a request (the default idle timeout), moved back in the database.
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '901 seconds'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(c.get("/worklist").await.status, StatusCode::UNAUTHORIZED);
    let a = c.page("/worklist").await;
    assert_eq!(
        (a.status, a.location()),
        (StatusCode::SEE_OTHER, "/login?expired=1")
    );
    assert!(
        kinds(&db.pool, "tech.i")
            .await
            .contains(&"session_expired".to_string())
    );

    // Absolute timeout: active all along, but signed in more than 12 hours ago.
    c.sign_in("tech.i").await;
    assert_eq!(c.get("/worklist").await.status, StatusCode::OK);
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE ended_at IS NULL",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(c.get("/worklist").await.status, StatusCode::UNAUTHORIZED);

    // Sign-out ends the session for good.
    c.sign_in("tech.i").await;
    let csrf = c.page("/worklist").await.csrf();
    let old = c.cookies["iari_session"].clone();
    let a = c.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    c.cookies.insert("iari_session".into(), old);
    assert_eq!(c.get("/worklist").await.status, StatusCode::UNAUTHORIZED);
    assert!(
        kinds(&db.pool, "tech.i")
            .await
            .contains(&"sign_out".to_string())
    );
    db.drop().await;
}

#[tokio::test]
async fn a_disabled_account_is_signed_out_and_a_one_time_password_is_replaced() {
    let db = TestDb::new().await;
    let app = router(&db);
    user(&db.pool, "tech.d", Role::Technologist).await;
    user(&db.pool, "admin.d", Role::Admin).await;
    let mut tech = Client::new(&app);
    tech.sign_in("tech.d").await;
    let mut admin = Client::new(&app);
    admin.sign_in("admin.d").await;
    let csrf = admin.page("/admin/users").await.csrf();
    let a = admin
        .post(
            "/admin/users/tech.d",
            &[("csrf", &csrf), ("action", "disable")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(tech.get("/worklist").await.status, StatusCode::UNAUTHORIZED);
    let a = tech.sign_in_with("tech.d", PASSWORD).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("disabled"));

    // An admin adds an account: a one-time password, shown once, replaced at first sign-in.
    let a = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "New.Tech"),
                ("full_name", "Nia Tech"),
                ("role", "technologist"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let hook = "data-test=\"one-time-password\">";
    let at = a.body.find(hook).unwrap() + hook.len();
    let one_time = a.body[at..].split('<').next().unwrap().to_string();
    assert_eq!(one_time.len(), 24, "{one_time}");
    let mut new = Client::new(&app);
    let a = new.sign_in_with("new.tech", &one_time).await;
    assert_eq!(a.location(), "/account/password");
    let a = new.page("/worklist").await;
    assert_eq!(
        a.location(),
        "/account/password",
        "nothing else until it is replaced"
    );
    let csrf = new.page("/account/password").await.csrf();
    let a = new
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let chosen = "my own long passphrase";
    let a = new
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", chosen),
                ("again", chosen),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(new.page("/worklist").await.status, StatusCode::OK);
    db.drop().await;
}
