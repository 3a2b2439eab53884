//! The batched decision write against a real PostgreSQL: one transaction, idempotent, race-safe.

use crate::common::{classification, event, fresh_db};
use iari::domain::CaptureEvent;
use iari::domain::{Flag, Grade, PlateFormat, Sha256Digest};
use iari::ingest::{EventLimits, event::parse};
use iari::store::decisions::{
    ImageRow, NewDecision, Provenance, Timings, WriteOutcome, worker_identity, write_batch,
};
use serde_json::json;

fn parsed(id: &str) -> CaptureEvent {
    let limits = EventLimits::for_images(PlateFormat::default(), 1 << 20);
    parse(
        &serde_json::to_vec(&event(id, json!({"path": "x.png"}))).unwrap(),
        &limits,
    )
    .unwrap()
}

fn provenance() -> Provenance {
    Provenance {
        ensemble_name: "test".into(),
        ensemble_version: "0".into(),
        runtime: json!({"provider": "CPUExecutionProvider"}),
        worker: worker_identity(),
    }
}

struct Item {
    event: CaptureEvent,
    bytes: Vec<u8>,
    class: iari::domain::Classification,
}

fn item(id: &str, bytes: &[u8], flags: &[Flag]) -> Item {
    let sha = Sha256Digest::of(bytes);
    Item {
        event: parsed(id),
        bytes: bytes.to_vec(),
        class: classification(sha, Grade::P2, flags),
    }
}

fn rows(items: &[Item]) -> Vec<NewDecision<'_>> {
    items
        .iter()
        .map(|i| NewDecision {
            event: &i.event,
            image: ImageRow {
                sha256: Sha256Digest::of(&i.bytes),
                media_type: "image/png",
                width: 4,
                height: 4,
                bytes: &i.bytes,
            },
            classification: &i.class,
            timings: Timings {
                batch_size: items.len(),
                ..Timings::default()
            },
        })
        .collect()
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn batch_commits_decisions_outbox_and_provenance() {
    let (pool, _) = fresh_db().await;
    let items = [
        item("C1", b"img-1", &[]),
        item("C2", b"img-2", &[Flag::Tie]),
        item("C3", b"img-1", &[]),
    ];
    let out = write_batch(&pool, &provenance(), None, &rows(&items))
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, WriteOutcome::Decided { .. })),
        "{out:?}"
    );
    assert_eq!(count(&pool, "images").await, 2);
    assert_eq!(count(&pool, "decisions").await, 3);
    let outbox: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT decision_id, filler_number, result_status FROM hl7_messages ORDER BY decision_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(outbox.len(), 3);
    let WriteOutcome::Decided { decision_id } = out[1] else {
        unreachable!()
    };
    let flagged = outbox.iter().find(|r| r.0 == decision_id).unwrap();
    assert_eq!(flagged.1, format!("D{decision_id:07}"));
    assert_eq!(flagged.2, "P");
    assert!(
        outbox
            .iter()
            .filter(|r| r.0 != decision_id)
            .all(|r| r.2 == "F")
    );
    let (flags, models, seq): (Vec<String>, serde_json::Value, i64) =
        sqlx::query_as("SELECT flags, models, chain_seq FROM decisions WHERE id = $1")
            .bind(decision_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(flags, vec!["tie".to_string()]);
    assert_eq!(models[0]["status"], "voted");
    assert_eq!(models[0]["vote"], "2+");
    assert!(seq >= 1);
}

#[tokio::test]
async fn redelivery_is_a_duplicate_and_a_new_image_is_a_conflict() {
    let (pool, _) = fresh_db().await;
    let first = [item("C1", b"img-1", &[])];
    let out = write_batch(&pool, &provenance(), None, &rows(&first))
        .await
        .unwrap();
    let WriteOutcome::Decided { decision_id } = out[0] else {
        panic!("{out:?}")
    };
    let again = [
        item("C1", b"img-1", &[]),
        item("C1", b"img-other", &[]),
        item("C9", b"x", &[]),
    ];
    let out = write_batch(&pool, &provenance(), None, &rows(&again))
        .await
        .unwrap();
    assert_eq!(out[0], WriteOutcome::Duplicate { decision_id });
    assert_eq!(
        out[1],
        WriteOutcome::Conflict {
            stored_sha256: Sha256Digest::of(b"img-1")
        }
    );
    assert!(matches!(out[2], WriteOutcome::Decided { .. }));
    assert_eq!(count(&pool, "decisions").await, 2);
    assert_eq!(count(&pool, "hl7_messages").await, 2);
}

#[tokio::test]
async fn same_capture_twice_in_one_batch_decides_once() {
    let (pool, _) = fresh_db().await;
    let items = [item("C1", b"img-1", &[]), item("C1", b"img-1", &[])];
    let out = write_batch(&pool, &provenance(), None, &rows(&items))
        .await
        .unwrap();
    let WriteOutcome::Decided { decision_id } = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(out[1], WriteOutcome::Duplicate { decision_id });
    assert_eq!(count(&pool, "decisions").await, 1);
}

#[tokio::test]
async fn racing_writers_produce_one_decision_per_capture() {
    let (pool, _) = fresh_db().await;
    let items: Vec<Item> = (0..20)
        .map(|i| item(&format!("R{i}"), format!("b{i}").as_bytes(), &[]))
        .collect();
    let p = provenance();
    let (ra, rb) = (rows(&items), rows(&items));
    let (a, b) = tokio::join!(
        write_batch(&pool, &p, None, &ra),
        write_batch(&pool, &p, None, &rb)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for (x, y) in a.iter().zip(&b) {
        let ids: Vec<i64> = [x, y]
            .iter()
            .map(|o| match o {
                WriteOutcome::Decided { decision_id } | WriteOutcome::Duplicate { decision_id } => {
                    *decision_id
                }
                WriteOutcome::Conflict { .. } => panic!("no conflict expected"),
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
    }
    assert_eq!(count(&pool, "decisions").await, 20);
    assert_eq!(count(&pool, "hl7_messages").await, 20);
}
