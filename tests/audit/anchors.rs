//! What a database owner can do to the audit trail and still be seen: redefine the canonical
//! function the triggers use, re-point a decision's capture to another patient, cut the chain's
//! tail and fix the head to match, or rewrite it. The last two leave a self-consistent chain;
//! only a checkpoint kept outside the database (`iari audit checkpoint`) shows them.

use crate::common::{Seed, TestDb, run_cli, seed};
use iari::audit::{Anchors, Checkpoint, head, verify, verify_anchored};
use sqlx::PgPool;
use std::process::ExitCode;

/// Runs `sql` in one transaction as the owner (who may disable triggers and redefine functions).
async fn as_owner(pool: &PgPool, sql: &[String]) {
    let mut tx = pool.begin().await.unwrap();
    for stmt in sql {
        sqlx::query(sqlx::AssertSqlSafe(stmt.clone()))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_redefined_canonical_function_does_not_hide_a_changed_grade() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let grade: String = sqlx::query_scalar("SELECT grade FROM decisions WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let forged = if grade == "4+" { "neg" } else { "4+" };
    // The grade is changed, and audit_canonical now renders that row with its old grade: a
    // check that asks the database for the canonical text sees the old, matching text.
    as_owner(
        &db.pool,
        &[
            "ALTER FUNCTION audit_canonical(text, jsonb) RENAME TO audit_canonical_orig".into(),
            format!(
                "CREATE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text LANGUAGE sql \
                 AS $$ SELECT audit_canonical_orig(tbl, CASE WHEN tbl = 'decisions' AND \
                 (r ->> 'id')::bigint = {id} THEN jsonb_set(r, '{{grade}}', '\"{grade}\"') \
                 ELSE r END) $$"
            ),
            "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only".into(),
            format!("UPDATE decisions SET grade = '{forged}' WHERE id = {id}"),
            "ALTER TABLE decisions ENABLE TRIGGER decisions_append_only".into(),
        ],
    )
    .await;
    // As the verification before this one asked it: under the trigger's settings.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL timezone = 'UTC'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let from_db: bool = sqlx::query_scalar(
        "SELECT sha256(prev_hash || convert_to(audit_canonical('decisions', to_jsonb(d)), 'UTF8')) \
         = row_hash FROM decisions d WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(from_db, "the forged function hides the change from SQL");
    let b = verify(&db.pool).await.unwrap().first_break.expect("seen");
    assert_eq!(
        (b.table.as_str(), b.id.clone(), b.chain_seq),
        ("decisions", id.to_string(), Some(2))
    );
    assert!(b.problem.contains("content changed"), "{}", b.problem);
    db.drop().await;
}

#[tokio::test]
async fn a_capture_re_pointed_to_another_patient_is_named() {
    let db = TestDb::new().await;
    seed(&db.pool, &Seed::default()).await;
    as_owner(
        &db.pool,
        &[
            "ALTER TABLE captures DISABLE TRIGGER captures_append_only".into(),
            "UPDATE captures SET accession = 'ACC-OTHER', \
             event = jsonb_set(event, '{patient,mrn}', '\"MRN-OTHER\"')"
                .into(),
            "ALTER TABLE captures ENABLE TRIGGER captures_append_only".into(),
        ],
    )
    .await;
    let b = verify(&db.pool).await.unwrap().first_break.expect("seen");
    assert_eq!((b.table.as_str(), b.chain_seq), ("captures", Some(1)));
    assert!(b.problem.contains("content changed"), "{}", b.problem);
    db.drop().await;
}

/// A decision of its own capture `id`, through the worker's write.
async fn seed_capture(pool: &PgPool, id: &str) -> i64 {
    let s = Seed {
        capture: id.into(),
        ..Seed::default()
    };
    seed(pool, &s).await
}

/// Removes the last decision and its capture and sets the head to the row before them, as an
/// owner hiding a result would: the chain left behind is consistent.
async fn cut_the_tail(pool: &PgPool, decision: i64) {
    as_owner(
        pool,
        &[
            "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only".into(),
            "ALTER TABLE captures DISABLE TRIGGER captures_append_only".into(),
            "CREATE TEMP TABLE gone AS SELECT capture_id FROM decisions WHERE id = ".to_string()
                + &decision.to_string(),
            format!("DELETE FROM hl7_messages WHERE decision_id = {decision}"),
            format!("DELETE FROM review_queue WHERE decision_id = {decision}"),
            format!("DELETE FROM decisions WHERE id = {decision}"),
            "DELETE FROM captures WHERE capture_id IN (SELECT capture_id FROM gone)".into(),
            "ALTER TABLE decisions ENABLE TRIGGER decisions_append_only".into(),
            "ALTER TABLE captures ENABLE TRIGGER captures_append_only".into(),
            "UPDATE audit_chain_head SET (seq, hash) = (SELECT chain_seq, row_hash FROM \
             decisions ORDER BY chain_seq DESC LIMIT 1)"
                .into(),
        ],
    )
    .await;
}

/// The chain is consistent in itself, and only the checkpoint `kept` shows what happened.
async fn only_the_checkpoint_sees_it(pool: &PgPool, kept: Checkpoint, problem: &str) {
    assert_eq!(verify(pool).await.unwrap().first_break, None, "consistent");
    let anchors = Anchors {
        expect: vec![kept],
        since: None,
    };
    let b = verify_anchored(pool, &anchors)
        .await
        .unwrap()
        .first_break
        .expect("seen through the checkpoint");
    assert_eq!(
        (b.table.as_str(), b.chain_seq),
        ("checkpoint", Some(kept.seq))
    );
    assert!(b.problem.contains(problem), "{}", b.problem);
}

#[tokio::test]
async fn a_cut_or_rewritten_tail_is_seen_only_through_a_checkpoint() {
    let db = TestDb::new().await;
    seed(&db.pool, &Seed::default()).await;
    let early = head(&db.pool).await.unwrap();
    let last = seed_capture(&db.pool, "C-LAST").await;
    let kept = head(&db.pool).await.unwrap();
    assert_eq!((early.seq, kept.seq), (2, 4));
    let expect = |c: Checkpoint| Anchors {
        expect: vec![c],
        since: None,
    };
    let r = verify_anchored(&db.pool, &expect(kept)).await.unwrap();
    assert_eq!((r.first_break, r.checkpoints), (None, 1));

    cut_the_tail(&db.pool, last).await;
    only_the_checkpoint_sees_it(&db.pool, kept, "ends at chain_seq 2").await;

    // Rewritten: another decision takes the removed ones' places in the chain.
    seed_capture(&db.pool, "C-FORGED").await;
    assert_eq!(head(&db.pool).await.unwrap().seq, 4);
    only_the_checkpoint_sees_it(&db.pool, kept, "no longer passes").await;

    // The earlier checkpoint still holds, and a walk from it checks only what follows.
    let since = Anchors {
        expect: vec![],
        since: Some(early),
    };
    let r = verify_anchored(&db.pool, &since).await.unwrap();
    assert_eq!(
        (
            r.first_break,
            r.since_seq,
            r.captures,
            r.decisions,
            r.checkpoints
        ),
        (None, 2, 1, 1, 1)
    );
    db.drop().await;
}

#[tokio::test]
async fn the_commands_keep_checkpoints_in_a_file_and_verify_against_them() {
    let db = TestDb::new().await;
    seed(&db.pool, &Seed::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoints.txt");
    let file_arg = file.to_str().unwrap();
    assert_eq!(
        run_cli(&db, &["audit", "checkpoint", "--append", file_arg]),
        ExitCode::SUCCESS
    );
    let last = seed_capture(&db.pool, "C-2").await;
    assert_eq!(
        run_cli(&db, &["audit", "checkpoint", "--append", file_arg]),
        ExitCode::SUCCESS
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let second: Checkpoint = lines[1].split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(second, head(&db.pool).await.unwrap());
    let verify_args = ["audit", "verify", "--checkpoints", file_arg];
    assert_eq!(run_cli(&db, &verify_args), ExitCode::SUCCESS);
    cut_the_tail(&db.pool, last).await;
    assert_eq!(run_cli(&db, &["audit", "verify"]), ExitCode::SUCCESS);
    assert_eq!(run_cli(&db, &verify_args), ExitCode::FAILURE);
    let first = lines[0].split_whitespace().next().unwrap();
    assert_eq!(
        run_cli(&db, &["audit", "verify", "--since-checkpoint", first]),
        ExitCode::SUCCESS
    );
    db.drop().await;
}
