//! The roles the services connect as (`iari_worker`, migrations 0004 and 0018; `iari_workstation`,
//! 0017) can append to the audit trail but cannot change it, disable its triggers, or move the
//! chain head; the worker's cannot write reviews at all.

use crate::common::{Seed, TestDb, seed};
use iari::audit::verify;

async fn as_role(db: &TestDb, role: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[tokio::test]
async fn the_worker_role_appends_but_cannot_rewrite() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    // Appending through the chain trigger works for the workstation's role, not the worker's.
    // Plain SQL on purpose: what is tested is the roles' privileges, not a product path.
    let insert = format!(
        "INSERT INTO reviews (decision_id, grade, reviewer) VALUES ({id}, '1+', 'dr.role')"
    );
    as_role(&db, "iari_workstation", &insert).await.unwrap();
    as_role(
        &db,
        "iari_worker",
        &format!("UPDATE hl7_messages SET state = 'acked' WHERE decision_id = {id}"),
    )
    .await
    .unwrap();
    for sql in [
        insert.clone(),
        "SELECT password_hash FROM users".to_string(),
        format!("UPDATE decisions SET grade = '4+' WHERE id = {id}"),
        format!("DELETE FROM reviews WHERE decision_id = {id}"),
        "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only".to_string(),
        "UPDATE audit_chain_head SET seq = 0".to_string(),
        "TRUNCATE hl7_attempts".to_string(),
        "DELETE FROM hl7_messages".to_string(),
    ] {
        let err = as_role(&db, "iari_worker", &sql).await.expect_err(&sql);
        let msg = err.to_string();
        assert!(
            msg.contains("permission denied")
                || msg.contains("must be owner")
                || msg.contains("append-only"),
            "{sql}: {msg}"
        );
    }
    let err = as_role(&db, "iari_auditor", &insert).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let r = verify(&db.pool).await.unwrap();
    assert_eq!((r.first_break, r.decisions, r.reviews), (None, 1, 1));
    db.drop().await;
}

/// The chain triggers carry the head from row to row in a setting, which any session can change;
/// a writer (here the workstation's role, which appends reviews) who changes it mid-statement to
/// fork the chain gets an error, not a forked chain.
#[tokio::test]
async fn a_writer_role_cannot_steer_the_chain_through_its_setting() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let forged = format!(
        "INSERT INTO reviews (decision_id, grade, reviewer) \
         SELECT {id}, '2+', 'mallory' FROM (SELECT set_config('iari.chain_head', \
         '0:' || repeat('00', 32), true)) AS f"
    );
    let err = as_role(&db, "iari_workstation", &forged).await.unwrap_err();
    assert!(err.to_string().contains("audit chain"), "{err}");
    let r = verify(&db.pool).await.unwrap();
    assert_eq!(
        (r.first_break, r.decisions, r.reviews, r.head_seq),
        (None, 1, 0, 2),
        "the seeded capture and decision only"
    );
    db.drop().await;
}

/// The roles are the server's, not a database's: databases of one fresh server migrated at once
/// (parallel tests, or two installations sharing a server) must not fail on a role that another
/// migration created in between.
#[tokio::test]
async fn databases_of_a_fresh_server_migrate_at_once() {
    use iari_kit::db::TestDb;
    use iari_kit::instances::Postgres;
    use sqlx::postgres::PgPoolOptions;
    let pg = tokio::task::spawn_blocking(|| Postgres::start(None))
        .await
        .unwrap();
    let base = pg.base_url();
    let dbs = futures::future::join_all((0..16).map(|i| {
        let (base, options) = (base.clone(), PgPoolOptions::new().max_connections(2));
        async move { TestDb::create_checked(&base, &format!("iari_race_{i}"), options).await }
    }))
    .await;
    for (i, db) in dbs.iter().enumerate() {
        let db = db.as_ref().unwrap_or_else(|e| panic!("database {i}: {e}"));
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(applied as usize, iari::store::MIGRATOR.migrations.len());
    }
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'iari\\_%' ORDER BY 1",
    )
    .fetch_all(&dbs[0].as_ref().unwrap().pool)
    .await
    .unwrap();
    assert_eq!(roles, ["iari_auditor", "iari_worker", "iari_workstation"]);
    for db in dbs.into_iter().flatten() {
        db.pool.close().await;
    }
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}
