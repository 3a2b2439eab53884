//! Every route × role: who gets the page, who gets 403, and what a request without a session
//! gets (a browser is sent to /login, anything else 401); the security headers on every page.

use crate::client::{Client, router};
use crate::common::{Seed, TestDb, seed, user};
use axum::http::StatusCode;
use iari::domain::Role;

const OK: StatusCode = StatusCode::OK;
const NO: StatusCode = StatusCode::FORBIDDEN;

#[tokio::test]
async fn every_page_for_every_role() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            flags: vec!["disagree_adjacent"],
            ..Seed::default()
        },
    )
    .await;
    let app = router(&db);
    let decision = format!("/decisions/{id}");
    let image = format!("/decisions/{id}/image");
    let sign_form = format!("/decisions/{id}?grade=3%2B");
    // route, then technologist, supervisor, director, auditor, admin
    let matrix: Vec<(&str, [StatusCode; 5])> = vec![
        ("/worklist", [OK, OK, OK, OK, NO]),
        ("/worklist/rows", [OK, OK, OK, OK, NO]),
        (&decision, [OK, OK, OK, OK, NO]),
        (&sign_form, [OK, OK, OK, OK, NO]),
        (&image, [OK, OK, OK, OK, NO]),
        ("/plates/P1", [OK, OK, OK, OK, NO]),
        ("/audit", [NO, OK, OK, OK, NO]),
        ("/audit?plate=P1", [NO, OK, OK, OK, NO]),
        ("/audit.csv?plate=P1", [NO, OK, OK, OK, NO]),
        ("/admin/users", [NO, NO, NO, NO, OK]),
        ("/account/password", [OK, OK, OK, OK, OK]),
    ];
    let mut anon = Client::new(&app);
    for (route, _) in &matrix {
        let a = anon.get(route).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{route} without a session"
        );
        let a = anon.page(route).await;
        assert_eq!(
            a.status,
            StatusCode::SEE_OTHER,
            "{route}: a browser goes to sign in"
        );
        assert_eq!(a.location(), "/login");
    }
    for (i, role) in [
        Role::Technologist,
        Role::Supervisor,
        Role::Director,
        Role::Auditor,
        Role::Admin,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("u.{role}");
        user(&db.pool, &name, role).await;
        let mut c = Client::new(&app);
        c.sign_in(&name).await;
        for (route, want) in &matrix {
            let a = c.page(route).await;
            assert_eq!(a.status, want[i], "{role} {route}: {}", a.body);
            let fragment = ["image", ".csv", "/rows"].iter().any(|f| route.contains(f));
            if a.status == OK && !fragment {
                assert!(a.body.contains("<main"), "{role} {route} is a page");
            }
        }
        // What a page shows depends on the role too: signing actions only for signers.
        let d = c.page(&decision).await;
        if role.reads_results() {
            assert_eq!(
                d.body.contains("data-test=\"grade-3\""),
                role.signs_preliminary(),
                "{role}"
            );
            assert!(d.body.contains("data-test=\"votes\""));
            assert!(d.body.contains("Sub-models disagree by one grade"));
        }
    }
    db.drop().await;
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_are_never_cached() {
    let db = TestDb::new().await;
    let app = router(&db);
    user(&db.pool, "tech.h", Role::Technologist).await;
    let mut c = Client::new(&app);
    let login = c.page("/login").await;
    c.sign_in("tech.h").await;
    let page = c.page("/worklist").await;
    for a in [&login, &page] {
        let csp = a.headers["content-security-policy"].to_str().unwrap();
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(a.headers["cache-control"], "no-store");
        assert_eq!(a.headers["x-frame-options"], "DENY");
        assert!(!a.body.contains("<script>"), "no inline script");
        assert!(!a.body.contains("style=\""), "no inline style");
    }
    assert!(page.body.contains("integrity=\"sha256-"));
    let js = c.get("/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    use base64::Engine;
    use sha2::Digest;
    let want = format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(js.body.as_bytes()))
    );
    assert!(
        page.body.contains(&want),
        "the page names the script's hash"
    );
    let cookie = login.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    db.drop().await;
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
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
    user(&db.pool, "tech.c", Role::Technologist).await;
    user(&db.pool, "admin.c", Role::Admin).await;
    let mut tech = Client::new(&app);
    tech.sign_in("tech.c").await;
    let mut admin = Client::new(&app);
    admin.sign_in("admin.c").await;
    user(&db.pool, "sup.c", Role::Supervisor).await;
    let mut sup = Client::new(&app);
    sup.sign_in("sup.c").await;
    let sign = format!("/decisions/{id}/sign");
    let retract = format!("/decisions/{id}/retract");
    let pw = crate::common::PASSWORD;
    for bad in ["", "forged-token"] {
        let a = sup
            .post(
                &retract,
                &[("csrf", bad), ("reason", "other"), ("password", pw)],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "retract with csrf {bad:?}");
        let a = tech
            .post(
                &sign,
                &[
                    ("csrf", bad),
                    ("grade", "2+"),
                    ("meaning", "confirmed"),
                    ("password", pw),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "sign with csrf {bad:?}");
        let a = admin
            .post(
                "/admin/users",
                &[
                    ("csrf", bad),
                    ("username", "x.y"),
                    ("full_name", "X Y"),
                    ("role", "auditor"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = admin
            .post(
                "/admin/users/tech.c",
                &[("csrf", bad), ("action", "disable")],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = tech.post("/logout", &[("csrf", bad)]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = tech
            .post(
                "/account/password",
                &[("csrf", bad), ("current", pw), ("new", "x"), ("again", "x")],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    // Another session's token is not this one's.
    let admins = admin.page("/admin/users").await.csrf();
    let a = tech
        .post(
            &sign,
            &[
                ("csrf", &admins),
                ("grade", "2+"),
                ("meaning", "confirmed"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // The sign-in form's own token: a post without the matching cookie is refused.
    let mut fresh = Client::new(&app);
    let a = fresh
        .post(
            "/login",
            &[("csrf", "x"), ("username", "tech.c"), ("password", pw)],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(crate::common::count(&db.pool, "signatures").await, 0);
    assert_eq!(crate::common::count(&db.pool, "users").await, 3);
    db.drop().await;
}

#[tokio::test]
async fn the_worklist_filters_and_pages_by_keyset() {
    let db = TestDb::new().await;
    let mut ids = Vec::new();
    for (plate, well, flag) in [
        ("P1", "A1", "tie"),
        ("P1", "A2", "disagree_adjacent"),
        ("P2", "A1", "tie"),
        ("P2", "A2", "tie"),
        ("P2", "A3", "low_confidence"),
    ] {
        let s = Seed {
            plate: plate.into(),
            well: well.into(),
            needs_review: true,
            flags: vec![flag],
            ..Seed::default()
        };
        ids.push(seed(&db.pool, &s).await);
    }
    seed(&db.pool, &Seed::default()).await; // final: not on the worklist
    let app = crate::client::router_with(&db, |s| s.workstation.page_size = 2);
    user(&db.pool, "tech.w", Role::Technologist).await;
    let mut c = Client::new(&app);
    c.sign_in("tech.w").await;
    let shown = |body: &str| -> Vec<i64> {
        body.split("data-decision-id=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
            .collect()
    };
    let a = c.page("/worklist").await;
    assert_eq!(shown(&a.body), ids[..2]);
    assert!(
        a.body.contains("data-test=\"worklist-count\">5<"),
        "the count is of all"
    );
    let next = format!("/worklist?after={}", ids[1]);
    assert!(a.body.contains(&next), "a next-page link by keyset");
    assert_eq!(shown(&c.page(&next).await.body), ids[2..4]);
    assert_eq!(
        shown(&c.get("/worklist/rows?plate=P2").await.body),
        ids[2..4]
    );
    let a = c.get("/worklist/rows?plate=P2&flag=tie").await;
    assert!(a.body.contains("data-count=\"2\""));
    assert_eq!(
        shown(&c.get("/worklist/rows?flag=low_confidence").await.body),
        [ids[4]]
    );
    assert!(shown(&c.get("/worklist/rows?analyzer=HCM-99").await.body).is_empty());
    db.drop().await;
}
