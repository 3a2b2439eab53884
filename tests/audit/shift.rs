//! The shift score in the audit trail (migration 0008): rows chained before it keep their
//! hashes, scored rows join the chain and cannot be changed unseen, the worker's write stores
//! score, version and reference, and `audit show` / `audit stats` report it.

use crate::common::{Seed, TestDb, seed};
use iari::audit::{show, stats, verify};
use iari::domain::{Classification, Sha256Digest};
use iari::domain::{Flag, Grade, ModelAnswer, ModelRef, Outcome, PlateFormat, ShiftScore};
use iari::ingest::{EventLimits, event::parse};
use iari::store::decisions::{ImageRow, NewDecision, Provenance, Timings, write_batch};
use serde_json::json;

/// The last migration before the shift columns.
const BEFORE_SHIFT: i64 = 7;

async fn tamper(db: &TestDb, sql: &str) {
    let mut tx = db.pool.begin().await.unwrap();
    for stmt in [
        "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only",
        sql,
        "ALTER TABLE decisions ENABLE TRIGGER decisions_append_only",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// A decision and its review as a schema before 0008 stored them. The product's write paths
/// can no longer write that schema (the batch write names the shift columns, a review is
/// signed by an account of 0009), so these two rows are the one place that writes by hand.
async fn seed_before_shift(pool: &sqlx::PgPool) -> i64 {
    let bytes = b"png bytes before the shift score";
    let sha = Sha256Digest::of(bytes);
    sqlx::query("INSERT INTO images (sha256, media_type, width, height, bytes) VALUES ($1, 'image/png', 229, 230, $2)")
        .bind(sha.as_bytes().as_slice())
        .bind(&bytes[..])
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, plate_id, well, accession) \
         VALUES ('OLD-1', $1, '{}', now(), 'HCM-01', 'P1', 'A1', 'ACC1')",
    )
    .bind(sha.as_bytes().as_slice())
    .execute(pool)
    .await
    .unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, \
         needs_review, ensemble_name, ensemble_version, models, runtime, timings, worker) \
         VALUES ('OLD-1', $1, '2+', 0.6, 0.71, '{}', false, 'iari-cbam', 'ENS-1.0.0', '[]', '{}', '{}', '{}') \
         RETURNING id",
    )
    .bind(sha.as_bytes().as_slice())
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, '3+', 'dr.x', 'checked')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn rows_chained_before_the_migration_verify_and_scored_rows_join_the_chain() {
    let db = TestDb::at_version(BEFORE_SHIFT).await;
    let old = seed_before_shift(&db.pool).await;
    // Today's verify reads tables of later migrations: the head the old schema's trigger
    // reached is read directly, and verify runs on the migrated schema.
    let (before_seq, before_hash): (i64, String) =
        sqlx::query_as("SELECT seq, encode(hash, 'hex') FROM audit_chain_head")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(before_seq, 2);

    iari::store::MIGRATOR.run(&db.pool).await.unwrap();
    // Old rows keep their hashes: the chain still passes through the head the old schema
    // reached, and then on to the old capture, which migration 0016 appended.
    let kept = format!("{before_seq}:{before_hash}").parse().unwrap();
    let anchors = iari::audit::Anchors {
        expect: vec![kept],
        since: None,
    };
    let after = iari::audit::verify_anchored(&db.pool, &anchors)
        .await
        .unwrap();
    assert_eq!(after.first_break, None, "old rows keep their hashes");
    assert_eq!(
        (after.checkpoints, after.captures, after.head_seq),
        (1, 1, before_seq + 1)
    );

    seed(&db.pool, &Seed::default()).await;
    let scored = seed(
        &db.pool,
        &Seed {
            flags: vec!["out_of_distribution"],
            needs_review: true,
            shift: Some((18.567065866431506, "shift-1")),
            ..Seed::default()
        },
    )
    .await;
    let r = verify(&db.pool).await.unwrap();
    assert_eq!(r.first_break, None);
    assert_eq!((r.decisions, r.reviews), (3, 1));

    // The score is in the hash: changing it, removing it, or adding one to an old row shows.
    for (sql, id) in [
        (
            format!("UPDATE decisions SET shift_score = 5.0 WHERE id = {scored}"),
            scored,
        ),
        (
            format!(
                "UPDATE decisions SET shift_score = NULL, shift_version = NULL WHERE id = {scored}"
            ),
            scored,
        ),
        (
            format!(
                "UPDATE decisions SET shift_score = 3.0, shift_version = 'shift-1' WHERE id = {old}"
            ),
            old,
        ),
    ] {
        let saved: (Option<f64>, Option<String>) =
            sqlx::query_as("SELECT shift_score, shift_version FROM decisions WHERE id = $1")
                .bind(id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        tamper(&db, &sql).await;
        let b = verify(&db.pool)
            .await
            .unwrap()
            .first_break
            .expect("detected");
        assert_eq!(b.id, id.to_string(), "{sql}");
        assert!(
            b.problem.contains("content changed"),
            "{sql}: {}",
            b.problem
        );
        // Put the row back for the next case.
        let restore = format!(
            "UPDATE decisions SET shift_score = {}, shift_version = {} WHERE id = {id}",
            saved.0.map_or("NULL".into(), |s| format!("{s:?}")),
            saved.1.map_or("NULL".into(), |v| format!("'{v}'"))
        );
        tamper(&db, &restore).await;
        assert_eq!(verify(&db.pool).await.unwrap().first_break, None);
    }
    db.drop().await;
}

fn classification(bytes: &[u8], score: f64) -> Classification {
    let models = (0..5u8)
        .map(|i| {
            let mut p = [0.0f32; 5];
            p[1] = 1.0;
            let m = ModelRef {
                name: format!("m{i}"),
                version: "1".into(),
                sha256: Sha256Digest::of(&[i]),
            };
            let a = ModelAnswer::Voted {
                probabilities: p,
                vote: Grade::P1,
            };
            (m, a)
        })
        .collect();
    let shift = ShiftScore {
        version: "shift-1".into(),
        score,
        threshold: 11.968530549921091,
    };
    let mut outcome = Outcome {
        grade: Grade::P1,
        agreement: 1.0,
        confidence: 1.0,
        flags: Default::default(),
        needs_review: false,
    };
    iari::classify::flag_shift(&mut outcome, Some(&shift));
    Classification {
        image_sha256: Sha256Digest::of(bytes),
        models,
        outcome,
        shift: Some(shift),
    }
}

#[tokio::test]
async fn the_worker_write_stores_the_score_and_the_chain_verifies() {
    let db = TestDb::new().await;
    let limits = EventLimits::for_images(PlateFormat::default(), 1 << 20);
    let events: Vec<_> = [("OOD-1", "HCM-01"), ("IN-1", "HCM-02")]
        .iter()
        .map(|(id, analyzer)| {
            let e = json!({"schema": "iari.capture.v1", "capture_id": id,
                "captured_at": "2026-11-26T10:15:00Z", "analyzer": {"id": analyzer},
                "plate": {"id": "PLT1", "well": "A1"}, "specimen": {"accession": "S1"},
                "image": {"path": "x.png"}});
            parse(&serde_json::to_vec(&e).unwrap(), &limits).unwrap()
        })
        .collect();
    let images = [b"site-b well".to_vec(), b"training-like well".to_vec()];
    let classes = [
        classification(&images[0], 27.850511406052394),
        classification(&images[1], 3.876409175759156),
    ];
    let rows: Vec<NewDecision<'_>> = (0..2)
        .map(|i| NewDecision {
            event: &events[i],
            image: ImageRow {
                sha256: Sha256Digest::of(&images[i]),
                media_type: "image/png",
                width: 4,
                height: 4,
                bytes: &images[i],
            },
            classification: &classes[i],
            timings: Timings::default(),
        })
        .collect();
    let provenance = Provenance {
        ensemble_name: "test".into(),
        ensemble_version: "0".into(),
        runtime: json!({"provider": "CPUExecutionProvider", "shift": {"version": "shift-1",
            "reference_sha256": Sha256Digest::of(b"reference").to_hex(),
            "threshold": 11.968530549921091}}),
        worker: json!({"host": "test"}),
    };
    write_batch(&db.pool, &provenance, None, &rows)
        .await
        .unwrap();
    assert_eq!(verify(&db.pool).await.unwrap().first_break, None);

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM decisions ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let ood = show(&db.pool, ids[0]).await.unwrap();
    let d = &ood.decision;
    assert_eq!(d.shift_score, Some(27.850511406052394), "stored exactly");
    assert_eq!(d.shift_version.as_deref(), Some("shift-1"));
    assert_eq!(d.flags, vec![Flag::OutOfDistribution]);
    assert!(d.needs_review);
    let status: String =
        sqlx::query_scalar("SELECT result_status FROM hl7_messages WHERE decision_id = $1")
            .bind(ids[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "P", "out of distribution never goes out final");
    let text = iari::audit::format::show_table(&ood);
    assert!(
        text.contains("shift: shift-1 score 27.85 over the threshold 11.97: OUT OF DISTRIBUTION"),
        "{text}"
    );
    let fine = show(&db.pool, ids[1]).await.unwrap();
    assert!(!fine.decision.needs_review);
    let text = iari::audit::format::show_table(&fine);
    assert!(
        text.contains("shift: shift-1 score 3.88 within the threshold 11.97"),
        "{text}"
    );

    // An unscored decision of another day: counted, never in the share.
    let older = Seed {
        decided_at: Some("2020-01-01T10:00:00Z".parse().unwrap()),
        ..Seed::default()
    };
    seed(&db.pool, &older).await;
    let st = stats(&db.pool).await.unwrap();
    let rows: Vec<_> = st
        .shift_by_day
        .iter()
        .map(|d| {
            (
                d.analyzer.as_str(),
                d.decisions,
                d.scored,
                d.out_of_distribution,
                d.share,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("HCM-01", 1, 0, 0, None),
            ("HCM-01", 1, 1, 1, Some(1.0)),
            ("HCM-02", 1, 1, 0, Some(0.0))
        ]
    );
    assert_eq!(st.shift_by_day[0].day, "2020-01-01");
    assert!(st.shift_by_day.iter().all(|d| d.day.len() == 10));
    let table = iari::audit::format::stats_table(&st);
    assert!(
        table.contains("out_of_distribution      1 (100.0%)"),
        "{table}"
    );
    db.drop().await;
}
