//! The HTTP server's bounds, through `App::start` as `iari serve` assembles it, over a real
//! socket: its own database pool (a reader stuck in the database holds at most
//! `http.db_pool_size` connections and is cancelled by the pool's `statement_timeout`, while
//! the worker's pool still commits a decision), the request timeout, and the concurrency limit.
//!
//! Readers are made slow the honest way: a transaction of the test holds `api_tokens` (which
//! every API request updates first, and the worker never touches) in ACCESS EXCLUSIVE mode, so
//! the request waits on PostgreSQL.

use crate::common::{Seed, TestDb, seed, user};
use iari::app::{App, Task};
use iari::config::HttpSettings;
use iari::domain::Role;
use sqlx::{PgPool, Postgres, Transaction};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

struct Served {
    app: App,
    cancel: CancellationToken,
    addr: SocketAddr,
    token: String,
}

impl Served {
    async fn stop(self) {
        self.cancel.cancel();
        self.app.join().await;
    }
}

/// `iari serve` on a free port with `edit`ed HTTP settings, one decision and a technologist's
/// API token.
async fn serve(db: &TestDb, edit: impl FnOnce(&mut HttpSettings)) -> Served {
    let mut s = crate::client::settings(db);
    s.http.addr = "127.0.0.1:0".parse().unwrap();
    edit(&mut s.http);
    s.validate().unwrap();
    seed(&db.pool, &Seed::default()).await;
    user(&db.pool, "tech.limits", Role::Technologist).await;
    let token = iari::auth::tokens::issue(&db.pool, "tech.limits", "test", "test")
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let app = App::start(Arc::new(s), &[Task::Workstation], cancel.clone())
        .await
        .unwrap();
    let addr = app.http_addr.unwrap();
    Served {
        app,
        cancel,
        addr,
        token,
    }
}

/// A plain HTTP/1.1 GET; the status, the `Retry-After` header's presence and the body.
async fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, bool, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let retry = head.to_ascii_lowercase().contains("\r\nretry-after: 1");
    (status, retry, body.to_string())
}

/// Holds `api_tokens` until the transaction ends, so every API request waits.
async fn hold_tokens(pool: &PgPool) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// The HTTP pool's connections to this database: all of them, and those waiting on a lock.
async fn http_connections(db: &TestDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') \
         FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    )
    .bind(&db.name)
    .bind(iari::store::HTTP_APPLICATION_NAME)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Polls until `n` of the HTTP pool's connections wait on the held lock.
async fn until_waiting(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_connections(db).await.1 < n {
        assert!(
            Instant::now() < deadline,
            "{n} readers never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stuck_readers_hold_their_own_small_pool_and_are_cancelled_while_decisions_commit() {
    let db = TestDb::new().await;
    let srv = serve(&db, |h| {
        h.db_pool_size = 2;
        h.statement_timeout_ms = 1000;
    })
    .await;
    let lock = hold_tokens(&db.pool).await;
    let started = Instant::now();
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (addr, token) = (srv.addr, srv.token.clone());
            tokio::spawn(async move { get(addr, "/api/v1/decisions", &token).await })
        })
        .collect();
    until_waiting(&db, 2).await;
    let (open, _) = http_connections(&db).await;
    assert_eq!(
        open, 2,
        "six stuck readers hold http.db_pool_size connections, no more"
    );
    // The worker's write, on the process's own pool, commits while every reader is stuck.
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        seed(&srv.app.pool, &Seed::default()),
    )
    .await
    .expect("the worker's commit does not wait for the readers");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for r in readers {
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(15), r)
            .await
            .expect("statement_timeout ends a stuck reader")
            .unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("database unavailable, retry"), "{body}");
    }
    // Three rounds of two cancelled statements (1 s each), not a wait for the lock.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    lock.rollback().await.unwrap();
    let (status, _, body) = get(srv.addr, "/api/v1/decisions", &srv.token).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        2,
        "both decisions committed"
    );
    srv.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_request_past_its_timeout_is_answered_503() {
    let db = TestDb::new().await;
    let srv = serve(&db, |h| {
        h.request_timeout_ms = 500;
        h.statement_timeout_ms = 10_000;
    })
    .await;
    let lock = hold_tokens(&db.pool).await;
    let t = Instant::now();
    let (status, retry, body) = tokio::time::timeout(
        Duration::from_secs(5),
        get(srv.addr, "/api/v1/decisions", &srv.token),
    )
    .await
    .expect("the request timeout answers, not the lock");
    assert_eq!(status, 503, "{body}");
    assert!(retry, "Retry-After");
    assert!(body.contains("request timed out"), "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    lock.rollback().await.unwrap();
    srv.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_refused_at_once() {
    let db = TestDb::new().await;
    let srv = serve(&db, |h| h.max_concurrent_requests = 2).await;
    let lock = hold_tokens(&db.pool).await;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (addr, token) = (srv.addr, srv.token.clone());
            tokio::spawn(async move { get(addr, "/api/v1/decisions", &token).await })
        })
        .collect();
    until_waiting(&db, 2).await;
    let t = Instant::now();
    let (status, retry, body) = get(srv.addr, "/healthz", "").await;
    assert_eq!(status, 503, "{body}");
    assert!(retry, "Retry-After");
    assert!(body.contains("too many requests"), "{body}");
    let (status, _, body) = get(srv.addr, "/api/v1/decisions", &srv.token).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("\"error\":\"too many requests"),
        "JSON under /api/: {body}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "refused, not queued");
    lock.rollback().await.unwrap();
    for r in busy {
        assert_eq!(r.await.unwrap().0, 200, "the two admitted ones are served");
    }
    assert_eq!(get(srv.addr, "/healthz", "").await.0, 200);
    srv.stop().await;
    db.drop().await;
}
